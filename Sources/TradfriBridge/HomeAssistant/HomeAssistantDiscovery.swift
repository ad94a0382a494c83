import CoAP
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
        case gateway
        case device(Int)
        case group(Int)
    }

    private let context: BridgeContext
    private let builder: HomeAssistantConfigBuilder
    private let logger = Logger(label: "homeassistant")
    /// Config topics currently published, by what they belong to.
    private var published: [Owner: Set<String>] = [:]
    /// Our config topics seen retained on the broker before the first sync (to clear what is stale).
    private var foundRetained: Set<String> = []
    private var synced = false
    private var announcement: Task<Void, Never>?

    init(context: BridgeContext) {
        self.context = context
        builder = HomeAssistantConfigBuilder(
            discoveryPrefix: context.configuration.homeAssistant.discoveryPrefix, baseTopic: context.base,
            gatewayID: context.gatewayIDFromCredentials)
    }

    var subscriptions: [String] {
        [context.configuration.homeAssistant.statusTopic, "\(builder.discoveryPrefix)/+/+/+/config"]
    }

    func handle(_ event: BridgeEvent) {
        switch event {
        case .gateway(.synced):
            synced = true
            publishEverything()
            clearStale()
        case .gateway(.details):
            if synced { publishGateway() }
        case .gateway(.deviceAdded(let device)):
            guard synced else { return }
            publish(device)
            for group in groups(containing: device.id) { publish(group) }
        case .gateway(.deviceChanged(let device, let previous)):
            // Most notifications are state (on/off, dimming, last_seen): no config changes then.
            guard synced, ConfigInputs(device) != ConfigInputs(previous) else { return }
            publish(device)
            if device.light?.spectrum != previous.light?.spectrum || device.kind != previous.kind {
                for group in groups(containing: device.id) { publish(group) }
            }
        case .gateway(.deviceRemoved(let device)):
            clear(.device(device.id))
            // A room's light depends on what is left in it.
            if synced { for group in groups(containing: device.id) { publish(group) } }
        case .gateway(.groupAdded(let group)):
            guard synced else { return }
            publish(group)
            for id in group.memberIDs { if let device = context.mirror.devices[id] { publish(device) } }
        case .gateway(.groupChanged(let group, let previous)):
            // A room's configs (and its members' area) follow its name and members only.
            guard synced, group.name != previous.name || group.memberIDs != previous.memberIDs else { return }
            publish(group)
            // Members' suggested area follows their room.
            for id in Set(group.memberIDs).union(previous.memberIDs) {
                if let device = context.mirror.devices[id] { publish(device) }
            }
        case .gateway(.groupRemoved(let group)):
            clear(.group(group.id))
            for id in group.memberIDs { if let device = context.mirror.devices[id] { publish(device) } }
        case .gateway(.scenesChanged(let groupID)):
            if synced, let group = context.mirror.groups[groupID] { publish(group) }
        case .namesChanged:
            if synced { publishEverything() }
        case .message(let message):
            received(message)
        case .stopping:
            announcement?.cancel()
        default:
            break
        }
    }

    // MARK: Publishing

    private func publishEverything() {
        publishGateway()
        for device in context.mirror.devices.values.sorted(by: { $0.id < $1.id }) { publish(device) }
        for group in context.mirror.groups.values.sorted(by: { $0.id < $1.id }) { publish(group) }
    }

    private func publishGateway() {
        replace(.gateway, with: builder.gatewayConfigs(firmware: context.mirror.details?.firmware))
    }

    private func publish(_ device: Device) {
        guard let name = context.names[.device(device.id)] else { return }
        let area = HomeAssistantConfigBuilder.area(ofDevice: device.id, in: context.mirror.groups.values)
        replace(.device(device.id), with: builder.deviceConfigs(device, friendlyName: name, area: area))
    }

    private func publish(_ group: Group) {
        guard let name = context.names[.group(group.id)] else { return }
        replace(
            .group(group.id),
            with: builder.groupConfigs(
                group, friendlyName: name, members: context.members(of: group),
                scenes: context.scenes(ofGroup: group.id)))
    }

    /// Publishes `configs` for `owner` and clears the owner's configs that are no longer wanted.
    private func replace(_ owner: Owner, with configs: [HomeAssistantConfig]) {
        let topics = Set(configs.map(\.topic))
        for topic in (published[owner] ?? []).subtracting(topics) { context.outbox.clearState(topic) }
        published[owner] = topics
        for config in configs { context.outbox.publishState(config.topic, config.payload, retain: true) }
    }

    private func clear(_ owner: Owner) {
        guard let topics = published.removeValue(forKey: owner) else { return }
        for topic in topics.sorted() { context.outbox.clearState(topic) }
        logger.info("cleared Home Assistant discovery", metadata: ["entity": "\(owner)", "configs": "\(topics.count)"])
    }

    private var allPublished: Set<String> { published.values.reduce(into: Set()) { $0.formUnion($1) } }

    private func groups(containing deviceID: Int) -> [Group] {
        context.mirror.groups.values.filter { $0.memberIDs.contains(deviceID) }.sorted { $0.id < $1.id }
    }

    // MARK: Stale configs

    private func clearStale() {
        let wanted = allPublished
        for topic in foundRetained.subtracting(wanted).sorted() { clearForeign(topic) }
        foundRetained.removeAll()
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
        guard builder.isOwn(topic: message.topic), !message.payload.isEmpty else { return }
        if !synced {
            foundRetained.insert(message.topic)
        } else if !allPublished.contains(message.topic) {
            clearForeign(message.topic)
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

/// What a device's discovery configs are built from (see HomeAssistantConfigBuilder): name,
/// the info block, the kind, the light's spectrum and which capabilities it has. Its state is
/// not part of it.
private struct ConfigInputs: Equatable {
    let name: String
    let info: DeviceInfo
    let kind: DeviceKind
    let spectrum: LightSpectrum?
    let capabilities: [Bool]

    init(_ device: Device) {
        name = device.name
        // The battery level is published as state; only whether there is one shapes a config.
        var info = device.info
        info.battery = info.battery.map { _ in 0 }
        self.info = info
        kind = device.kind
        spectrum = device.light?.spectrum
        capabilities = [device.plug != nil, device.blind != nil, device.airPurifier != nil]
    }
}
