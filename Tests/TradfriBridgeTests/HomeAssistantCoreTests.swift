import Foundation
import HubModel
import TestSupport
import Testing
import TradfriBridge
import TradfriModel

/// The demo home in a real Home Assistant Core (2024.3, the oldest supported release, by default;
/// `TRADFRI_HA_RELEASE=newest` or `scripts/ha-newest.sh` for the newest), with the real bridge,
/// simulator, mosquitto and coap-client-openssl as the IKEA app. Everything is checked through
/// Home Assistant's own websocket API, as its UI would show it, and its log must hold nothing
/// about our payloads.
@Suite(.serialized) struct HomeAssistantCoreTests {
    static let gatewayID = "7e11515204400072"
    let builder = HomeAssistantConfigBuilder(
        discoveryPrefix: "homeassistant", baseTopic: "tradfri", gatewayID: HomeAssistantCoreTests.gatewayID)

    @Test(.timeLimit(.minutes(30))) func theDemoHomeWorksInHomeAssistant() async throws {
        let home = try await DemoInventory.load()
        let world = World(builder: builder, home: home)
        let core = try await HomeAssistantCore()
        let harness = try await BridgeHarness()
        try await harness.startBridge(extraConfiguration: "homeassistant:\n  republish_delay: 1")
        try await core.start()
        try await core.onboard()
        try await core.addMQTT(host: harness.broker.host, port: harness.broker.port)
        do {
            try await run(core, harness, world)
        } catch {
            // What Home Assistant said about it helps more than the deadline alone.
            try? await core.stop()
            let problems = world.problems(in: core.log)
            if !problems.isEmpty { Issue.record("Home Assistant logged:\n\(problems.joined(separator: "\n"))") }
            await harness.shutdown()
            await core.shutdown()
            throw error
        }
    }

