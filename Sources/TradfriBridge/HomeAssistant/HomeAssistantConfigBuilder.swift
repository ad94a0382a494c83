import TradfriModel

/// Builds the Home Assistant MQTT discovery configs for the gateway, its devices, groups and
/// scenes. Pure: no I/O, the same inventory always gives the same payloads (tested without a
/// broker, and against Home Assistant's documented keys).
///
/// Every entity gets:
/// - `unique_id` `tradfri_<gatewayId>_<instanceId>_<object>` (never a name, so renames in the
///   IKEA app keep the entity);
/// - a `device` block (`identifiers` `tradfri_<gatewayId>_<instanceId>`, manufacturer, model,
///   firmware, serial, `via_device` = the gateway, `suggested_area` = the device's only room);
/// - `object_id` and `default_entity_id` (`light.living_room_ceiling`, `sensor.bedroom_blind_battery`):
///   the entity id Home Assistant gives a new entity (`object_id` up to 2026.3, `default_entity_id`
///   from 2025.10); an existing entity keeps its id when the device is renamed;
/// - an `origin` block naming the bridge (name, version and support URL only: Home Assistant
///   2024.3 refuses any other key there, as it refuses `device.model_id`);
/// - availability from both `<base>/bridge/state` and `<base>/<name>/availability`
///   (`availability_mode: all`): an entity is available only while the bridge runs and the
///   device is reachable through a live gateway session.
///
/// Topics follow the device's current friendly name; the payloads read the state JSON of
/// `MQTTState` and send what `CommandParser` accepts.
public struct HomeAssistantConfigBuilder: Sendable {
    public var discoveryPrefix: String
    public var baseTopic: String
    public var gatewayID: String
    public var version: String

    /// Where users find help (the packaging's Homepage; change both together).
    public static let supportURL = "https://example.invalid/tradfri-bridge"
    /// White-spectrum bulbs: 250 (cold, 4000 K) … 454 (warm, 2200 K) mireds.
    static let mireds = Color.whiteSpectrumMireds

    public init(discoveryPrefix: String, baseTopic: String, gatewayID: String, version: String = BridgeVersion.current)
    {
        self.discoveryPrefix = discoveryPrefix
        self.baseTopic = baseTopic
        self.gatewayID = gatewayID
        self.version = version
    }

    // MARK: Identity

    /// The node id of a device or group: `tradfri_<gatewayId>_<instanceId>`.
    public func nodeID(_ instanceID: Int) -> String { "tradfri_\(gatewayID)_\(instanceID)" }

    public var gatewayNodeID: String { "tradfri_\(gatewayID)_gateway" }

    /// The device identifier of the gateway (every other device's `via_device`).
    public var gatewayIdentifier: String { "tradfri_\(gatewayID)" }

    /// Whether a config topic belongs to this gateway's entities (for cleaning up stale ones).
    public func isOwn(topic: String) -> Bool {
        guard topic.hasPrefix(discoveryPrefix + "/") else { return false }
        let parts = topic.dropFirst(discoveryPrefix.count + 1).split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 4, parts[3] == "config" else { return false }
        return parts[1].hasPrefix("tradfri_\(gatewayID)_")
    }

    var origin: JSON {
        ["name": "tradfri-bridge", "sw_version": .string(version), "support_url": .string(Self.supportURL)]
    }

    private func topic(_ name: String) -> String { "\(baseTopic)/\(name)" }

    private func availability(_ stateTopic: String?) -> [String: JSON] {
        var list: [JSON] = [["topic": .string(topic("bridge/state")), "value_template": "{{ value_json.state }}"]]
        if let stateTopic {
            list.append(["topic": .string(stateTopic + "/availability"), "value_template": "{{ value_json.state }}"])
        }
        return ["availability": .array(list), "availability_mode": "all"]
    }

