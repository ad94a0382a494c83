import CoAP
import HubModel
import Logging
import MQTT
import TradfriModel

/// Home Assistant MQTT discovery: every device, group, scene and the gateway itself appear in
/// Home Assistant by themselves, with controls wired to the bridge's topics.
///
/// Contract:
/// - After the first full sync, publishes a retained config (QoS 1) per entity under
///   `homeassistant.discovery_prefix`, built by `HomeAssistantConfigBuilder`. Configs are kept up
///   to date as devices, groups, scenes and friendly names change; only real changes are
///   published (the outbox drops identical payloads), and all of them go out again after a
///   broker reconnect.
/// - Renames (in the IKEA app, or `bridge/request/device/rename`) update configs in place: the
///   config topic and `unique_id` never change, so Home Assistant keeps the entity (and its
///   entity id, history and automations) and follows the new state and command topics and the
///   new device name.
/// - A removed device or group has every config cleared (an empty retained message). Configs
///   of this gateway found retained on the broker that match nothing the gateway has (devices
///   removed while the bridge was stopped, entities an older version published) are cleared too.
/// - When Home Assistant comes online (`online` on `homeassistant.status_topic`), after
///   `homeassistant.republish_delay` seconds: discovery configs, then bridge state, availability
///   and every current state are published again (so a broker that lost its retained messages,
///   or `mqtt.retain_state: false`, never leaves Home Assistant empty). A burst of `online`
///   messages gives one announcement.
@CoAPActor
final class HomeAssistantDiscovery: BridgeFeature {
    enum Owner: Hashable {
        /// The bridge's own device (its health sensors).
        case bridge
        case hub(String)
        case device(ItemID)
        case group(ItemID)
    }

    private let context: BridgeContext
    private let logger = Logger(label: "homeassistant")
    /// Config topics currently published, by what they belong to.
    private var published: [Owner: Set<String>] = [:]
    /// Our config topics seen retained on the broker before a hub's first sync (to clear what is stale).
    private var foundRetained: Set<String> = []
    /// Hubs whose first full sync is done (their configs are published from then on).
    private var synced: Set<String> = []
    private var announcement: Task<Void, Never>?

    init(context: BridgeContext) {
        self.context = context
    }

    private var discoveryPrefix: String { context.configuration.homeAssistant.discoveryPrefix }

    /// The builder for a hub's entities (its id is part of every unique id; it is the one from
    /// the credentials until the gateway says otherwise).
    private func builder(_ hub: any Hub) -> HomeAssistantConfigBuilder {
        HomeAssistantConfigBuilder(
            discoveryPrefix: discoveryPrefix, baseTopic: context.base, gatewayID: hub.hardwareID,
            gatewayName: hub.name, severalGateways: context.topicsUseHubNames)
    }

    /// The bridge's own device and sensors (no gateway in them).
    private var bridgeBuilder: HomeAssistantConfigBuilder {
        HomeAssistantConfigBuilder(discoveryPrefix: discoveryPrefix, baseTopic: context.base, gatewayID: "")
    }

    var subscriptions: [String] {
        [context.configuration.homeAssistant.statusTopic, "\(discoveryPrefix)/+/+/+/config"]
    }

    func handle(_ event: BridgeEvent) {
        switch event {
        case .brokerConnected:
            // Before the subscriptions: a retained config of the bridge's that is no longer
            // published is then recognised as stale when it arrives.
            replace(.bridge, with: bridgeBuilder.bridgeConfigs())
        case .hub(let name, let change):
            guard let hub = context.hub(named: name) else { return }
            hubChanged(hub, change)
        case .namesChanged:
            for hub in context.hubs where synced.contains(hub.name) { publishEverything(of: hub) }
        case .message(let message):
            received(message)
        case .hubReleased(let name):
            forget(hub: name)
        case .stopping:
            announcement?.cancel()
        default:
            break
        }
    }