    /// Two gateways in one bridge: each is a device of its own in Home Assistant, with its
    /// devices via it; every entity of both is there, equal to its simulator, and controls only
    /// its own gateway; one gateway going away makes only its entities unavailable.
    @Test(.timeLimit(.minutes(20))) func twoGatewaysAreTwoDevicesEachWithItsOwnLights() async throws {
        let gardenID = "1112131415161718"
        let upstairs = World(
            builder: HomeAssistantConfigBuilder(
                discoveryPrefix: "homeassistant", baseTopic: "tradfri", gatewayID: Self.gatewayID,
                gatewayName: "upstairs", severalGateways: true),
            home: try await DemoInventory.load(hub: "upstairs", prefix: "upstairs"))
        let garden = World(
            builder: HomeAssistantConfigBuilder(
                discoveryPrefix: "homeassistant", baseTopic: "tradfri", gatewayID: gardenID, gatewayName: "garden",
                severalGateways: true),
            home: try await DemoInventory.load(hub: "garden", prefix: "garden"), withBridge: false)
        let core = try await HomeAssistantCore()
        let harness = try await BridgeHarness()
        let gardenGateway = try await harness.addGateway(name: "garden", id: gardenID)
        let entries = [
            harness.gatewayEntry("upstairs", id: Self.gatewayID, harness.primary),
            harness.gatewayEntry("garden", id: gardenID, gardenGateway),
        ]
        let ready = try await harness.subscribe(["tradfri/bridge/devices"])
        try harness.launchBridge(
            configuration: harness.gatewaysConfiguration(entries, extra: "homeassistant:\n  republish_delay: 1"))
        try await message(on: "tradfri/bridge/devices", from: ready, within: .seconds(30)) {
            $0.arrayValue?.count == upstairs.home.devices.count + garden.home.devices.count
        }
        ready.signal(SIGTERM)
        try await core.start()
        try await core.onboard()
        try await core.addMQTT(host: harness.broker.host, port: harness.broker.port)
        let ws = try await core.websocket()
        try await ws.follow()

        let everything = upstairs.configs + garden.configs
        #expect(Set(everything.compactMap(\.uniqueID)).count == everything.count, "no unique id shared")
        try await upstairs.everyEntityIsThere(ws, everything: everything)
        try await garden.everyEntityIsThere(ws, everything: everything)
        try await upstairs.everythingEqualsTheSimulator(ws, harness.primary)
        try await garden.everythingEqualsTheSimulator(ws, gardenGateway)
        try await upstairs.healthSensorsShowTheReport(ws, harness, also: garden)

        // Each gateway is a device; each light is via its own gateway.
        let devices = try await ws.request(["type": "config/device_registry/list"]).arrayValue ?? []
        for world in [upstairs, garden] {
            let gateway = devices.first {
                $0["identifiers"]?.description.contains("\"\(world.builder.gatewayIdentifier)\"") == true
            }
            #expect(gateway?["name"]?.stringValue == "TRÅDFRI gateway \(world.builder.gatewayName)")
            let ceiling = devices.first {
                $0["identifiers"]?.description.contains("\"\(world.builder.nodeID(65538))\"") == true
            }
            #expect(ceiling?["via_device_id"] == gateway?["id"] && gateway?["id"] != nil)
        }
        #expect(upstairs.entity(65538, "light") == "light.upstairs_living_room_ceiling")

        // A light of each, controlled from Home Assistant: only its own gateway changes.
        try await ws.call("light", "turn_on", upstairs.entity(65538, "light"), ["brightness": 100])
        try await ws.waitForState(upstairs.entity(65538, "light"), "dimmed") {
            abs(($0?["attributes"]?["brightness"]?.doubleValue ?? 0) - 100) <= 1.5
        }
        #expect((99...100).contains(try await harness.primary.device(65538).light?.brightness ?? 0))
        #expect(try await gardenGateway.device(65538).light?.brightness == 200)
        try await ws.call("light", "turn_off", garden.entity(65539, "light"))
        try await upstairs.expectState(ws, garden.entity(65539, "light"), "off")
        #expect(try await gardenGateway.device(65539).light?.on == false)
        #expect(try await harness.primary.device(65539).light?.on == true)

        // The garden goes away: its connection is off and its entities unavailable, nothing else.
        func connection(_ world: World) throws -> String {
            World.entityID(
                try #require(world.configs.first { $0.nodeID.hasSuffix("_gateway") && $0.objectID == "connectivity" }))
        }
        try await upstairs.expectState(ws, try connection(upstairs), "on")
        try await upstairs.expectState(ws, try connection(garden), "on")
        gardenGateway.simulator.signal(SIGKILL)
        try await upstairs.expectState(ws, try connection(garden), "off")
        try await ws.waitForState(garden.entity(65538, "light"), within: .seconds(30), "unavailable") {
            $0?["state"] == "unavailable"
        }
        for entityID in upstairs.enabledEntityIDs {
            #expect(ws.state(entityID)?["state"] != "unavailable", "\(entityID) stays available")
        }
        try await gardenGateway.restart()
        try await upstairs.expectState(ws, try connection(garden), "on")
        try await ws.waitForState(garden.entity(65538, "light"), within: .seconds(30), "available again") {
            $0 != nil && $0?["state"] != "unavailable"
        }

        ws.close()
        try await core.stop()
        await harness.shutdown([gardenGateway])
        let problems = upstairs.problems(in: core.log) + garden.problems(in: core.log)
        #expect(problems.isEmpty, "Home Assistant logged:\n\(problems.joined(separator: "\n"))")
        await core.shutdown()
    }

    func run(_ core: HomeAssistantCore, _ harness: BridgeHarness, _ world: World) async throws {
        var ws = try await core.websocket()
        try await ws.follow()
        let version = try await ws.request(["type": "get_config"])["version"]?.stringValue ?? "?"

        // Every entity of the demo home, in the right domain, under the entity id we suggest.
        try await world.everyEntityIsThere(ws)
        try await world.everythingEqualsTheSimulator(ws, harness.primary)
        try await world.healthSensorsShowTheReport(ws, harness)

        try await world.servicesChangeTheSimulator(ws, harness)
        try await world.changesByAnotherClientReachHomeAssistant(ws, harness)
        try await world.availabilityFollowsTheBridge(ws, harness)

        // Home Assistant restarts (a change made meanwhile shows after it).
        ws.close()
        try await core.stop()
        _ = try await harness.coap("put", "15001/65539", #"{"3311":[{"5850":0}]}"#)
        try await core.start()
        ws = try await core.websocket()
        try await ws.follow()
        for entityID in world.enabledEntityIDs {
            try await ws.waitForState(entityID, within: .seconds(60), "available after Home Assistant's restart") {
                $0 != nil && $0?["state"] != "unavailable"
            }
        }
        try await world.everythingEqualsTheSimulator(ws, harness.primary)

        try await world.renamesKeepTheEntity(ws, harness)

        // Home Assistant first: it would log the broker going away.
        ws.close()
        try await core.stop()
        await harness.shutdown()
        let log = core.log
        let problems = world.problems(in: log)
        #expect(problems.isEmpty, "Home Assistant \(version) logged:\n\(problems.joined(separator: "\n"))")
        let others = log.filter { ($0.contains(" WARNING (") || $0.contains(" ERROR (")) && !problems.contains($0) }
        print(
            "Home Assistant \(version): \(world.configs.count) entities (\(world.enabledEntityIDs.count) enabled),",
            "\(log.count) log lines checked, \(problems.count) about the bridge; not about it:\n\(others.joined(separator: "\n"))"
        )
        await core.shutdown()
    }
}

/// What the test knows about the demo home, and the checks it makes.
struct World: Sendable {
    let builder: HomeAssistantConfigBuilder
    let home: DemoInventory
    /// Every config the bridge publishes for the demo home as it starts (with the bridge's own
    /// device and health sensors unless `withBridge` is false: the second gateway of one bridge).
    let configs: [HomeAssistantConfig]

    init(builder: HomeAssistantConfigBuilder, home: DemoInventory, withBridge: Bool = true) {
        self.builder = builder
        self.home = home
        configs = home.configs(builder) + (withBridge ? builder.bridgeConfigs() : [])
    }

    var enabledEntityIDs: [String] {
        configs.filter { $0.payload["enabled_by_default"] != false }.map(Self.entityID)
    }

    static func entityID(_ config: HomeAssistantConfig) -> String {
        config.payload["default_entity_id"]?.stringValue ?? ""
    }

    /// The entity id of a device's or group's entity (`object` as in the config topic).
    func entity(_ id: Int, _ object: String) -> String {
        configs.first { $0.nodeID.hasSuffix("_\(id)") && $0.objectID == object }.map(Self.entityID) ?? "?"
    }

    func entity(_ id: ItemID, _ object: String) -> String { entity(id.number ?? 0, object) }

    // MARK: Discovery

    /// - Parameter everything: every config the bridge publishes (with several gateways, all of
    ///   theirs); the registry must hold exactly those.
    func everyEntityIsThere(_ ws: HomeAssistantWebSocket, everything: [HomeAssistantConfig]? = nil) async throws {
        let all = everything ?? configs
        for entityID in enabledEntityIDs {
            try await ws.waitForState(entityID, within: .seconds(90), "discovered and available") {
                $0 != nil && $0?["state"] != "unavailable"
            }
        }
        // The registry: every config (the disabled "last seen" sensors too) is an MQTT entity with
        // its unique id, in its domain, under the entity id we suggested.
        let expected = Dictionary(uniqueKeysWithValues: all.map { ($0.uniqueID ?? "", Self.entityID($0)) })
        let registry = try await ws.until(within: .seconds(30), "every config in the entity registry") {
            let list = try await ws.request(["type": "config/entity_registry/list"]).arrayValue ?? []
            let ours = list.filter { ($0["unique_id"]?.stringValue ?? "").hasPrefix("tradfri_") }
            return ours.count >= expected.count ? ours : nil
        }
        #expect(registry.count == expected.count, "nothing else")
        for entry in registry {
            let uniqueID = entry["unique_id"]?.stringValue ?? ""
            #expect(entry["platform"] == "mqtt")
            #expect(entry["entity_id"]?.stringValue == expected[uniqueID], "\(uniqueID)")
        }
        let disabled = registry.filter { $0["disabled_by"] != .null }.compactMap { $0["entity_id"]?.stringValue }
        #expect(Set(disabled) == Set(all.filter { $0.payload["enabled_by_default"] == false }.map(Self.entityID)))
        // Every device and room is a device of its own, named as in the IKEA app.
        let devices = try await ws.request(["type": "config/device_registry/list"]).arrayValue ?? []
        for device in home.devices.values {
            let entry = devices.first {
                $0["identifiers"]?.description.contains("\"\(builder.nodeID(device.id))\"") == true
            }
            #expect(entry?["name"]?.stringValue == device.name, "\(device.name)")
        }
        for group in home.groups.values {
            let entry = devices.first {
                $0["identifiers"]?.description.contains("\"\(builder.nodeID(group.id))\"") == true
            }
            #expect(entry?["name"]?.stringValue == group.name, "\(group.name)")
        }
    }

    // MARK: States

    /// Every entity shows what the simulator holds (read by coap-client as another client).
    func everythingEqualsTheSimulator(_ ws: HomeAssistantWebSocket, _ gateway: SimulatedGateway) async throws {
        var devices: [Int: HubDevice] = [:]
        for id in home.devices.keys.sorted() {
            devices[id] = try await gateway.device(id).hubDevice(hub: home.hub)
        }
        for device in devices.values.sorted(by: { $0.id < $1.id }) {
            if device.light != nil {
                try await expectLight(ws, entity(device.id, "light"), MQTTState.payload(for: device), device.name)
            }
            if let plug = device.onOff {
                try await expectState(ws, entity(device.id, "switch"), plug.on ? "on" : "off")
            }
            if let blind = device.cover {
                let open = blind.openPercent
                try await ws.waitForState(entity(device.id, "cover"), "at \(open) %") {
                    $0?["attributes"]?["current_position"]?.intValue == open
                        && $0?["state"]?.stringValue == (open > 0 ? "open" : "closed")
                }
            }
            if let purifier = device.airPurifier {
                try await expectFan(ws, entity(device.id, "fan"), purifier)
                if let pm25 = purifier.pm25 { try await expectState(ws, entity(device.id, "pm25"), "\(pm25)") }
                if let remaining = purifier.filterRemaining {
                    try await expectState(ws, entity(device.id, "filter_remaining"), "\(remaining)")
                }
                if let locked = purifier.childLock {
                    try await expectState(ws, entity(device.id, "child_lock"), locked ? "on" : "off")
                }
                if let ledsOn = purifier.ledsOn {
                    try await expectState(ws, entity(device.id, "led_enable"), ledsOn ? "on" : "off")
                }
                if let replace = purifier.replaceFilter {
                    try await expectState(ws, entity(device.id, "replace_filter"), replace ? "on" : "off")
                }
            }
            if let battery = device.battery?.level {
                try await expectState(ws, entity(device.id, "battery"), "\(battery)")
            }
        }
        // The repeater shows when it was last seen (the other devices have it disabled).
        if let lastSeen = devices[65545]?.lastSeen {
            let date = Date(timeIntervalSince1970: TimeInterval(lastSeen))
            try await ws.waitForState(entity(65545, "last_seen"), "last seen") { state in
                guard let text = state?["state"]?.stringValue else { return false }
                return ISO8601DateFormatter().date(from: text) == date
            }
        }
        for group in home.groups.values.sorted(by: { $0.id < $1.id }) {
            let members = group.members.compactMap { $0.number.flatMap { devices[$0] } }
            guard ColorMode.supported(byGroupOf: members) != nil else { continue }
            let payload = MQTTState.payload(for: group, members: members)
            try await expectLight(ws, entity(group.id, "light"), payload, group.name)
        }
        let gateway = configs.filter { $0.nodeID.hasSuffix("_gateway") }
        let connection = try #require(gateway.first { $0.objectID == "connectivity" })
        try await expectState(ws, Self.entityID(connection), "on")
        let firmware = try #require(gateway.first { $0.objectID == "firmware" })
        try await expectState(ws, Self.entityID(firmware), home.details.firmware)
    }

    // MARK: Health

    /// The bridge's sensors and each gateway's health sensors show the figures of
    /// `<base>/bridge/health` (a fresh report, asked for with `bridge/request/health`): what
    /// their templates give for that payload (rendered with Jinja2), as Home Assistant stores it.
    func healthSensorsShowTheReport(
        _ ws: HomeAssistantWebSocket, _ harness: BridgeHarness, also others: World...
    ) async throws {
        let watcher = try await harness.subscribe(["tradfri/bridge/health"])
        defer { watcher.signal(SIGTERM) }
        let mark = watcher.lineCount
        try await harness.publish("tradfri/bridge/request/health", "")
        let report = try await message(on: "tradfri/bridge/health", from: watcher, after: mark) {
            $0["healthy"] == true
        }
        let sensors = ([self] + others).flatMap(\.configs).filter {
            $0.payload["state_topic"] == "tradfri/bridge/health"
        }
        #expect(sensors.count == 6 + 6 * (1 + others.count), "the bridge's six, and six per gateway")
        for config in sensors {
            let entityID = Self.entityID(config)
            let template = try #require(config.payload["value_template"]?.stringValue)
            let expected = try await Jinja.state(template, payload: report.description)
            // "None" (no notification yet) is "unknown" in Home Assistant.
            let shown = expected == "None" ? "unknown" : expected
            try await ws.waitForState(entityID, "\(entityID) = \(shown)") { state in
                guard let text = state?["state"]?.stringValue else { return false }
                return text == shown || (Double(text) != nil && Double(text) == Double(shown))
            }
        }
        let uptime = try #require(ws.state("sensor.tradfri_bridge_uptime"))
        #expect(uptime["attributes"]?["unit_of_measurement"] == "s")
        #expect(ws.state("sensor.tradfri_bridge_memory")?["attributes"]?["unit_of_measurement"] == "MiB")
        #expect((ws.state("sensor.tradfri_bridge_memory")?["state"]?.stringValue).flatMap(Double.init) ?? 0 > 1)
    }

    func expectState(_ ws: HomeAssistantWebSocket, _ entityID: String, _ value: String) async throws {
        try await ws.waitForState(entityID, "= \(value)") { $0?["state"]?.stringValue == value }
    }

    /// Home Assistant shows the light as `payload` (the bridge's MQTT state) says: on/off,
    /// brightness (0–254 → 0–255), the colour mode and its colour.
    func expectLight(_ ws: HomeAssistantWebSocket, _ entityID: String, _ payload: JSON, _ what: String) async throws {
        try await ws.waitForState(entityID, "shows \(what) as \(payload)") { Self.light($0, shows: payload) }
    }

    static func light(_ state: JSON?, shows payload: JSON) -> Bool {
        guard let state, let attributes = state["attributes"] else { return false }
        let on = payload["state"] == "ON"
        guard state["state"]?.stringValue == (on ? "on" : "off") else { return false }
        guard on else { return true }
        let mode = payload["color_mode"]?.stringValue
        guard attributes["color_mode"]?.stringValue == mode else { return false }
        if mode != "onoff" {
            guard let level = payload["brightness"]?.doubleValue, let shown = attributes["brightness"]?.doubleValue,
                abs(shown - level * 255 / 254) <= 1.5
            else { return false }
        }
        switch mode {
        case "color_temp":
            guard let mireds = payload["color_temp"]?.intValue, let kelvin = attributes["color_temp_kelvin"]?.intValue
            else { return false }
            return abs(kelvin - Color.kelvin(fromMireds: mireds)) <= 20
        case "xy":
            guard let x = payload["color"]?["x"]?.doubleValue, let y = payload["color"]?["y"]?.doubleValue,
                let shown = attributes["xy_color"]?.arrayValue?.compactMap(\.doubleValue), shown.count == 2
            else { return false }
            return abs(shown[0] - x) <= 0.002 && abs(shown[1] - y) <= 0.002
        default:
            return true
        }
    }

    func expectFan(_ ws: HomeAssistantWebSocket, _ entityID: String, _ purifier: AirPurifier) async throws {
        let mode = purifier.fanMode.name
        try await ws.waitForState(entityID, "fan mode \(mode)") { state in
            guard let state, let attributes = state["attributes"] else { return false }
            switch mode {
            case "off": return state["state"] == "off"
            case "auto": return state["state"] == "on" && attributes["preset_mode"] == "auto"
            default:
                return state["state"] == "on" && attributes["preset_mode"] == .null
                    && attributes["percentage"]?.intValue == (Int(mode) ?? 0) * 20
            }
        }
    }

    // MARK: Home Assistant → simulator

    func servicesChangeTheSimulator(_ ws: HomeAssistantWebSocket, _ harness: BridgeHarness) async throws {
        // White spectrum: brightness, colour temperature and a transition at once.
        let ceiling = entity(65538, "light")
        try await ws.call("light", "turn_on", ceiling, ["brightness": 128, "color_temp_kelvin": 3000, "transition": 1])
        try await ws.waitForState(ceiling, "dimmed to 3000 K") {
            Self.light($0, shows: ["state": "ON", "brightness": 127, "color_mode": "color_temp", "color_temp": 333])
        }
        var light = try #require(try await harness.device(65538).light)
        #expect((127...128).contains(light.brightness) && light.colorTemperature == 333 && light.on)

        // Colour: xy, then hue/saturation (Home Assistant converts it to xy for this light).
        let lamp = entity(65539, "light")
        try await ws.call("light", "turn_on", lamp, ["xy_color": [0.17, 0.7], "brightness": 255])
        try await ws.waitForState(lamp, "green") {
            Self.light(
                $0, shows: ["state": "ON", "brightness": 254, "color_mode": "xy", "color": ["x": 0.17, "y": 0.7]])
        }
        light = try #require(try await harness.device(65539).light)
        #expect(abs(Double(light.x ?? 0) / 65535 - 0.17) < 0.002 && abs(Double(light.y ?? 0) / 65535 - 0.7) < 0.002)
        #expect(light.brightness == 254)
        try await ws.call("light", "turn_on", lamp, ["hs_color": [240, 100]])
        try await ws.waitForState(lamp, "blue") { state in
            let hs = state?["attributes"]?["hs_color"]?.arrayValue?.compactMap(\.doubleValue) ?? []
            return state?["attributes"]?["color_mode"] == "xy" && hs.count == 2 && abs(hs[0] - 240) < 10 && hs[1] > 90
        }
        light = try #require(try await harness.device(65539).light)
        #expect(Double(light.x ?? 65535) / 65535 < 0.2 && Double(light.y ?? 65535) / 65535 < 0.1, "blue")

        // Dimmable white.
        let hallway = entity(65537, "light")
        try await ws.call("light", "turn_on", hallway, ["brightness": 64])
        try await ws.waitForState(hallway, "at 64") {
            Self.light($0, shows: ["state": "ON", "brightness": 64, "color_mode": "brightness"])
        }
        light = try #require(try await harness.device(65537).light)
        #expect(light.on && (63...64).contains(light.brightness))
        try await ws.call("light", "turn_off", hallway, ["transition": 1])
        try await expectState(ws, hallway, "off")
        #expect(try await harness.device(65537).light?.on == false)

        // A room: every bulb follows, and the room shows the colour temperature it was given.
        let room = entity(131073, "light")
        try await ws.call("light", "turn_on", room, ["brightness": 100, "color_temp_kelvin": 2500])
        try await ws.waitForState(room, "at 2500 K") {
            Self.light($0, shows: ["state": "ON", "brightness": 100, "color_mode": "color_temp", "color_temp": 400])
        }
        #expect(try await harness.device(65538).light?.colorTemperature == 400)
        #expect(try await harness.device(65550).light?.colorTemperature == 400)
        try await ws.call("light", "turn_off", room)
        try await expectState(ws, room, "off")
        for id in [65538, 65539, 65550] { #expect(try await harness.device(id).light?.on == false) }

        // Plug, blind, purifier, scene.
        let plug = entity(65543, "switch")
        try await ws.call("switch", "turn_on", plug)
        try await expectState(ws, plug, "on")
        #expect(try await harness.device(65543).plug?.on == true)

        let blind = entity(65546, "cover")
        try await ws.call("cover", "set_cover_position", blind, ["position": 40])
        try await ws.waitForState(blind, "at 40 %") { $0?["attributes"]?["current_position"] == 40 }
        #expect(try await harness.device(65546).blind?.openPercent == 40)

        let fan = entity(65547, "fan")
        try await ws.call("fan", "set_percentage", fan, ["percentage": 60])
        try await ws.waitForState(fan, "at 60 %") { $0?["attributes"]?["percentage"] == 60 }
        #expect(try await harness.device(65547).airPurifier?.fanMode == 30, "60 % is level 3 of 5")
        try await ws.call("fan", "set_preset_mode", fan, ["preset_mode": "auto"])
        try await ws.waitForState(fan, "auto") { $0?["attributes"]?["preset_mode"] == "auto" }
        #expect(try await harness.device(65547).airPurifier?.fanMode == 1)
        let lock = entity(65547, "child_lock")
        try await ws.call("switch", "turn_on", lock)
        try await expectState(ws, lock, "on")
        #expect(try await harness.device(65547).airPurifier?.controlsLocked == true)

        try await ws.call("scene", "turn_on", entity(131073, "scene_196611"))
        try await ws.waitForState(ceiling, "FOCUS") {
            Self.light($0, shows: ["state": "ON", "brightness": 254, "color_mode": "color_temp", "color_temp": 250])
        }
        light = try #require(try await harness.device(65550).light)
        #expect(light.on && light.brightness == 254 && light.colorTemperature == 250)
        try await everythingEqualsTheSimulator(ws, harness.primary)
    }

    // MARK: Simulator → Home Assistant

    func changesByAnotherClientReachHomeAssistant(_ ws: HomeAssistantWebSocket, _ harness: BridgeHarness) async throws {
        _ = try await harness.coap("put", "15001/65550", #"{"3311":[{"5851":60}]}"#)
        try await ws.waitForState(entity(65550, "light"), "dimmed in the app") {
            Self.light($0, shows: ["state": "ON", "brightness": 60, "color_mode": "color_temp", "color_temp": 250])
        }
        _ = try await harness.coap("put", "15001/65543", #"{"3312":[{"5850":0}]}"#)
        try await expectState(ws, entity(65543, "switch"), "off")
        _ = try await harness.coap("put", "15001/65546", #"{"15015":[{"5536":20}]}"#)
        try await ws.waitForState(entity(65546, "cover"), "opened in the app") {
            $0?["attributes"]?["current_position"] == 80
        }
        try await everythingEqualsTheSimulator(ws, harness.primary)
    }

    // MARK: Availability

    func availabilityFollowsTheBridge(_ ws: HomeAssistantWebSocket, _ harness: BridgeHarness) async throws {
        func all(_ available: Bool) async throws {
            for entityID in enabledEntityIDs {
                try await ws.waitForState(entityID, within: .seconds(30), available ? "available" : "unavailable") {
                    ($0?["state"] == "unavailable") != available && $0 != nil
                }
            }
        }
        _ = await harness.stopBridge()
        try await all(false)
        try await harness.startBridge(extraConfiguration: "homeassistant:\n  republish_delay: 1")
        try await all(true)
        try await everythingEqualsTheSimulator(ws, harness.primary)
        await harness.killBridge()
        try await all(false)
        try await harness.startBridge(extraConfiguration: "homeassistant:\n  republish_delay: 1")
        try await all(true)
        try await everythingEqualsTheSimulator(ws, harness.primary)

        // The gateway's reboot button: the gateway goes away (its devices with it) and comes back.
        let gateway = configs.filter { $0.nodeID.hasSuffix("_gateway") }
        let reboot = Self.entityID(try #require(gateway.first { $0.objectID == "reboot" }))
        let connection = Self.entityID(try #require(gateway.first { $0.objectID == "connectivity" }))
        let ceiling = entity(65538, "light")
        try await ws.call("button", "press", reboot)
        try await expectState(ws, connection, "off")
        try await ws.waitForState(ceiling, "unavailable while the gateway reboots") { $0?["state"] == "unavailable" }
        try await ws.waitForState(connection, within: .seconds(30), "back") { $0?["state"] == "on" }
        try await all(true)
    }

    // MARK: Renames

    /// Renamed in the IKEA app, over and over: the entity stays (same entity id), follows the new
    /// topics each time, and its device takes the new name.
    func renamesKeepTheEntity(_ ws: HomeAssistantWebSocket, _ harness: BridgeHarness) async throws {
        let ceiling = entity(65538, "light")
        let watcher = try await harness.subscribe(["homeassistant/light/+/light/config", "tradfri/+"])
        var level = 30
        for round in 1...10 {
            let name = "Ceiling \(round)"
            let before = watcher.lineCount
            _ = try await harness.coap("put", "15001/65538", #"{"9001":"\#(name)"}"#)
            try await message(
                on: "homeassistant/light/\(builder.nodeID(65538))/light/config", from: watcher, after: before
            ) { $0["state_topic"]?.stringValue == "tradfri/ceiling_\(round)" }
            level += 10
            _ = try await harness.coap("put", "15001/65538", #"{"3311":[{"5850":1,"5851":\#(level)}]}"#)
            let expected = level
            try await ws.waitForState(ceiling, "dimmed after the rename to \(name)") {
                guard let shown = $0?["attributes"]?["brightness"]?.doubleValue else { return false }
                return abs(shown - Double(expected) * 255 / 254) <= 1.5
            }
        }
        // A room too.
        let before = watcher.lineCount
        _ = try await harness.coap("put", "15004/131073", #"{"9001":"Lounge"}"#)
        try await message(
            on: "homeassistant/light/\(builder.nodeID(131073))/light/config", from: watcher, after: before
        ) { $0["state_topic"] == "tradfri/lounge" }
        _ = try await harness.coap("put", "15004/131073", #"{"5850":0}"#)
        try await expectState(ws, entity(131073, "light"), "off")
        // The old topics are cleared once Home Assistant has moved (the last ones 2 s later).
        try await watcher.waitForLine(within: .seconds(10), "the last old topic cleared") {
            $0 == "tradfri/ceiling_9 (null)"
        }
        try await watcher.waitForLine(within: .seconds(10), "the room's old topic cleared") {
            $0 == "tradfri/living_room (null)"
        }
        watcher.signal(SIGTERM)

        let registry = try await ws.request(["type": "config/entity_registry/list"]).arrayValue ?? []
        let entry = registry.first { $0["unique_id"]?.stringValue == "\(builder.nodeID(65538))_light" }
        #expect(entry?["entity_id"]?.stringValue == ceiling, "the same entity")
        #expect(registry.filter { ($0["unique_id"]?.stringValue ?? "").hasPrefix("tradfri_") }.count == configs.count)
        let devices: [JSON] = try await ws.until(within: .seconds(10), "the device renamed") {
            let list = try await ws.request(["type": "config/device_registry/list"]).arrayValue ?? []
            let device = list.first { $0["id"] == entry?["device_id"] }
            return device?["name"] == "Ceiling 10" ? list : nil
        }
        #expect(devices.contains { $0["name"] == "Lounge" })
    }

    // MARK: The log

    /// Warnings and errors in Home Assistant's log that concern the bridge's payloads: anything
    /// from or about MQTT or a template, or naming our topics or entities (with its traceback).
    /// Others (the machine has no ffmpeg, say) are not ours; the test prints them.
    func problems(in log: [String]) -> [String] {
        let markers = ["mqtt", "tradfri", "template", "value_json", "error parsing", "color_mode"]
        let entityIDs = configs.map(Self.entityID)
        var problems: [String] = []
        var inProblem = false
        for line in log {
            let isEntry = line.count > 24 && line.prefix(4).allSatisfy(\.isNumber) && line.dropFirst(4).first == "-"
            guard isEntry else {
                if inProblem { problems.append("    " + line) }
                continue
            }
            let level = line.split(separator: " ").dropFirst(2).first ?? ""
            let lowered = line.lowercased()
            inProblem =
                ["WARNING", "ERROR", "CRITICAL"].contains(level)
                && (markers.contains { lowered.contains($0) } || entityIDs.contains { line.contains($0) })
            if inProblem { problems.append(line) }
        }
        return problems
    }
}
