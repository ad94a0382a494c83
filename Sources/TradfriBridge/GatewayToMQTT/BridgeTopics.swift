import CoAP
import Foundation
import HubModel

/// The bridge's own topics: retained `bridge/state` (with an MQTT will of offline), `bridge/info`,
/// `bridge/devices`, `bridge/groups`, and non-retained `bridge/event` for devices and groups
/// added, removed or renamed, a gateway going offline or online, and repaired divergences.
/// Every list entry and event about a device or group names its gateway (`gateway`).
@CoAPActor
final class BridgeTopics: BridgeFeature {
    private let context: BridgeContext
    /// Hubs whose first full sync is done: events about added/removed devices start after it (not
    /// for the inventory found at start-up), and the lists wait for it.
    private var synced: Set<String> = []
    /// Hubs that refuse the bridge's identity (`pairing_needed` was announced for them).
    private var pairingNeeded: Set<String> = []

    /// The bridge is stopping: its own `offline` is not answered.
    private var stopping = false

    init(context: BridgeContext) {
        self.context = context
    }

    /// Takeover: `bridge/state` is watched. The will of an earlier owner whose connection died
    /// silently (a power cut) is published by the broker up to one and a half keepalives later,
    /// which can be after this instance took over; it is answered with `online` at once.
    var subscriptions: [String] { context.drivenHubs == nil ? [] : [context.topic("bridge/state")] }

    func handle(_ event: BridgeEvent) {
        switch event {
        case .message(let message) where message.topic == context.topic("bridge/state"):
            guard !stopping, context.drivenHubs != nil,
                (try? JSON(parsing: message.payload))?["state"]?.stringValue == "offline"
            else { return }
            context.outbox.publishState(context.topic("bridge/state"), ["state": "online"], retain: true, force: true)
        case .stopping:
            stopping = true
        case .brokerConnected:
            context.outbox.publishState(context.topic("bridge/state"), ["state": "online"], retain: true)
            publishInfo()
        case .hubConnected(let hub, let address):
            publishInfo()
            context.event(
                "gateway_online",
                [
                    "gateway": .string(hub), "address": .string(address),
                    "gateway_id": .string(context.hub(named: hub)?.hardwareID ?? ""),
                ])
        case .hubDisconnected(let hub, let reason):
            publishInfo()
            context.event("gateway_offline", ["gateway": .string(hub), "reason": .string(reason)])
        case .hub(let hub, .synced):
            synced.insert(hub)
            publishInfo()
            publishDevices()
            publishGroups()
        case .hub(let hub, .info):
            publishInfo()
            pairingStateChanged(hub)
        case .hub(_, .fullRead), .optionsChanged, .takeoverChanged:
            publishInfo()
        // Until the first full sync the lists are incomplete: they are published once, at .synced,
        // instead of once per device found (which made the start-up quadratic in the devices).
        case .hub(let hub, .deviceAdded(let device)):
            guard synced.contains(hub) else { return }
            publishDevices()
            context.event("device_added", entry(device))
        case .hub(let hub, .deviceRemoved(let device)):
            guard synced.contains(hub) else { return }
            publishDevices()
            publishGroups()
            context.event(
                "device_removed", ["id": id(device.id), "name": .string(device.name), "gateway": .string(hub)])
        case .hub(let hub, .deviceChanged(let device, let previous)):
            if synced.contains(hub), ListedDevice(device) != ListedDevice(previous) {
                publishDevices()
                publishGroups()
            }
            if device.name != previous.name {
                context.event(
                    "device_renamed",
                    [
                        "id": id(device.id), "from": .string(previous.name), "to": .string(device.name),
                        "friendly_name": context.names[.device(device.id)].map(JSON.string) ?? .null,
                        "gateway": .string(hub),
                    ])
            }
        case .hub(let hub, .groupAdded(let group)):
            guard synced.contains(hub) else { return }
            publishGroups()
            context.event(
                "group_added", ["id": id(group.id), "name": .string(group.name), "gateway": .string(hub)])
        case .hub(let hub, .groupRemoved(let group)):
            guard synced.contains(hub) else { return }
            publishGroups()
            context.event(
                "group_removed", ["id": id(group.id), "name": .string(group.name), "gateway": .string(hub)])
        case .hub(let hub, .groupChanged(let group, let previous)):
            // bridge/groups lists names, members and scenes, not state.
            if synced.contains(hub) { publishGroups() }
            if group.name != previous.name {
                context.event(
                    "group_renamed",
                    [
                        "id": id(group.id), "from": .string(previous.name), "to": .string(group.name),
                        "friendly_name": context.names[.group(group.id)].map(JSON.string) ?? .null,
                        "gateway": .string(hub),
                    ])
            }
        case .namesChanged:
            // A name taken or given up elsewhere moves other topics too (a room becomes
            // `<name>_group` when a device takes its name): the lists say where each one is now.
            if !synced.isEmpty {
                publishDevices()
                publishGroups()
            }
        case .hub(let hub, .stalled(let detail)):
            publishInfo()
            context.event("stall_detected", ["gateway": .string(hub), "detail": .string(detail)])
        case .hub(let hub, .repaired(let kind, let item, let name, let reason)):
            var data: [String: JSON] = [
                "kind": .string(kind), "id": id(item), "reason": .string(reason), "gateway": .string(hub),
            ]
            if let name { data["name"] = .string(name) }
            if kind == "device", let friendly = context.names[.device(item)] {
                data["friendly_name"] = .string(friendly)
            } else if kind == "group", let friendly = context.names[.group(item)] {
                data["friendly_name"] = .string(friendly)
            }
            context.event("divergence_repaired", data)
        default:
            break
        }
    }