    private func hubChanged(_ hub: any Hub, _ change: HubChange) {
        let isSynced = synced.contains(hub.name)
        switch change {
        case .synced:
            synced.insert(hub.name)
            publishEverything(of: hub)
            clearStale(of: hub)
        case .info:
            if isSynced { publishHub(hub) }
        case .deviceAdded(let device):
            guard isSynced else { return }
            publish(device, of: hub)
            for group in context.groups(containing: device.id) { publish(group, of: hub) }
        case .deviceChanged(let device, let previous):
            // Most notifications are state (on/off, dimming, last_seen): no config changes then.
            guard isSynced, ConfigInputs(device) != ConfigInputs(previous) else { return }
            publish(device, of: hub)
            if device.light?.spectrum != previous.light?.spectrum || device.type != previous.type
                || (device.onOff == nil) != (previous.onOff == nil)
            {
                for group in context.groups(containing: device.id) { publish(group, of: hub) }
            }
        case .deviceRemoved(let device):
            clear(.device(device.id))
            // A room's light depends on what is left in it.
            if isSynced { for group in context.groups(containing: device.id) { publish(group, of: hub) } }
        case .groupAdded(let group):
            guard isSynced else { return }
            publish(group, of: hub)
            for id in group.members { if let device = hub.devices[id] { publish(device, of: hub) } }
        case .groupChanged(let group, let previous):
            guard isSynced else { return }
            // A room's configs follow its name, members and scenes; its members' area its name and members.
            publish(group, of: hub)
            if group.name != previous.name || group.members != previous.members {
                for id in Set(group.members).union(previous.members) {
                    if let device = hub.devices[id] { publish(device, of: hub) }
                }
            }
        case .groupRemoved(let group):
            clear(.group(group.id))
            for id in group.members { if let device = hub.devices[id] { publish(device, of: hub) } }
        case .fullRead, .repaired, .stalled:
            break
        }
    }

    // MARK: Publishing

    private func publishEverything(of hub: any Hub) {
        publishHub(hub)
        for device in hub.devices.values.sorted(by: { $0.id < $1.id }) { publish(device, of: hub) }
        for group in hub.groups.values.sorted(by: { $0.id < $1.id }) { publish(group, of: hub) }
    }

    private func publishHub(_ hub: any Hub) {
        replace(.hub(hub.name), with: builder(hub).gatewayConfigs(firmware: hub.firmware))
    }

    private func publish(_ device: HubDevice, of hub: any Hub) {
        guard let name = context.names[.device(device.id)] else { return }
        let area = HomeAssistantConfigBuilder.area(ofDevice: device.id, in: hub.groups.values)
        replace(.device(device.id), with: builder(hub).deviceConfigs(device, friendlyName: name, area: area))
    }

    private func publish(_ group: HubGroup, of hub: any Hub) {
        guard let name = context.names[.group(group.id)] else { return }
        replace(
            .group(group.id),
            with: builder(hub).groupConfigs(group, friendlyName: name, members: context.members(of: group)))
    }

    /// Publishes `configs` for `owner` and clears the owner's configs that are no longer wanted.
    private func replace(_ owner: Owner, with configs: [HomeAssistantConfig]) {
        let topics = Set(configs.map(\.topic))
        for topic in (published[owner] ?? []).subtracting(topics) {
            context.outbox.clearState(topic)
            allPublished.remove(topic)
        }
        published[owner] = topics
        allPublished.formUnion(topics)
        for config in configs { context.outbox.publishState(config.topic, config.payload, retain: true) }
    }

    private func clear(_ owner: Owner) {
        guard let topics = published.removeValue(forKey: owner) else { return }
        allPublished.subtract(topics)
        for topic in topics.sorted() { context.outbox.clearState(topic) }
        logger.info("cleared Home Assistant discovery", metadata: ["entity": "\(owner)", "configs": "\(topics.count)"])
    }

