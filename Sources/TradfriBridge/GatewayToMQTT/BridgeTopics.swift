import CoAP
import Foundation
import TradfriModel

/// The bridge's own topics: retained `bridge/state` (with an MQTT will of offline), `bridge/info`,
/// `bridge/devices`, `bridge/groups`, and non-retained `bridge/event` for devices and groups
/// added, removed or renamed and the gateway going offline or online.
@CoAPActor
final class BridgeTopics: BridgeFeature {
    private let context: BridgeContext
    /// Events about added/removed devices start after the first full sync (not for the inventory
    /// found at start-up).
    private var synced = false

    init(context: BridgeContext) {
        self.context = context
    }

    func handle(_ event: BridgeEvent) {
        switch event {
        case .brokerConnected:
            context.outbox.publishState(context.topic("bridge/state"), ["state": "online"], retain: true)
            publishInfo()
        case .gatewayConnected(let address):
            publishInfo()
            context.event(
                "gateway_online",
                ["address": .string(address), "gateway_id": .string(context.gatewayIDFromCredentials)])
        case .gatewayDisconnected(let reason):
            publishInfo()
            context.event("gateway_offline", ["reason": .string(reason)])
        case .gateway(.synced):
            synced = true
            publishInfo()
            publishDevices()
            publishGroups()
        case .gateway(.details), .gateway(.fullRead), .optionsChanged:
            publishInfo()
        // Until the first full sync the lists are incomplete: they are published once, at .synced,
        // instead of once per device found (which made the start-up quadratic in the devices).
        case .gateway(.deviceAdded(let device)):
            guard synced else { return }
            publishDevices()
            context.event("device_added", entry(device))
        case .gateway(.deviceRemoved(let device)):
            guard synced else { return }
            publishDevices()
            publishGroups()
            context.event("device_removed", ["id": .int(device.id), "name": .string(device.name)])
        case .gateway(.deviceChanged(let device, let previous)):
            if synced, device.name != previous.name || device.info != previous.info || device.kind != previous.kind {
                publishDevices()
                publishGroups()
            }
            if device.name != previous.name {
                context.event(
                    "device_renamed",
                    [
                        "id": .int(device.id), "from": .string(previous.name),
                        "to": .string(device.name),
                        "friendly_name": context.names[.device(device.id)].map(JSON.string) ?? .null,
                    ])
            }
        case .gateway(.groupAdded(let group)):
            guard synced else { return }
            publishGroups()
            context.event("group_added", ["id": .int(group.id), "name": .string(group.name)])
        case .gateway(.groupRemoved(let group)):
            guard synced else { return }
            publishGroups()
            context.event("group_removed", ["id": .int(group.id), "name": .string(group.name)])
        case .gateway(.groupChanged(let group, let previous)):
            // bridge/groups lists names, members and scenes, not state.
            if synced, group.name != previous.name || group.memberIDs != previous.memberIDs { publishGroups() }
            if group.name != previous.name {
                context.event(
                    "group_renamed",
                    [
                        "id": .int(group.id), "from": .string(previous.name), "to": .string(group.name),
                        "friendly_name": context.names[.group(group.id)].map(JSON.string) ?? .null,
                    ])
            }
        case .gateway(.scenesChanged):
            if synced { publishGroups() }
        case .namesChanged:
            // A name taken or given up elsewhere moves other topics too (a room becomes
            // `<name>_group` when a device takes its name): the lists say where each one is now.
            if synced {
                publishDevices()
                publishGroups()
            }
        case .gateway(.repaired(let repair)):
            var data: [String: JSON] = [
                "kind": .string(repair.kind), "id": .int(repair.id), "reason": .string(repair.reason.rawValue),
            ]
            if let name = repair.name { data["name"] = .string(name) }
            if repair.kind == "device", let name = context.names[.device(repair.id)] {
                data["friendly_name"] = .string(name)
            } else if repair.kind == "group", let name = context.names[.group(repair.id)] {
                data["friendly_name"] = .string(name)
            }
            context.event("divergence_repaired", data)
        default:
            break
        }
    }

    func publishInfo() {
        let configuration = context.configuration
        var gateway: [String: JSON] = [
            "id": .string(context.mirror.details?.id ?? context.gatewayIDFromCredentials),
            "connected": .bool(context.gatewayConnected),
        ]
        if let details = context.mirror.details { gateway["firmware"] = .string(details.firmware) }
        if let address = context.gatewayAddress { gateway["address"] = .string(address) }
        gateway["view"] = context.viewFigures
        // Configuration without secrets: no passwords, keys or credential contents.
        let info: JSON = [
            "version": .string(BridgeVersion.current),
            "gateway": .object(gateway),
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
            "devices": .int(context.mirror.devices.count),
            "groups": .int(context.mirror.groups.count),
        ]
        context.outbox.publishState(context.topic("bridge/info"), info, retain: true)
    }

    private func entry(_ device: Device) -> [String: JSON] {
        var entry: [String: JSON] = [
            "id": .int(device.id),
            "friendly_name": context.names[.device(device.id)].map(JSON.string) ?? .null,
            "name": .string(device.name),
            "type": .string(device.kind.description),
            "model": .string(device.info.model),
            "manufacturer": .string(device.info.manufacturer),
            "power_source": .string(device.kind.isBatteryPowered || device.info.battery != nil ? "battery" : "mains"),
        ]
        if let firmware = device.info.firmware { entry["firmware"] = .string(firmware) }
        if let spectrum = device.light?.spectrum { entry["spectrum"] = .string(spectrum.rawValue) }
        if let topic = context.stateTopic(.device(device.id)) { entry["topic"] = .string(topic) }
        return entry
    }

    func publishDevices() {
        let list = context.mirror.devices.values.sorted { $0.id < $1.id }.map { JSON.object(entry($0)) }
        context.outbox.publishState(context.topic("bridge/devices"), .array(list), retain: true)
    }

    func publishGroups() {
        let list: [JSON] = context.mirror.groups.values.sorted { $0.id < $1.id }.map { group in
            [
                "id": .int(group.id),
                "friendly_name": context.names[.group(group.id)].map(JSON.string) ?? .null,
                "name": .string(group.name),
                "members": .array(
                    group.memberIDs.map { id in
                        ["id": .int(id), "friendly_name": context.names[.device(id)].map(JSON.string) ?? .null]
                    }),
                "scenes": .array(
                    context.scenes(ofGroup: group.id).map { ["id": .int($0.id), "name": .string($0.name)] }),
                "topic": context.stateTopic(.group(group.id)).map(JSON.string) ?? .null,
            ]
        }
        context.outbox.publishState(context.topic("bridge/groups"), .array(list), retain: true)
    }
}
