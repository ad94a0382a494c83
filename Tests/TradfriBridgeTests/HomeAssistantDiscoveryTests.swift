import Foundation
import HubModel
import TestSupport
import Testing
import TradfriBridge
import TradfriModel

/// Home Assistant discovery through the real parts: the bridge binary, the simulator's demo home
/// and mosquitto. Home Assistant's side is played by `mosquitto_pub`/`mosquitto_sub` sending and
/// reading exactly what Home Assistant would (`HomeAssistantJSONLight`, templates rendered with
/// Jinja2).
@Suite(.serialized) struct HomeAssistantDiscoveryTests {
    static let gatewayID = "7e11515204400072"
    let builder = HomeAssistantConfigBuilder(
        discoveryPrefix: "homeassistant", baseTopic: "tradfri",
        gatewayID: HomeAssistantDiscoveryTests.gatewayID)

    func node(_ id: Int) -> String { "tradfri_\(Self.gatewayID)_\(id)" }

    /// The retained configs on the broker (a fresh `mosquitto_sub` sees only retained messages
    /// at first), waiting until every topic in `expected` is there.
    func retainedConfigs(_ harness: BridgeHarness, expected: Set<String>) async throws -> [String: JSON] {
        let subscriber = try await harness.subscribe(["homeassistant/#"])
        defer { subscriber.signal(SIGTERM) }
        for topic in expected.sorted() {
            try await subscriber.waitForLine(within: .seconds(10), topic) { $0.hasPrefix(topic + " {") }
        }
        var configs: [String: JSON] = [:]
        for line in subscriber.output {
            guard let space = line.firstIndex(of: " ") else { continue }
            configs[String(line[..<space])] = try? JSON(parsing: String(line[line.index(after: space)...]))
        }
        return configs
    }