    /// Takeover: another instance drives the hub now and publishes its configs. Ours are
    /// forgotten (not cleared, not republished), and the hub counts as not synced, so a config
    /// of the other instance's is never taken for a stale one of ours and cleared.
    private func forget(hub name: String) {
        synced.remove(name)
        for owner in published.keys {
            switch owner {
            case .hub(let hub) where hub == name: break
            case .device(let id) where id.hub == name: break
            case .group(let id) where id.hub == name: break
            default: continue
            }
            for topic in published.removeValue(forKey: owner) ?? [] {
                allPublished.remove(topic)
                context.outbox.forget(topic)
            }
        }
        guard let hub = context.hub(named: name) else { return }
        let builder = builder(hub)
        foundRetained = foundRetained.filter { !builder.isOwn(topic: $0) }
    }

    /// Every topic in `published`, kept with it (a union per received message was quadratic).
    private var allPublished: Set<String> = []

    // MARK: Stale configs

    /// Clears what was found retained for the hub's entities and matches nothing it has now.
    private func clearStale(of hub: any Hub) {
        let builder = builder(hub)
        let wanted = allPublished
        let stale = foundRetained.filter { builder.isOwn(topic: $0) }
        for topic in stale.subtracting(wanted).sorted() { clearForeign(topic) }
        foundRetained.subtract(stale)
    }

    /// Clears a retained config the outbox does not know (left by an earlier run).
    private func clearForeign(_ topic: String) {
        logger.info("clearing a stale Home Assistant config", metadata: ["mqtt.topic": "\(topic)"])
        context.outbox.publishRaw(MQTTMessage(topic: topic, payload: [], qos: .atLeastOnce, retain: true))
    }

    // MARK: Home Assistant's birth message

    private func received(_ message: MQTTMessage) {
        if message.topic == context.configuration.homeAssistant.statusTopic {
            let status = message.text.trimmingCharacters(in: .whitespacesAndNewlines)
            if status == "online" { scheduleAnnouncement() }
            return
        }
        guard !message.payload.isEmpty else { return }
        if bridgeBuilder.isBridgeOwn(topic: message.topic) {
            if !allPublished.contains(message.topic) { clearForeign(message.topic) }
            return
        }
        for hub in context.hubs where builder(hub).isOwn(topic: message.topic) {
            if !synced.contains(hub.name) {
                foundRetained.insert(message.topic)
            } else if !allPublished.contains(message.topic) {
                clearForeign(message.topic)
            }
            return
        }
    }

    private func scheduleAnnouncement() {
        announcement?.cancel()
        let delay = context.configuration.homeAssistant.republishDelay
        logger.info("Home Assistant came online; announcing everything again", metadata: ["delay": "\(delay)s"])
        announcement = Task { [weak self] in
            try? await Task.sleep(for: .seconds(delay))
            guard !Task.isCancelled, let self else { return }
            self.announce()
        }
    }

    private func announce() {
        let first = [context.topic("bridge/state")] + allPublished.sorted()
        context.outbox.republishAll(first: first)
    }
}

/// What a device's discovery configs are built from (see HomeAssistantConfigBuilder): who it
/// is and which capabilities it has, with their fixed traits. Its state is not part of it.
private struct ConfigInputs: Equatable {
    let name: String
    let type: DeviceType
    let identity: [String?]
    let spectrum: LightSpectrum?
    let mireds: ClosedRange<Int>?
    let capabilities: [Bool]

    init(_ device: HubDevice) {
        name = device.name
        type = device.type
        identity = [device.manufacturer, device.model, device.serial, device.firmware]
        spectrum = device.light?.spectrum
        mireds = device.light?.colorTemperatureRange
        // The battery level is published as state; only whether there is one shapes a config.
        capabilities = [device.onOff != nil, device.cover != nil, device.airPurifier != nil, device.battery != nil]
    }
}
