import CoAP
import HubModel

/// Hubs → MQTT: every device's state on `<base>/<name>` (retained by default), every group's
/// state derived from its members, and `<base>/<name>/availability` for both.
///
/// Only real changes are published (the outbox drops identical payloads). A device or group that
/// is renamed moves to its new topics at once, and its old retained topics are cleared
/// `renameClearDelay` (2 s) later, once subscribers have moved (see `moveRenamedTopics`); a
/// removed one has its topics cleared the same way. Availability: online while its hub's session
/// is up and the hub reports the device reachable (published as-is); a group is online when any
/// member is.
///
/// A group's state follows its members `groupDelay` (20 ms) after the first member change: a
/// scene or a remote changes all members within a few milliseconds, and the group is then
/// published once instead of once per member; and the member's own state goes out first, without
/// the group's work in its way.
@CoAPActor
final class StatePublisher: BridgeFeature {
    private let context: BridgeContext
    private let groupDelay: Duration
    /// Groups whose members changed since their state was last published.
    private var staleGroups: Set<ItemID> = []
    private var groupTimer: CoAPTimer?
    private let renameClearDelay: Duration
    /// Old topics of renamed devices and groups (with their hub), cleared when their timer fires.
    private var pendingClears: [String: (hub: String, timer: CoAPTimer)] = [:]

    init(
        context: BridgeContext, groupDelay: Duration = .milliseconds(20), renameClearDelay: Duration = .seconds(2)
    ) {
        self.context = context
        self.groupDelay = groupDelay
        self.renameClearDelay = renameClearDelay
    }

    func handle(_ event: BridgeEvent) {
        switch event {
        case .hub(_, .deviceAdded(let device)), .hub(_, .deviceChanged(let device, _)):
            publish(device)
            for group in context.groups(containing: device.id) { staleGroups.insert(group.id) }
            if !staleGroups.isEmpty, groupTimer == nil {
                groupTimer = CoAPTimer(after: groupDelay) { [weak self] in self?.publishStaleGroups() }
            }
        case .hub(_, .groupAdded(let group)), .hub(_, .groupChanged(let group, _)):
            publish(group)
        case .namesChanged(let previous):
            moveRenamedTopics(from: previous)
        case .hubConnected(let hub, _), .hubDisconnected(let hub, _):
            publishAllAvailability(of: hub)
        case .hub(let hub, .synced):
            publishAll(of: hub)
        case .hubReleased(let hub):
            forgetAll(of: hub)
        case .stopping:
            // Nothing stale is left retained on the broker.
            for topic in pendingClears.keys.sorted() { clearOldTopic(topic) }
        default:
            break
        }
    }

    // MARK: Publishing

    func publish(_ device: HubDevice, force: Bool = false) {
        // Takeover: a gateway given up is the other instance's to publish, whatever path leads
        // here (a re-read answered just after the give-up, a group timer, a rename).
        guard context.drives(device.id.hub), let topic = context.stateTopic(.device(device.id)) else { return }
        context.outbox.publishState(
            topic, MQTTState.payload(for: device), retain: context.configuration.mqtt.retainState,
            force: force)
        publishAvailability(topic, online: context.isOnline(device))
    }

    func publish(_ group: HubGroup, force: Bool = false) {
        guard context.drives(group.id.hub), let topic = context.stateTopic(.group(group.id)) else { return }
        let members = context.members(of: group)
        context.outbox.publishState(
            topic, MQTTState.payload(for: group, members: members),
            retain: context.configuration.mqtt.retainState, force: force)
        publishAvailability(topic, online: members.contains { context.isOnline($0) })
    }

    private func publishStaleGroups() {
        groupTimer = nil
        let stale = staleGroups.sorted()
        staleGroups.removeAll()
        for id in stale {
            if let group = context.group(id) { publish(group) }
        }
    }

    /// Takeover: the hub is driven by another instance now; its state and availability topics
    /// are left to it (see `BridgeEvent.hubReleased`).
    private func forgetAll(of hubName: String) {
        guard let hub = context.hub(named: hubName) else { return }
        let items = hub.devices.keys.map(FriendlyNames.Entity.device) + hub.groups.keys.map(FriendlyNames.Entity.group)
        for item in items {
            guard let topic = context.stateTopic(item) else { continue }
            context.outbox.forget(topic)
            context.outbox.forget(topic + "/availability")
        }
        staleGroups = staleGroups.filter { $0.hub != hubName }
        // Old topics of its renames: left to the other instance too.
        for (topic, clear) in pendingClears where clear.hub == hubName {
            clear.timer.cancel()
            pendingClears[topic] = nil
            context.outbox.forget(topic)
            context.outbox.forget(topic + "/availability")
        }
    }

    private func publishAvailability(_ stateTopic: String, online: Bool) {
        context.outbox.publishState(
            stateTopic + "/availability", ["state": .string(online ? "online" : "offline")],
            retain: true)
    }

    private func publishAll(of hubName: String) {
        guard let hub = context.hub(named: hubName) else { return }
        for device in hub.devices.values { publish(device) }
        for group in hub.groups.values { publish(group) }
    }

    private func publishAllAvailability(of hubName: String) {
        guard let hub = context.hub(named: hubName) else { return }
        for device in hub.devices.values {
            if let topic = context.stateTopic(.device(device.id)) {
                publishAvailability(topic, online: context.isOnline(device))
            }
        }
        for group in hub.groups.values {
            if let topic = context.stateTopic(.group(group.id)) {
                publishAvailability(topic, online: context.members(of: group).contains { context.isOnline($0) })
            }
        }
    }

    /// Publishes under new names at once, and clears the retained topics of names that changed
    /// or disappeared `renameClearDelay` later.
    ///
    /// Why later: Home Assistant reads the old topics until it has processed the new discovery
    /// config (published right after this, by `HomeAssistantDiscovery`). It moves its
    /// subscriptions in a task that runs after the batch of messages holding the config (core
    /// `mqtt/entity.py` `_async_discovery_callback` → `discovery_update` →
    /// `async_prepare_subscribe_topics`, which drops the old subscriptions at once; 2024.3 and
    /// 2026.11 alike): an empty retained message sent in the same instant reaches the old
    /// subscriptions first, and Home Assistant logs `'value_json' is undefined` and `Error parsing
    /// value`. Two seconds is hundreds of times the few milliseconds that takes.
    private func moveRenamedTopics(from previous: FriendlyNames) {
        for (entity, name) in context.names.names where previous[entity] != name {
            switch entity {
            case .device(let id): if let device = context.device(id) { publish(device) }
            case .group(let id): if let group = context.group(id) { publish(group) }
            }
        }
        for (entity, oldName) in previous.names where context.names[entity] != oldName {
            let oldTopic = context.topic(oldName)
            let hub = entity.id.hub
            guard context.drives(hub) else { continue }
            pendingClears[oldTopic]?.timer.cancel()
            let timer = CoAPTimer(after: renameClearDelay) { [weak self] in self?.clearOldTopic(oldTopic) }
            pendingClears[oldTopic] = (hub, timer)
        }
    }

    /// Clears a topic a device or group left, unless a device or group has taken that name since.
    private func clearOldTopic(_ topic: String) {
        pendingClears.removeValue(forKey: topic)?.timer.cancel()
        let inUse = context.names.names.values.contains { context.topic($0) == topic }
        guard !inUse else { return }
        context.outbox.clearState(topic)
        context.outbox.clearState(topic + "/availability")
    }
}