    @Test func everyDeviceOfTheDemoHomeAppearsWithValidConfigs() async throws {
        let harness = try await BridgeHarness()
        try await harness.startBridge()
        let home = try await DemoInventory.load()
        let expected = home.configs(builder)
        let configs = try await retainedConfigs(harness, expected: Set(expected.map(\.topic)))
        for config in expected {
            #expect(configs[config.topic] == config.payload, "\(config.topic)")
        }
        let ours = configs.keys.filter { builder.isOwn(topic: $0) }
        #expect(ours.count == expected.count, "nothing else: \(Set(ours).subtracting(expected.map(\.topic)))")
        let problems = configs.compactMap { HomeAssistantConfig(topic: $0.key, payload: $0.value) }
            .flatMap(HomeAssistantSchema.problems)
        #expect(problems.isEmpty, "\(problems.joined(separator: "\n"))")
        for device in home.devices.values {
            #expect(
                configs.keys.contains { $0.contains("/\(node(device.id.number ?? 0))/") },
                "\(device.name) has an entity")
        }
        // Every state topic a config reads is published (retained) by the bridge.
        let states = try await harness.subscribe(["tradfri/#"])
        for config in expected {
            for key in ["state_topic", "position_topic", "percentage_state_topic"] {
                guard let topic = config.payload[key]?.stringValue else { continue }
                try await message(on: topic, from: states)
            }
        }
        await harness.shutdown()
    }

    @Test func renamesUpdateInPlaceAndRemovalsClearEveryConfig() async throws {
        let harness = try await BridgeHarness()
        try await harness.startBridge()
        let watcher = try await harness.subscribe(["homeassistant/#"])
        let plugLight = "homeassistant/switch/\(node(65543))/switch/config"
        try await message(on: plugLight, from: watcher)

        // Renamed in the IKEA app: the same config topic and unique id, new topics and name.
        var before = watcher.lineCount
        _ = try await harness.coap("put", "15001/65543", #"{"9001":"Kettle"}"#)
        let renamed = try await message(on: plugLight, from: watcher, after: before) {
            $0["state_topic"] == "tradfri/kettle"
        }
        #expect(renamed["unique_id"] == .string("\(node(65543))_switch"))
        #expect(renamed["command_topic"] == "tradfri/kettle/set" && renamed["device"]?["name"] == "Kettle")
        #expect(renamed["availability"]?[1]?["topic"] == "tradfri/kettle/availability")
        #expect(
            !watcher.output[before...].contains { $0.hasPrefix(plugLight + " (null)") },
            "never removed, so no duplicate entity")

        // Removed: every config of the device is cleared.
        before = watcher.lineCount
        try await harness.control("remove-device 65543")
        for object in ["switch/\(node(65543))/switch", "sensor/\(node(65543))/last_seen"] {
            try await watcher.waitForLine(within: .seconds(5), "\(object) cleared", after: before) {
                $0 == "homeassistant/\(object)/config (null)"
            }
        }
        // The bedroom (now a blind and a purifier) is no longer a light; its room keeps nothing else.
        try await watcher.waitForLine(within: .seconds(5), "the bedroom light cleared", after: before) {
            $0 == "homeassistant/light/\(node(131075))/light/config (null)"
        }

        // A scene removed in the app, then a whole room.
        before = watcher.lineCount
        try await harness.control("remove-scene 131074 196612")
        try await watcher.waitForLine(within: .seconds(5), "the scene cleared", after: before) {
            $0 == "homeassistant/scene/\(node(131074))/scene_196612/config (null)"
        }
        try await harness.control("remove-group 131073")
        for object in [
            "light/\(node(131073))/light", "scene/\(node(131073))/scene_196609", "scene/\(node(131073))/scene_196611",
        ] {
            try await watcher.waitForLine(within: .seconds(5), "\(object) cleared", after: before) {
                $0 == "homeassistant/\(object)/config (null)"
            }
        }

        // Added: configs appear.
        try await harness.control(
            #"add-device {"3":{"0":"IKEA of Sweden","1":"TRADFRI bulb GU10 WS 400lm","3":"2.3.095"},"3311":[{"5850":1,"5851":100,"5711":300,"9003":0}],"5750":2,"9001":"Desk lamp","9003":65600,"9019":1}"#
        )
        let desk = try await message(on: "homeassistant/light/\(node(65600))/light/config", from: watcher)
        #expect(desk["supported_color_modes"] == ["color_temp"] && desk["state_topic"] == "tradfri/desk_lamp")
        #expect(
            HomeAssistantSchema.problems(
                try #require(
                    HomeAssistantConfig(
                        topic: "homeassistant/light/\(node(65600))/light/config", payload: desk))
            ).isEmpty)
        await harness.shutdown()
    }

    @Test func aDeviceRemovedWhileTheBridgeWasStoppedIsClearedAtTheNextStart() async throws {
        let harness = try await BridgeHarness()
        try await harness.startBridge()
        let plug = "homeassistant/switch/\(node(65543))/switch/config"
        _ = try await retainedConfigs(harness, expected: [plug])
        _ = await harness.stopBridge()
        try await harness.control("remove-device 65543")
        // Someone else's config under the same prefix must survive.
        let foreign = "homeassistant/light/0x000b57fffe000001/light/config"
        try await harness.publish(foreign, #"{"schema":"json","command_topic":"zigbee2mqtt/x/set"}"#, retain: true)

        let watcher = try await harness.subscribe(["homeassistant/#"])
        try await harness.startBridge()
        try await watcher.waitForLine(within: .seconds(10), "the stale config cleared") { $0 == plug + " (null)" }
        #expect(!watcher.output.contains(foreign + " (null)"))
        // What is retained now: the foreign config, and not the cleared one. Each read takes all
        // the broker sends within a second; one cut short by a loaded machine is read again.
        var left = ""
        for _ in 0..<10 where !left.contains(foreign) {
            left = try await runCommand(
                "mosquitto_sub",
                harness.broker.clientArguments + ["-t", "homeassistant/#", "-v", "--retained-only", "-W", "1"],
                check: false
            ).output
        }
        #expect(left.contains(foreign) && !left.contains(plug), "\(left)")
        await harness.shutdown()
    }

    /// The bridge's own device: its health sensors are announced (and valid), and one an older
    /// version announced that this one no longer has is cleared; another bridge's (another base
    /// topic) is left alone.
    @Test func theBridgesOwnSensorsAreAnnouncedAndItsStaleOnesCleared() async throws {
        let harness = try await BridgeHarness()
        let stale = "homeassistant/sensor/tradfri_bridge_tradfri/threads/config"
        let other = "homeassistant/sensor/tradfri_bridge_upstairs/uptime/config"
        for topic in [stale, other] {
            try await harness.publish(topic, #"{"state_topic":"x/bridge/health","name":"old"}"#, retain: true)
        }
        let watcher = try await harness.subscribe(["homeassistant/#"])
        try await harness.startBridge()
        try await watcher.waitForLine(within: .seconds(10), "the stale sensor cleared") { $0 == stale + " (null)" }
        let expected = builder.bridgeConfigs()
        // The other bridge's is waited for too: the broker sends the retained ones in its own
        // order, and a reader that stops at the last of ours may not have read it yet.
        let configs = try await retainedConfigs(harness, expected: Set(expected.map(\.topic)).union([other]))
        for config in expected { #expect(configs[config.topic] == config.payload, "\(config.topic)") }
        #expect(configs[other] != nil && configs[stale] == nil)
        #expect(!watcher.output.contains(other + " (null)"))
        await harness.shutdown()
    }

    /// A light driven with the exact payloads Home Assistant's JSON light sends; the state that
    /// comes back is read the way Home Assistant reads it.
    @Test func lightsFollowHomeAssistantsCommandsAndReportWhatItExpects() async throws {
        let harness = try await BridgeHarness()
        try await harness.startBridge()
        let lights = [65537, 65538, 65539, 131073].map { "homeassistant/light/\(node($0))/light/config" }
        let configs = try await retainedConfigs(harness, expected: Set(lights))
        let watcher = try await harness.subscribe(["tradfri/#"])

        /// Sends `command` as Home Assistant would and waits for a state satisfying `until`; then
        /// Home Assistant reads it.
        func drive(
            _ light: inout HomeAssistantJSONLight, _ command: String, until: @escaping @Sendable (JSON) -> Bool
        ) async throws {
            let before = watcher.lineCount
            try await harness.publish(light.commandTopic, command)
            let state = try await message(on: light.stateTopic, from: watcher, after: before, where: until)
            light.receive(state.description)
            #expect(light.problems.isEmpty, "\(command): \(light.problems)")
        }

        // White spectrum.
        var ceiling = try HomeAssistantJSONLight(config: try #require(configs[lights[1]]))
        try await drive(&ceiling, ceiling.turnOn(brightness: 128, colorTempKelvin: 3000)) { $0["brightness"] == 127 }
        #expect(ceiling.isOn == true && ceiling.colorMode == "color_temp")
        #expect(ceiling.brightness == 127 || ceiling.brightness == 128)
        #expect(abs((ceiling.colorTempKelvin ?? 0) - 3000) <= 10, "\(String(describing: ceiling.colorTempKelvin))")
        #expect(try await harness.device(65538).light?.colorTemperature == 333)
        try await drive(&ceiling, ceiling.turnOn(colorTempKelvin: 2000)) { $0["color_temp"] == 454 }
        #expect(ceiling.colorTempKelvin == 2202, "clamped to the bulb's warmest")
        try await drive(&ceiling, ceiling.turnOff(transition: 1)) { $0["state"] == "OFF" }
        #expect(ceiling.isOn == false)
        try await drive(&ceiling, ceiling.turnOn()) { $0["state"] == "ON" }
        #expect(ceiling.isOn == true)

        // Colour.
        var lamp = try HomeAssistantJSONLight(config: try #require(configs[lights[2]]))
        try await drive(&lamp, lamp.turnOn(brightness: 255, xy: (0.17, 0.7))) { $0["brightness"] == 254 }
        #expect(lamp.colorMode == "xy" && lamp.brightness == 255)
        #expect(
            abs((lamp.xy?.x ?? 0) - 0.17) < 0.01 && abs((lamp.xy?.y ?? 0) - 0.7) < 0.01,
            "\(String(describing: lamp.xy))")
        try await drive(&lamp, lamp.turnOn(xy: (0.5, 0.4), transition: 2)) {
            ($0["color"]?["x"]?.doubleValue ?? 0) > 0.45
        }
        #expect(abs((lamp.xy?.x ?? 0) - 0.5) < 0.01)

        // Dimmable white.
        var hallway = try HomeAssistantJSONLight(config: try #require(configs[lights[0]]))
        try await drive(&hallway, hallway.turnOn(brightness: 64)) { $0["state"] == "ON" && $0["brightness"] == 64 }
        #expect(hallway.isOn == true && hallway.brightness == 64)
        try await drive(&hallway, hallway.turnOff()) { $0["state"] == "OFF" }

        // A room.
        var room = try HomeAssistantJSONLight(config: try #require(configs[lights[3]]))
        try await drive(&room, room.turnOn(brightness: 100, colorTempKelvin: 2500)) {
            $0["state"] == "ON" && $0["brightness"] == 100 && $0["color_temp"] == 400
        }
        #expect(room.isOn == true && room.colorMode == "color_temp" && room.colorTempKelvin == 2500)
        try await drive(&room, room.turnOff()) { $0["state"] == "OFF" }
        #expect(room.isOn == false)
        #expect(try await harness.device(65550).light?.on == false)
        await harness.shutdown()
    }

    /// Switch, cover, fan, sensors and scenes, with the payloads Home Assistant renders from
    /// their configs.
    @Test func plugsBlindsThePurifierAndScenesWorkFromTheirConfigs() async throws {
        let harness = try await BridgeHarness()
        try await harness.startBridge()
        let topics = [
            "switch/\(node(65543))/switch", "cover/\(node(65546))/cover", "fan/\(node(65547))/fan",
            "switch/\(node(65547))/child_lock", "scene/\(node(131073))/scene_196611", "sensor/\(node(65547))/pm25",
            "button/tradfri_\(Self.gatewayID)_gateway/reboot",
        ].map { "homeassistant/\($0)/config" }
        let configs = try await retainedConfigs(harness, expected: Set(topics))
        func config(_ index: Int) throws -> JSON { try #require(configs[topics[index]]) }
        let watcher = try await harness.subscribe(["tradfri/#"])

        /// Publishes like Home Assistant, then renders `template` on the next matching state.
        func roundTrip(
            _ command: String, to topic: String, state: String, template: String,
            until: @escaping @Sendable (JSON) -> Bool
        ) async throws -> String {
            let before = watcher.lineCount
            try await harness.publish(topic, command)
            let payload = try await message(on: state, from: watcher, after: before, where: until)
            return try await Jinja.state(template, payload: payload.description)
        }

        let plug = try config(0)
        #expect(
            try await roundTrip(
                plug["payload_on"]!.stringValue!, to: plug["command_topic"]!.stringValue!,
                state: plug["state_topic"]!.stringValue!, template: plug["value_template"]!.stringValue!
            ) {
                $0["state"] == "ON"
            } == "ON")

        let cover = try config(1)
        let position = try await Jinja.command(cover["set_position_template"]!.stringValue!, ["position": 40])
        #expect(
            try await roundTrip(
                position, to: cover["set_position_topic"]!.stringValue!,
                state: cover["position_topic"]!.stringValue!,
                template: cover["position_template"]!.stringValue!
            ) { $0["position"] == 40 } == "40")
        #expect(
            try await roundTrip(
                cover["payload_open"]!.stringValue!, to: cover["command_topic"]!.stringValue!,
                state: cover["position_topic"]!.stringValue!,
                template: cover["position_template"]!.stringValue!
            ) { $0["position"] == 100 } == "100")

        let fan = try config(2)
        let level = try await Jinja.command(fan["percentage_command_template"]!.stringValue!, ["value": 4])
        #expect(
            try await roundTrip(
                level, to: fan["percentage_command_topic"]!.stringValue!,
                state: fan["percentage_state_topic"]!.stringValue!,
                template: fan["percentage_value_template"]!.stringValue!
            ) { $0["fan_mode"] == "4" } == "4",
            "80 % is level 4 of 5")
        let preset = try await Jinja.command(fan["preset_mode_command_template"]!.stringValue!, ["value": "auto"])
        #expect(
            try await roundTrip(
                preset, to: fan["preset_mode_command_topic"]!.stringValue!,
                state: fan["preset_mode_state_topic"]!.stringValue!,
                template: fan["preset_mode_value_template"]!.stringValue!
            ) { $0["fan_mode"] == "auto" } == "auto")
        let off = try await Jinja.command(fan["command_template"]!.stringValue!, ["value": fan["payload_off"]!])
        #expect(
            try await roundTrip(
                off, to: fan["command_topic"]!.stringValue!, state: fan["state_topic"]!.stringValue!,
                template: fan["state_value_template"]!.stringValue!
            ) { $0["fan_state"] == "OFF" } == "OFF")

        let lock = try config(3)
        #expect(
            try await roundTrip(
                lock["payload_on"]!.stringValue!, to: lock["command_topic"]!.stringValue!,
                state: lock["state_topic"]!.stringValue!, template: lock["value_template"]!.stringValue!
            ) {
                $0["child_lock"] == "LOCK"
            } == "ON")

        let focus = try config(4)
        let before = watcher.lineCount
        try await harness.publish(focus["command_topic"]!.stringValue!, focus["payload_on"]!.stringValue!)
        try await message(on: "tradfri/living_room_ceiling", from: watcher, after: before) {
            $0["color_temp"] == 250 && $0["brightness"] == 254
        }

        let pm25 = try config(5)
        let purifier = try await message(on: pm25["state_topic"]!.stringValue!, from: watcher)
        #expect(try await Jinja.state(pm25["value_template"]!.stringValue!, payload: purifier.description) == "12")

        // The gateway's reboot button asks the request API.
        let reboot = try config(6)
        let responses = try await harness.subscribe(["tradfri/bridge/response/#", "tradfri/bridge/event"])
        try await harness.publish(reboot["command_topic"]!.stringValue!, reboot["payload_press"]!.stringValue!)
        #expect(try await message(on: "tradfri/bridge/response/gateway/reboot", from: responses)["status"] == "ok")
        try await message(on: "tradfri/bridge/event", from: responses, within: .seconds(20)) {
            $0["type"] == "gateway_online"
        }
        await harness.shutdown()
    }

    @Test func homeAssistantComingOnlineGetsEverythingAgainAfterTheDelay() async throws {
        let harness = try await BridgeHarness()
        try await harness.startBridge(extraConfiguration: "homeassistant:\n  republish_delay: 1")
        let light = "homeassistant/light/\(node(65538))/light/config"
        _ = try await retainedConfigs(harness, expected: [light])
        // -F: retained flag, topic, payload; the retained copies come first and are flagged 1.
        let watcher = try await harness.broker.subscriber([
            "-F", "%r %t %p", "-t", "homeassistant/#", "-t", "tradfri/#",
        ])
        try await watcher.waitForLine(within: .seconds(5), "the retained config") { $0.hasPrefix("1 \(light) ") }

        let before = watcher.lineCount
        let sent = ContinuousClock.now
        try await harness.publish("homeassistant/status", "online")
        for topic in [
            light, "tradfri/bridge/state", "tradfri/living_room_ceiling", "tradfri/living_room_ceiling/availability",
        ] {
            try await watcher.waitForLine(within: .seconds(10), "\(topic) published again", after: before) {
                $0.hasPrefix("0 \(topic) {")
            }
        }
        let waited = ContinuousClock.now - sent
        #expect(waited >= .milliseconds(900), "announced after republish_delay, not at once: \(waited)")
        // The configs come before the states they describe.
        let lines = watcher.output[before...]
        let configAt = try #require(lines.firstIndex { $0.hasPrefix("0 \(light) ") })
        let stateAt = try #require(lines.firstIndex { $0.hasPrefix("0 tradfri/living_room_ceiling {") })
        #expect(configAt < stateAt)
        await harness.shutdown()
    }

    @Test func discoveryCanBeTurnedOff() async throws {
        let harness = try await BridgeHarness()
        try await harness.startBridge(extraConfiguration: "homeassistant:\n  enabled: false")
        // A request answered after the first sync: anything published at the sync went out before it.
        let responses = try await harness.subscribe(["tradfri/bridge/response/#"])
        try await harness.broker.publish(["-t", "tradfri/bridge/request/health_check", "-n"])
        try await message(on: "tradfri/bridge/response/health_check", from: responses)
        let retained = try await runCommand(
            "mosquitto_sub", harness.broker.clientArguments + ["-t", "homeassistant/#", "-v", "-W", "1"],
            check: false
        ).output
        #expect(!retained.contains("tradfri_"), "\(retained)")
        await harness.shutdown()
    }
}