    /// One entity's config: the common keys merged with `keys`.
    /// - Parameter entityID: the object id of the entity id Home Assistant gives a new entity.
    private func config(
        _ component: String, node: String, object: String, name: String?, entityID: String, device: JSON,
        stateTopic: String?, _ keys: [String: JSON]
    ) -> HomeAssistantConfig {
        var payload = keys
        payload["unique_id"] = .string("\(node)_\(object)")
        payload["name"] = name.map(JSON.string) ?? .null
        payload["object_id"] = .string(entityID)
        payload["default_entity_id"] = .string("\(component).\(entityID)")
        payload["device"] = device
        payload["origin"] = origin
        payload.merge(availability(stateTopic)) { _, new in new }
        return HomeAssistantConfig(
            prefix: discoveryPrefix, component: component, nodeID: node, objectID: object,
            payload: .object(payload))
    }

    // MARK: The gateway

    /// The gateway as a device: connectivity (from `bridge/info`), firmware, and a reboot button
    /// wired to `bridge/request/gateway/reboot`. Available while the bridge runs.
    public func gatewayConfigs(firmware: String?) -> [HomeAssistantConfig] {
        var device: [String: JSON] = [
            "identifiers": [.string(gatewayIdentifier)], "name": "TRÅDFRI gateway", "manufacturer": "IKEA of Sweden",
            "model": "TRÅDFRI gateway",
        ]
        if let firmware { device["sw_version"] = .string(firmware) }
        let node = gatewayNodeID
        let info = topic("bridge/info")
        return [
            config(
                "binary_sensor", node: node, object: "connectivity", name: "Connection",
                entityID: "tradfri_gateway_connection", device: .object(device), stateTopic: nil,
                [
                    "state_topic": .string(info), "device_class": "connectivity", "entity_category": "diagnostic",
                    "value_template": "{{ 'ON' if value_json.gateway.connected else 'OFF' }}",
                ]),
            config(
                "sensor", node: node, object: "firmware", name: "Firmware", entityID: "tradfri_gateway_firmware",
                device: .object(device), stateTopic: nil,
                [
                    "state_topic": .string(info), "entity_category": "diagnostic", "icon": "mdi:chip",
                    "value_template": "{{ value_json.gateway.firmware | default('None') }}",
                ]),
            config(
                "button", node: node, object: "reboot", name: "Reboot", entityID: "tradfri_gateway_reboot",
                device: .object(device), stateTopic: nil,
                [
                    "command_topic": .string(topic("bridge/request/gateway/reboot")), "payload_press": "{}",
                    "device_class": "restart", "entity_category": "config",
                ]),
        ]
    }

    // MARK: Devices

    private func deviceBlock(_ device: Device, friendlyName: String, area: String?) -> JSON {
        var block: [String: JSON] = [
            "identifiers": [.string(nodeID(device.id))],
            "name": .string(device.name.isEmpty ? friendlyName : device.name),
            "via_device": .string(gatewayIdentifier),
        ]
        if !device.info.manufacturer.isEmpty { block["manufacturer"] = .string(device.info.manufacturer) }
        if !device.info.model.isEmpty { block["model"] = .string(device.info.model) }
        if let firmware = device.info.firmware, !firmware.isEmpty { block["sw_version"] = .string(firmware) }
        if !device.info.serial.isEmpty { block["serial_number"] = .string(device.info.serial) }
        if let area, !area.isEmpty { block["suggested_area"] = .string(area) }
        return .object(block)
    }

    /// The device's suggested area: the name of its room, when it is in exactly one group.
    public static func area(ofDevice id: Int, in groups: some Sequence<Group>) -> String? {
        let rooms = groups.filter { $0.memberIDs.contains(id) }
        return rooms.count == 1 ? rooms[0].name : nil
    }

