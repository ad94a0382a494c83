import HubModel

/// Builds the Home Assistant MQTT discovery configs for one gateway, its devices, groups and
/// scenes, composing the entities each capability offers (`HomeAssistantEntity`, in
/// `Capabilities/`) with their identity. Pure: no I/O, the same inventory always gives the same payloads (tested without a
/// broker, and against Home Assistant's documented keys).
///
/// Every entity gets:
/// - `unique_id` `tradfri_<gatewayId>_<instanceId>_<object>` (never a name, so renames in the
///   IKEA app keep the entity; the gateway id keeps two gateways' devices apart);
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
    /// The gateway's configured name, and whether the bridge runs several (then its name is in
    /// its device's name and entity ids, and in the reboot button's request).
    public var gatewayName: String
    public var severalGateways: Bool
    public var version: String

    /// Where users find help (the packaging's Homepage; change both together).
    public static let supportURL = "https://example.invalid/tradfri-bridge"

    public init(
        discoveryPrefix: String, baseTopic: String, gatewayID: String, gatewayName: String = "gateway",
        severalGateways: Bool = false, version: String = BridgeVersion.current
    ) {
        self.discoveryPrefix = discoveryPrefix
        self.baseTopic = baseTopic
        self.gatewayID = gatewayID
        self.gatewayName = gatewayName
        self.severalGateways = severalGateways
        self.version = version
    }

    // MARK: Identity

    /// The node id of a device or group: `tradfri_<gatewayId>_<instanceId>`.
    public func nodeID(_ item: ItemID) -> String { "tradfri_\(gatewayID)_\(item.local)" }

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

    /// An entity id from a friendly name (`garden/hallway` → `garden_hallway`).
    static func entityID(_ friendlyName: String) -> String {
        friendlyName.replacingOccurrences(of: "/", with: "_")
    }

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
            "identifiers": [.string(gatewayIdentifier)],
            "name": .string(severalGateways ? "TRÅDFRI gateway \(gatewayName)" : "TRÅDFRI gateway"),
            "manufacturer": "IKEA of Sweden", "model": "TRÅDFRI gateway",
        ]
        if let firmware { device["sw_version"] = .string(firmware) }
        let node = gatewayNodeID
        let info = topic("bridge/info")
        let entity = severalGateways ? "tradfri_\(Self.entityID(gatewayName))" : "tradfri_gateway"
        let gateway = "value_json.gateways['\(gatewayName)']"
        let press: JSON = ["gateway": .string(gatewayName)]
        return [
            config(
                "binary_sensor", node: node, object: "connectivity", name: "Connection",
                entityID: "\(entity)_connection", device: .object(device), stateTopic: nil,
                [
                    "state_topic": .string(info), "device_class": "connectivity", "entity_category": "diagnostic",
                    "value_template": .string("{{ 'ON' if \(gateway).connected else 'OFF' }}"),
                ]),
            config(
                "sensor", node: node, object: "firmware", name: "Firmware", entityID: "\(entity)_firmware",
                device: .object(device), stateTopic: nil,
                [
                    "state_topic": .string(info), "entity_category": "diagnostic", "icon": "mdi:chip",
                    "value_template": .string("{{ \(gateway).firmware | default('None') }}"),
                ]),
            config(
                "button", node: node, object: "reboot", name: "Reboot", entityID: "\(entity)_reboot",
                device: .object(device), stateTopic: nil,
                [
                    "command_topic": .string(topic("bridge/request/gateway/reboot")),
                    "payload_press": .string(press.description),
                    "device_class": "restart", "entity_category": "config",
                ]),
        ]
    }

    // MARK: Devices

    private func deviceBlock(_ device: HubDevice, friendlyName: String, area: String?) -> JSON {
        var block: [String: JSON] = [
            "identifiers": [.string(nodeID(device.id))],
            "name": .string(device.name.isEmpty ? friendlyName : device.name),
            "via_device": .string(gatewayIdentifier),
        ]
        if !device.manufacturer.isEmpty { block["manufacturer"] = .string(device.manufacturer) }
        if !device.model.isEmpty { block["model"] = .string(device.model) }
        if let firmware = device.firmware, !firmware.isEmpty { block["sw_version"] = .string(firmware) }
        if !device.serial.isEmpty { block["serial_number"] = .string(device.serial) }
        if let area, !area.isEmpty { block["suggested_area"] = .string(area) }
        return .object(block)
    }

    /// The device's suggested area: the name of its room, when it is in exactly one group.
    public static func area(ofDevice id: ItemID, in groups: some Sequence<HubGroup>) -> String? {
        let rooms = groups.filter { $0.members.contains(id) }
        return rooms.count == 1 ? rooms[0].name : nil
    }

    /// The configs of one device under its friendly name: the entities of each of its
    /// capabilities, then "last seen" (diagnostic and off by default, except for devices that
    /// have nothing else, such as repeaters, so they still appear with something to show).
    /// - Parameter area: the name of the one room (group) the device is in, if exactly one.
    public func deviceConfigs(_ device: HubDevice, friendlyName: String, area: String?) -> [HomeAssistantConfig] {
        let state = topic(friendlyName)
        var entities: [HomeAssistantEntity] = []
        if let light = device.light { entities += light.homeAssistantEntities(state: state) }
        if let onOff = device.onOff { entities += onOff.homeAssistantEntities(state: state) }
        if let cover = device.cover { entities += cover.homeAssistantEntities(state: state) }
        if let purifier = device.airPurifier { entities += purifier.homeAssistantEntities(state: state) }
        if device.battery != nil { entities += Battery.homeAssistantEntities(state: state) }
        entities += LastSeen.homeAssistantEntities(state: state, enabledByDefault: entities.isEmpty)
        let node = nodeID(device.id)
        let block = deviceBlock(device, friendlyName: friendlyName, area: area)
        let base = Self.entityID(friendlyName)
        // The main entity (no name of its own) is `<component>.<friendly name>`, the others
        // `<component>.<friendly name>_<object>`.
        return entities.map { entity in
            config(
                entity.component, node: node, object: entity.object, name: entity.name,
                entityID: entity.name == nil ? base : "\(base)_\(entity.object)", device: block, stateTopic: state,
                entity.keys)
        }
    }

    // MARK: Groups and scenes

    /// A group (room) as a device of its own: a light when it holds lights or on/off devices
    /// (colour modes from its members, `ColorMode.supported(byGroupOf:)`), and one scene entity
    /// per scene (IKEA mood).
    public func groupConfigs(_ group: HubGroup, friendlyName: String, members: [HubDevice]) -> [HomeAssistantConfig] {
        let node = nodeID(group.id)
        let state = topic(friendlyName)
        let block: JSON = [
            "identifiers": [.string(node)], "name": .string(group.name.isEmpty ? friendlyName : group.name),
            "manufacturer": "IKEA of Sweden", "model": "TRÅDFRI group", "via_device": .string(gatewayIdentifier),
            "suggested_area": .string(group.name.isEmpty ? friendlyName : group.name),
        ]
        let base = Self.entityID(friendlyName)
        var configs: [HomeAssistantConfig] = []
        if let modes = ColorMode.supported(byGroupOf: members) {
            let ranges = members.compactMap {
                $0.light?.spectrum == .whiteSpectrum ? $0.light?.colorTemperatureRange : nil
            }
            let mireds = (ranges.map(\.lowerBound).min() ?? 250)...(ranges.map(\.upperBound).max() ?? 454)
            configs.append(
                config(
                    "light", node: node, object: "light", name: nil, entityID: base, device: block,
                    stateTopic: state, Light.homeAssistantKeys(state: state, modes: modes, mireds: mireds)))
        }
        for scene in group.scenes {
            let press: JSON = ["scene": .string(scene.name)]
            let entityID = "\(base)_\(FriendlyNames.slug(scene.name, fallback: scene.id.local))"
            configs.append(
                config(
                    "scene", node: node, object: "scene_\(scene.id.local)", name: scene.name, entityID: entityID,
                    device: block, stateTopic: state,
                    [
                        "command_topic": .string(state + "/set"), "payload_on": .string(press.description),
                    ]))
        }
        return configs
    }
}
