import Foundation
import HubModel
import TestSupport
import Testing
import TradfriBridge
import TradfriModel

/// The demo home exactly as the simulator serves it (`tradfri-gateway-sim --print-fixture`), as
/// the gateway holds it and as the bridge sees it (the hub-neutral model): by default one gateway
/// "gateway" with plain names, or one of several, whose names are under `prefix/`.
struct DemoInventory {
    static let hub = "gateway"
    var hub = DemoInventory.hub
    var prefix: String?
    var details: GatewayDetails
    var gatewayDevices: [Int: Device] = [:]
    /// By the gateway's instance id.
    var devices: [Int: HubDevice] = [:]
    var groups: [Int: HubGroup] = [:]

    static func load(hub: String = DemoInventory.hub, prefix: String? = nil) async throws -> DemoInventory {
        let text = try await runCommand("tradfri-gateway-sim", ["--print-fixture"]).output
        let fixture = try JSON(parsing: text.trimmingCharacters(in: .whitespacesAndNewlines))
        var inventory = DemoInventory(
            hub: hub, prefix: prefix, details: try GatewayDetails(json: try #require(fixture["gateway"])))
        for json in fixture["devices"]?.arrayValue ?? [] {
            let device = try Device(json: json)
            inventory.gatewayDevices[device.id] = device
            inventory.devices[device.id] = device.hubDevice(hub: hub)
        }
        var scenes: [Int: [Scene]] = [:]
        for (group, list) in fixture["scenes"]?.objectValue ?? [:] {
            scenes[Int(group)!] = try (list.arrayValue ?? []).map { try Scene(json: $0) }
        }
        for json in fixture["groups"]?.arrayValue ?? [] {
            let group = try Group(json: json)
            inventory.groups[group.id] = group.hubGroup(hub: hub, scenes: scenes[group.id] ?? [])
        }
        return inventory
    }

    /// Friendly names as the bridge assigns them.
    var names: FriendlyNames {
        FriendlyNames([
            FriendlyNames.Inventory(
                hub: hub, prefix: prefix, devices: devices.values.map { ($0.id, $0.name, $0.type.description) },
                groups: groups.values.map { ($0.id, $0.name) })
        ])
    }

    func members(of group: HubGroup) -> [HubDevice] { group.members.compactMap { $0.number.flatMap { devices[$0] } } }

    /// Every config the bridge publishes for this inventory.
    func configs(_ builder: HomeAssistantConfigBuilder) -> [HomeAssistantConfig] {
        let names = self.names
        var configs = builder.gatewayConfigs(firmware: details.firmware)
        for device in devices.values.sorted(by: { $0.id < $1.id }) {
            configs += builder.deviceConfigs(
                device, friendlyName: names[.device(device.id)]!,
                area: HomeAssistantConfigBuilder.area(ofDevice: device.id, in: groups.values))
        }
        for group in groups.values.sorted(by: { $0.id < $1.id }) {
            configs += builder.groupConfigs(group, friendlyName: names[.group(group.id)]!, members: members(of: group))
        }
        return configs
    }
}

extension HomeAssistantConfigBuilder {
    /// The node id of the gateway's item with this instance id.
    func nodeID(_ id: Int) -> String { nodeID(ItemID(hub: gatewayName, id)) }
}

/// The discovery payloads themselves, without a broker: valid for Home Assistant, stable across
/// renames, and consistent with what the bridge publishes and accepts.
@Suite struct HomeAssistantConfigBuilderTests {
    let builder = HomeAssistantConfigBuilder(
        discoveryPrefix: "homeassistant", baseTopic: "tradfri",
        gatewayID: "7e11515204400072", version: "9.9.9")

    @Test func everyConfigOfTheDemoHomeIsValidForHomeAssistant() async throws {
        let home = try await DemoInventory.load()
        let configs = home.configs(builder)
        let problems = configs.flatMap(HomeAssistantSchema.problems)
        #expect(problems.isEmpty, "\(problems.joined(separator: "\n"))")
        #expect(Set(configs.map(\.topic)).count == configs.count, "one config per topic")
        #expect(Set(configs.compactMap(\.uniqueID)).count == configs.count, "unique ids are unique")
        #expect(
            Set(configs.map(\.component)) == [
                "light", "switch", "cover", "fan", "sensor", "binary_sensor", "button", "scene",
            ])
        for device in home.devices.values {
            let own = configs.filter { $0.nodeID == "tradfri_7e11515204400072_\(device.id.local)" }
            #expect(
                own.contains { $0.payload["enabled_by_default"] != false }, "\(device.name) shows something by default")
            for config in own {
                #expect(config.payload["device"]?["via_device"] == "tradfri_7e11515204400072")
                #expect(config.payload["device"]?["sw_version"] == .string(device.firmware ?? ""))
                #expect(
                    config.payload["origin"] == [
                        "name": "tradfri-bridge", "sw_version": "9.9.9",
                        "support_url": .string(HomeAssistantConfigBuilder.supportURL),
                    ])
                #expect(config.uniqueID == "\(config.nodeID)_\(config.objectID)")
            }
        }
        let gateway = configs.filter { $0.nodeID == "tradfri_7e11515204400072_gateway" }
        #expect(gateway.map(\.component).sorted() == ["binary_sensor", "button", "sensor"])
        #expect(gateway.first?.payload["device"]?["sw_version"] == "1.19.32")
    }

    @Test func lightsOfferExactlyWhatTheirBulbsAndRoomsCanDo() async throws {
        let home = try await DemoInventory.load()
        let configs = home.configs(builder)
        func light(_ id: Int) -> JSON? {
            configs.first { $0.topic == "homeassistant/light/tradfri_7e11515204400072_\(id)/light/config" }?.payload
        }
        #expect(light(65537)?["supported_color_modes"] == ["brightness"], "dimmable white")
        #expect(light(65538)?["supported_color_modes"] == ["color_temp"], "white spectrum")
        #expect(light(65538)?["min_mireds"] == 250 && light(65538)?["max_mireds"] == 454)
        #expect(light(65539)?["supported_color_modes"] == ["xy"], "colour: xy, as the gateway reports it")
        #expect(light(65539)?["min_mireds"] == nil)
        #expect(
            light(131073)?["supported_color_modes"] == ["xy", "color_temp"], "living room: colour and white spectrum")
        #expect(light(131074)?["supported_color_modes"] == ["brightness"], "hallway room: one dimmable bulb")
        #expect(light(131075)?["supported_color_modes"] == ["onoff"], "bedroom: a plug, a blind and a purifier")
        for id in [65537, 65538, 65539, 131073] {
            let config = try #require(light(id))
            #expect(config["schema"] == "json" && config["brightness_scale"] == 254 && config["effect"] == false)
            #expect(config["flash"] == false, "the gateway cannot flash; Home Assistant must not offer it")
            // Home Assistant 2024.3 refuses supported_color_modes without the flag, and sends no
            // brightness without brightness: true.
            #expect(config["color_mode"] == true && config["brightness"] == true)
        }
        #expect(light(131075)?["brightness"] == nil && light(131075)?["color_mode"] == true)
        let ceiling = try #require(light(65538))
        #expect(ceiling["command_topic"] == "tradfri/living_room_ceiling/set")
        #expect(ceiling["state_topic"] == "tradfri/living_room_ceiling")
        #expect(ceiling["name"] == .null, "the entity takes the device's name")
        // The entity id a new entity gets: object_id up to Home Assistant 2026.3, default_entity_id from 2025.10.
        #expect(ceiling["object_id"] == "living_room_ceiling")
        #expect(ceiling["default_entity_id"] == "light.living_room_ceiling")
        #expect(light(131074)?["default_entity_id"] == "light.hallway_group", "the room, not the bulb named alike")
        func entityID(_ node: String, _ object: String) -> JSON? {
            configs.first { $0.nodeID == "tradfri_7e11515204400072_\(node)" && $0.objectID == object }?
                .payload["default_entity_id"]
        }
        #expect(entityID("65546", "battery") == "sensor.bedroom_blind_battery")
        #expect(entityID("131073", "scene_196609") == "scene.living_room_relax")
        #expect(entityID("gateway", "reboot") == "button.tradfri_gateway_reboot")
        for config in configs {
            let id = try #require(config.payload["object_id"]?.stringValue)
            #expect(config.payload["default_entity_id"]?.stringValue == "\(config.component).\(id)")
        }
        #expect(Set(configs.compactMap { $0.payload["default_entity_id"]?.stringValue }).count == configs.count)
        #expect(ceiling["device"]?["suggested_area"] == "Living room")
        #expect(ceiling["availability_mode"] == "all")
        #expect(
            ceiling["availability"] == [
                ["topic": "tradfri/bridge/state", "value_template": "{{ value_json.state }}"],
                ["topic": "tradfri/living_room_ceiling/availability", "value_template": "{{ value_json.state }}"],
            ])
        let scenes = configs.filter { $0.component == "scene" }
        #expect(scenes.count == 4)
        let relax = try #require(scenes.first { $0.objectID == "scene_196609" })
        #expect(relax.payload["command_topic"] == "tradfri/living_room/set")
        #expect(relax.payload["payload_on"] == #"{"scene":"RELAX"}"#)
        #expect(relax.payload["name"] == "RELAX")
    }

    @Test func aRenameKeepsTheEntityAndMovesItsTopics() async throws {
        let home = try await DemoInventory.load()
        var lamp = try #require(home.devices[65539])
        let before = builder.deviceConfigs(lamp, friendlyName: "reading_lamp", area: "Living room")
        lamp.name = "Sofa lamp"
        let after = builder.deviceConfigs(lamp, friendlyName: "sofa_lamp", area: "Living room")
        #expect(before.map(\.topic) == after.map(\.topic), "same config topics: Home Assistant updates in place")
        #expect(before.map(\.uniqueID) == after.map(\.uniqueID))
        #expect(
            after[0].payload["state_topic"] == "tradfri/sofa_lamp"
                && after[0].payload["command_topic"] == "tradfri/sofa_lamp/set")
        #expect(after[0].payload["device"]?["name"] == "Sofa lamp")
        #expect(after.allSatisfy { !$0.payload.description.contains("reading_lamp") })
    }

    /// The exact payloads Home Assistant's JSON light sends are accepted by the bridge's parser,
    /// and the states the bridge publishes read back without a warning.
    @Test func homeAssistantsJSONLightPayloadsRoundTrip() async throws {
        let home = try await DemoInventory.load()
        let configs = home.configs(builder)
        for id in [65537, 65538, 65539, 65550] {
            let device = try #require(home.devices[id])
            let config = try #require(configs.first { $0.nodeID.hasSuffix("_\(id)") && $0.component == "light" })
            var light = try HomeAssistantJSONLight(config: config.payload)
            light.receive(MQTTState.payload(for: device).description)
            #expect(light.problems.isEmpty, "\(device.name): \(light.problems)")
            #expect(light.isOn == device.light?.on)

            var calls = [
                light.turnOn(), light.turnOn(brightness: 128), light.turnOn(brightness: 1, transition: 2),
                light.turnOff(), light.turnOff(transition: 1.5),
            ]
            if light.supportedColorModes.contains("color_temp") {
                calls += [
                    light.turnOn(colorTempKelvin: 2700),
                    light.turnOn(brightness: 255, colorTempKelvin: 4000, transition: 1),
                ]
            }
            if light.supportedColorModes.contains("xy") {
                calls += [light.turnOn(xy: (0.701, 0.299)), light.turnOn(brightness: 10, xy: (0.17, 0.7))]
            }
            for payload in calls {
                let attributes = try CommandParser.attributes(payload: Array(payload.utf8), attribute: nil)
                let command = try CommandParser.command(
                    from: attributes, for: .device(device), expected: ExpectedState())
                #expect(!command.isEmpty, "\(payload)")
            }
            let dimmed = try CommandParser.command(
                from: try CommandParser.attributes(payload: Array(light.turnOn(brightness: 128).utf8), attribute: nil),
                for: .device(device), expected: ExpectedState())
            #expect(dimmed.on == true && dimmed.brightness == 127)
        }
        // Groups take the same payloads.
        let room = try #require(home.groups[131073])
        let config = try #require(configs.first { $0.nodeID.hasSuffix("_131073") && $0.component == "light" })
        let light = try HomeAssistantJSONLight(config: config.payload)
        for payload in [
            light.turnOn(brightness: 50, colorTempKelvin: 3000), light.turnOn(xy: (0.3, 0.3)),
            light.turnOff(transition: 1),
        ] {
            let attributes = try CommandParser.attributes(payload: Array(payload.utf8), attribute: nil)
            _ = try CommandParser.command(
                from: attributes, for: .group(room, members: home.members(of: room)),
                expected: ExpectedState())
        }
    }

    /// Every template reads what the state payloads hold (rendered with Jinja2, as Home
    /// Assistant does), and command templates render what `/set` accepts.
    @Test func templatesReadTheStateAndWriteAcceptedCommands() async throws {
        let home = try await DemoInventory.load()
        let configs = home.configs(builder)
        func template(_ id: String, _ object: String, _ key: String) throws -> String {
            let config = try #require(configs.first { $0.nodeID.hasSuffix("_\(id)") && $0.objectID == object })
            return try #require(config.payload[key]?.stringValue, "\(object) \(key)")
        }
        func state(_ device: HubDevice) -> [String: JSON] {
            let payload = MQTTState.payload(for: device)
            return ["value": .string(payload.description), "value_json": payload]
        }
        // (template, variables, what Home Assistant must get)
        var cases: [(String, [String: JSON], String)] = []
        var purifier = try #require(home.gatewayDevices[65547])
        for (mode, power, percentage, preset) in [
            (1, "ON", "None", "auto"), (30, "ON", "3", "None"), (0, "OFF", "0", "None"),
        ] {
            purifier.airPurifier?.fanMode = mode
            let purifier = purifier.hubDevice(hub: home.hub)
            cases.append((try template("65547", "fan", "state_value_template"), state(purifier), power))
            cases.append((try template("65547", "fan", "percentage_value_template"), state(purifier), percentage))
            cases.append((try template("65547", "fan", "preset_mode_value_template"), state(purifier), preset))
        }
        let purifierState = state(try #require(home.devices[65547]))
        cases += [
            (try template("65547", "pm25", "value_template"), purifierState, "12"),
            (try template("65547", "filter_remaining", "value_template"), purifierState, "257200"),
            (try template("65547", "replace_filter", "value_template"), purifierState, "OFF"),
            (try template("65547", "led_enable", "value_template"), purifierState, "ON"),
            (try template("65547", "child_lock", "value_template"), purifierState, "OFF"),
            (try template("65546", "cover", "position_template"), state(try #require(home.devices[65546])), "0"),
            (try template("65546", "battery", "value_template"), state(try #require(home.devices[65546])), "77"),
            (try template("65543", "switch", "value_template"), state(try #require(home.devices[65543])), "OFF"),
            (
                try template("65545", "last_seen", "value_template"), state(try #require(home.devices[65545])),
                "2021-01-01T00:01:40Z"
            ),
            (try template("65536", "battery", "value_template"), state(try #require(home.devices[65536])), "87"),
        ]
        let online: JSON = [
            "gateways": ["gateway": ["connected": true, "firmware": "1.19.32", "id": "7e11515204400072"]]
        ]
        let offline: JSON = ["gateways": ["gateway": ["connected": false, "id": "7e11515204400072"]]]
        cases += [
            (try template("gateway", "connectivity", "value_template"), ["value_json": online], "ON"),
            (try template("gateway", "firmware", "value_template"), ["value_json": online], "1.19.32"),
            (try template("gateway", "connectivity", "value_template"), ["value_json": offline], "OFF"),
            (try template("gateway", "firmware", "value_template"), ["value_json": offline], "None"),
        ]
        // Commands: what Home Assistant renders, then what the bridge makes of it.
        let commands: [(String, [String: JSON])] = [
            (try template("65547", "fan", "command_template"), ["value": "ON"]),
            (try template("65547", "fan", "percentage_command_template"), ["value": 3]),
            (try template("65547", "fan", "percentage_command_template"), ["value": 0]),
            (try template("65547", "fan", "preset_mode_command_template"), ["value": "auto"]),
            (try template("65546", "cover", "set_position_template"), ["position": 40]),
        ]
        let rendered = try await Jinja.render(
            (cases.map { ($0.0, $0.1) } + commands).map { Jinja.Item(template: $0.0, variables: $0.1) })
        for (index, item) in cases.enumerated() {
            #expect(rendered[index] == item.2, "\(item.0) with \(item.1)")
        }
        var parsed: [DeviceCommand] = []
        for (index, device) in [65547, 65547, 65547, 65547, 65546].enumerated() {
            let text = rendered[cases.count + index]
            let attributes = try CommandParser.attributes(payload: Array(text.utf8), attribute: nil)
            parsed.append(
                try CommandParser.command(
                    from: attributes, for: .device(try #require(home.devices[device])),
                    expected: ExpectedState()))
        }
        #expect(
            parsed.map(\.fanMode) == [.auto, .level(3), .off, .auto, nil],
            "on = auto, 60 % = level 3, 0 % = off, preset auto")
        #expect(parsed[4].position == 40)
    }

    @Test func theSchemaCheckCatchesWhatHomeAssistantWouldDrop() {
        let bad = HomeAssistantConfig(
            prefix: "homeassistant", component: "light", nodeID: "n", objectID: "light",
            payload: [
                "schema": "json", "brightnes_scale": 254, "supported_color_modes": ["brightness", "xy"],
                "device": ["name": "no identifiers"], "origin": ["sw_version": "1"], "availability_mode": "most",
            ])
        let problems = HomeAssistantSchema.problems(bad).joined(separator: "\n")
        for expected in [
            "unknown key 'brightnes_scale'", "missing required key 'command_topic'",
            "onoff and brightness must be the only color mode", "identifiers or connections",
            "origin needs a name", "availability_mode",
        ] {
            #expect(problems.contains(expected), "\(expected) in:\n\(problems)")
        }
    }

    @Test func onlyThisGatewaysConfigsCountAsOwn() {
        #expect(builder.isOwn(topic: "homeassistant/light/tradfri_7e11515204400072_65537/light/config"))
        #expect(builder.isOwn(topic: "homeassistant/sensor/tradfri_7e11515204400072_gateway/firmware/config"))
        #expect(!builder.isOwn(topic: "homeassistant/light/tradfri_0000000000000000_65537/light/config"))
        #expect(!builder.isOwn(topic: "homeassistant/light/0x00158d0001/light/config"))
        #expect(!builder.isOwn(topic: "other/light/tradfri_7e11515204400072_65537/light/config"))
        #expect(!builder.isOwn(topic: "homeassistant/light/tradfri_7e11515204400072_65537/light"))
    }
}