    /// The configs of one device under its friendly name.
    /// - Parameter area: the name of the one room (group) the device is in, if exactly one.
    public func deviceConfigs(_ device: Device, friendlyName: String, area: String?) -> [HomeAssistantConfig] {
        let node = nodeID(device.id)
        let state = topic(friendlyName)
        let block = deviceBlock(device, friendlyName: friendlyName, area: area)
        // The main entity (no name of its own) is `<component>.<friendly name>`, the others
        // `<component>.<friendly name>_<object>`.
        func entity(
            _ component: String, _ object: String, _ name: String?, _ keys: [String: JSON]
        ) -> HomeAssistantConfig {
            config(
                component, node: node, object: object, name: name,
                entityID: name == nil ? friendlyName : "\(friendlyName)_\(object)", device: block, stateTopic: state,
                keys)
        }
        var configs: [HomeAssistantConfig] = []
        if let light = device.light {
            configs.append(
                entity("light", "light", nil, lightKeys(state, modes: ColorMode.supported(by: light.spectrum))))
        }
        if device.plug != nil {
            configs.append(
                entity(
                    "switch", "switch", nil,
                    [
                        "device_class": "outlet", "command_topic": .string(state + "/set"),
                        "state_topic": .string(state),
                        "value_template": "{{ value_json.state }}", "payload_on": "ON", "payload_off": "OFF",
                    ]))
        }
        if device.blind != nil {
            configs.append(
                entity(
                    "cover", "cover", nil,
                    [
                        "device_class": "shade", "command_topic": .string(state + "/set"),
                        "payload_open": "OPEN", "payload_close": "CLOSE", "payload_stop": "STOP",
                        "position_topic": .string(state), "position_template": "{{ value_json.position }}",
                        "set_position_topic": .string(state + "/set"),
                        "set_position_template": #"{"position": {{ position }}}"#,
                        "position_open": 100, "position_closed": 0,
                    ]))
        }
        if device.airPurifier != nil {
            configs += airPurifier(state, entity)
        }
        if device.info.battery != nil || device.kind.isBatteryPowered {
            configs.append(
                entity(
                    "sensor", "battery", "Battery",
                    [
                        "state_topic": .string(state), "value_template": "{{ value_json.battery | default('None') }}",
                        "device_class": "battery", "unit_of_measurement": "%", "state_class": "measurement",
                        "entity_category": "diagnostic",
                    ]))
        }
        // Last seen: diagnostic and off by default, except for devices that have nothing else
        // (repeaters), so they still appear with something to show.
        configs.append(
            entity(
                "sensor", "last_seen", "Last seen",
                [
                    "state_topic": .string(state), "value_template": "{{ value_json.last_seen | default('None') }}",
                    "device_class": "timestamp", "entity_category": "diagnostic",
                    "enabled_by_default": .bool(configs.isEmpty),
                ]))
        return configs
    }

    /// A light with the JSON schema on `<name>` / `<name>/set`, brightness 0–254, colour
    /// temperature in mireds, the modes of `ColorMode`.
    ///
    /// Accepted as is by Home Assistant 2024.3 up to the newest release: 2024.3 takes
    /// `supported_color_modes` only together with `color_mode: true` (later releases ignore that
    /// flag; 2025.3–2026.2 log an error line about it and go on) and sends brightness in its
    /// commands only with `brightness: true`; Kelvin options would be read as mireds by 2024.3.
    private func lightKeys(_ state: String, modes: [ColorMode]) -> [String: JSON] {
        var keys: [String: JSON] = [
            "schema": "json", "command_topic": .string(state + "/set"), "state_topic": .string(state),
            "color_mode": true, "supported_color_modes": .array(modes.map { .string($0.rawValue) }),
            "effect": false, "flash": false,
        ]
        if modes != [.onOff] {
            keys["brightness"] = true
            keys["brightness_scale"] = 254
        }
        if modes.contains(.colorTemperature) {
            keys["min_mireds"] = .int(Self.mireds.lowerBound)
            keys["max_mireds"] = .int(Self.mireds.upperBound)
        }
        return keys
    }