    /// One `pairing_needed` event when a hub starts refusing the bridge's identity, with the
    /// command that pairs it again; none for the later (rare) attempts, and none when it accepts
    /// again (`gateway_online` says that).
    private func pairingStateChanged(_ name: String) {
        guard let hub = context.hub(named: name) else { return }
        guard hub.needsPairing else {
            pairingNeeded.remove(name)
            return
        }
        guard pairingNeeded.insert(name).inserted else { return }
        var data: [String: JSON] = [
            "gateway": .string(name), "gateway_id": .string(hub.hardwareID),
            "message": .string("the gateway no longer knows the bridge's identity: pair again"),
        ]
        if let command = hub.pairingCommand { data["command"] = .string(command) }
        context.event("pairing_needed", data)
    }

    /// A hub's own id for an item: a number where it is one (TRÅDFRI), else text.
    private func id(_ item: ItemID) -> JSON {
        item.number.map(JSON.int) ?? .string(item.local)
    }

    // MARK: bridge/info

    /// One gateway's state for `bridge/info` (and the health answer): `state` is `online`,
    /// `offline` or `pairing_needed`.
    func gatewayInfo(_ hub: any Hub) -> [String: JSON] {
        var info: [String: JSON] = [
            "name": .string(hub.name), "kind": .string(hub.kind), "id": .string(hub.hardwareID),
            "connected": .bool(hub.connected),
            "state": .string(hub.sessionState),
            "devices": .int(hub.devices.count), "groups": .int(hub.groups.count),
        ]
        if let firmware = hub.firmware { info["firmware"] = .string(firmware) }
        if let address = hub.address { info["address"] = .string(address) }
        if let contact = hub.lastContact { info["last_contact"] = .string(contact.formatted(.iso8601)) }
        if let command = hub.pairingCommand { info["pairing_command"] = .string(command) }
        info["view"] = hub.viewFigures
        return info
    }

    func publishInfo() {
        let configuration = context.configuration
        let gateways = context.hubs.map { gatewayInfo($0) }
        let byName = Dictionary(
            zip(context.hubs.map(\.name), gateways.map(JSON.object)), uniquingKeysWith: { a, _ in a })
        // Configuration without secrets: no passwords, keys or credential contents.
        var info: JSON = [
            "version": .string(BridgeVersion.current),
            // The first gateway, as one-gateway set-ups have always read it.
            "gateway": gateways.first.map(JSON.object) ?? .null,
            // By name (Home Assistant's gateway entities read `gateways['<name>']`).
            "gateways": .object(byName),
            "config": [
                "base_topic": .string(configuration.mqtt.baseTopic),
                "retain_state": .bool(configuration.mqtt.retainState),
                "command_spacing": .double(configuration.gateway.commandSpacing),
                "keepalive": .double(configuration.gateway.keepAlive),
                "homeassistant": [
                    "enabled": .bool(configuration.homeAssistant.enabled),
                    "discovery_prefix": .string(configuration.homeAssistant.discoveryPrefix),
                ],
            ],
            "log_level": .string(configuration.logging.level),
            "devices": .int(context.hubs.reduce(0) { $0 + $1.devices.count }),
            "groups": .int(context.hubs.reduce(0) { $0 + $1.groups.count }),
        ]
        if let takeover = context.takeover { info["takeover"] = takeover }
        context.outbox.publishState(context.topic("bridge/info"), info, retain: true)
    }

    // MARK: bridge/devices and bridge/groups

    private func entry(_ device: HubDevice) -> [String: JSON] {
        var entry: [String: JSON] = [
            "id": id(device.id),
            "gateway": .string(device.id.hub),
            "friendly_name": context.names[.device(device.id)].map(JSON.string) ?? .null,
            "name": .string(device.name),
            "type": .string(device.type.description),
            "model": .string(device.model),
            "manufacturer": .string(device.manufacturer),
            "power_source": .string(device.batteryPowered ? "battery" : "mains"),
        ]
        if let firmware = device.firmware { entry["firmware"] = .string(firmware) }
        if let spectrum = device.light?.spectrum { entry["spectrum"] = .string(spectrum.rawValue) }
        if let topic = context.stateTopic(.device(device.id)) { entry["topic"] = .string(topic) }
        return entry
    }

    func publishDevices() {
        let list = context.hubs.flatMap { hub in
            hub.devices.values.sorted { $0.id < $1.id }.map { JSON.object(entry($0)) }
        }
        context.outbox.publishState(context.topic("bridge/devices"), .array(list), retain: true)
    }

    func publishGroups() {
        let list: [JSON] = context.hubs.flatMap { hub in
            hub.groups.values.sorted { $0.id < $1.id }.map { group -> JSON in
                [
                    "id": id(group.id),
                    "gateway": .string(hub.name),
                    "friendly_name": context.names[.group(group.id)].map(JSON.string) ?? .null,
                    "name": .string(group.name),
                    "members": .array(
                        group.members.map { member in
                            [
                                "id": id(member),
                                "friendly_name": context.names[.device(member)].map(JSON.string) ?? .null,
                            ]
                        }),
                    "scenes": .array(group.scenes.map { ["id": id($0.id), "name": .string($0.name)] }),
                    "topic": context.stateTopic(.group(group.id)).map(JSON.string) ?? .null,
                ]
            }
        }
        context.outbox.publishState(context.topic("bridge/groups"), .array(list), retain: true)
    }
}

/// What `bridge/devices` shows of a device (not its state).
private struct ListedDevice: Equatable {
    let name: String
    let type: DeviceType
    let model: String
    let manufacturer: String
    let firmware: String?
    let batteryPowered: Bool
    let spectrum: LightSpectrum?

    init(_ device: HubDevice) {
        name = device.name
        type = device.type
        model = device.model
        manufacturer = device.manufacturer
        firmware = device.firmware
        batteryPowered = device.batteryPowered
        spectrum = device.light?.spectrum
    }
}