    /// STARKVIND: a fan with an `auto` preset and five speeds (the gateway's levels 10…50 are
    /// `fan_mode` "1"…"5"), PM2.5, filter time left and "replace filter", and switches for the
    /// status LEDs and the child lock.
    private func airPurifier(
        _ state: String, _ entity: (String, String, String?, [String: JSON]) -> HomeAssistantConfig
    ) -> [HomeAssistantConfig] {
        let set = JSON.string(state + "/set")
        let topic = JSON.string(state)
        return [
            entity(
                "fan", "fan", nil,
                [
                    "command_topic": set, "command_template": #"{"fan_state": "{{ value }}"}"#,
                    "state_topic": topic, "state_value_template": "{{ value_json.fan_state }}",
                    "payload_on": "ON", "payload_off": "OFF",
                    "percentage_command_topic": set,
                    "percentage_command_template":
                        #"{% if value == 0 %}{"fan_state": "OFF"}{% else %}{"fan_mode": "{{ value }}"}{% endif %}"#,
                    "percentage_state_topic": topic,
                    "percentage_value_template":
                        "{% if value_json.fan_mode == 'off' %}0{% elif value_json.fan_mode == 'auto' %}None{% else %}{{ value_json.fan_mode }}{% endif %}",
                    "speed_range_min": 1, "speed_range_max": 5,
                    "preset_mode_command_topic": set, "preset_mode_command_template": #"{"fan_mode": "{{ value }}"}"#,
                    "preset_mode_state_topic": topic,
                    "preset_mode_value_template": "{{ 'auto' if value_json.fan_mode == 'auto' else 'None' }}",
                    "preset_modes": ["auto"],
                ]),
            entity(
                "sensor", "pm25", "PM2.5",
                [
                    "state_topic": topic, "value_template": "{{ value_json.pm25 }}", "device_class": "pm25",
                    "unit_of_measurement": "µg/m³", "state_class": "measurement",
                ]),
            entity(
                "sensor", "filter_remaining", "Filter remaining",
                [
                    "state_topic": topic, "value_template": "{{ value_json.filter_remaining | default('None') }}",
                    "device_class": "duration", "unit_of_measurement": "min", "entity_category": "diagnostic",
                ]),
            entity(
                "binary_sensor", "replace_filter", "Replace filter",
                [
                    "state_topic": topic, "value_template": "{{ 'ON' if value_json.replace_filter else 'OFF' }}",
                    "device_class": "problem", "entity_category": "diagnostic",
                ]),
            entity(
                "switch", "led_enable", "Status LEDs",
                [
                    "command_topic": set, "state_topic": topic, "icon": "mdi:led-on", "entity_category": "config",
                    "payload_on": #"{"led_enable": true}"#, "payload_off": #"{"led_enable": false}"#,
                    "value_template": "{{ 'ON' if value_json.led_enable else 'OFF' }}", "state_on": "ON",
                    "state_off": "OFF",
                ]),
            entity(
                "switch", "child_lock", "Child lock",
                [
                    "command_topic": set, "state_topic": topic, "icon": "mdi:lock", "entity_category": "config",
                    "payload_on": #"{"child_lock": "LOCK"}"#, "payload_off": #"{"child_lock": "UNLOCK"}"#,
                    "value_template": "{{ 'ON' if value_json.child_lock == 'LOCK' else 'OFF' }}", "state_on": "ON",
                    "state_off": "OFF",
                ]),
        ]
    }

    // MARK: Groups and scenes

    /// A group (room) as a device of its own: a light when it holds lights or plugs (colour
    /// modes from its members), and one scene entity per IKEA scene (mood).
    public func groupConfigs(
        _ group: Group, friendlyName: String, members: [Device], scenes: [Scene]
    )
        -> [HomeAssistantConfig]
    {
        let node = nodeID(group.id)
        let state = topic(friendlyName)
        let block: JSON = [
            "identifiers": [.string(node)], "name": .string(group.name.isEmpty ? friendlyName : group.name),
            "manufacturer": "IKEA of Sweden", "model": "TRÅDFRI group", "via_device": .string(gatewayIdentifier),
            "suggested_area": .string(group.name.isEmpty ? friendlyName : group.name),
        ]
        var configs: [HomeAssistantConfig] = []
        if let modes = ColorMode.supported(byGroupOf: members) {
            configs.append(
                config(
                    "light", node: node, object: "light", name: nil, entityID: friendlyName, device: block,
                    stateTopic: state, lightKeys(state, modes: modes)))
        }
        for scene in scenes.sorted(by: { $0.id < $1.id }) {
            let press: JSON = ["scene": .string(scene.name)]
            let entityID = "\(friendlyName)_\(FriendlyNames.slug(scene.name, fallback: String(scene.id)))"
            configs.append(
                config(
                    "scene", node: node, object: "scene_\(scene.id)", name: scene.name, entityID: entityID,
                    device: block, stateTopic: state,
                    [
                        "command_topic": .string(state + "/set"), "payload_on": .string(press.description),
                    ]))
        }
        return configs
    }
}
