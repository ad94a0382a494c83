import CoAP
import HubModel
import Logging
import MQTT

/// MQTT → hubs: `<base>/<name>/set` (JSON, or plain ON / OFF / TOGGLE / OPEN / CLOSE / STOP),
/// `<base>/<name>/set/<attribute>` (a raw value) and `<base>/<name>/get` (re-read and publish).
/// `<name>` is the friendly name or the numeric id; with several hubs both are under the hub's
/// name (`<base>/garden/hallway/set`, `<base>/garden/65537/set`).
///
/// Every command that cannot be carried out (unknown device, hub offline, malformed JSON, value
/// out of range, attribute the device lacks, the hub refusing it) produces a `command_error`
/// event on `bridge/event` and a log line, both naming the topic and the reason; nothing else is
/// affected. Retained commands are refused and cleared, so they cannot replay on every restart.
///
/// The web page's controls come in through `submit(name:payload:)`: the same lookup, parsing,
/// validation and queue as `<name>/set`, and the same `command_error` when it fails.
@CoAPActor
final class CommandHandler: BridgeFeature {
    private let context: BridgeContext
    private let states: StatePublisher
    private let logger = Logger(label: "commands")
    /// Re-reads for `<name>/get` under way (cancelled when the bridge stops).
    private let rereads = Tasks()
    private var retained = RetainedCommands()

    init(context: BridgeContext, states: StatePublisher) {
        self.context = context
        self.states = states
    }

    var subscriptions: [String] {
        let names = context.topicsUseHubNames ? ["+/+", "+"] : ["+"]
        return names.flatMap { name in ["set", "set/+", "get", "get/+"].map { context.topic("\(name)/\($0)") } }
    }

    func handle(_ event: BridgeEvent) {
        switch event {
        case .message(let message):
            handle(message)
        case .commandFinished(_, let topic, let error, let description):
            if let error {
                fail(topic, error)
            } else {
                logger.debug("command sent", metadata: ["mqtt.topic": "\(topic)", "write": "\(description)"])
            }
        case .stopping:
            rereads.cancelAll()
        default:
            break
        }
    }

    /// `<name>/set[/<attribute>]` or `<name>/get[/<attribute>]` below the base topic, where the
    /// name may hold one `/` (a hub's name before it).
    private func parse(_ topic: String) -> (name: String, verb: Substring, attribute: String?)? {
        guard topic.hasPrefix(context.base + "/") else { return nil }
        let parts = topic.dropFirst(context.base.count + 1).split(separator: "/", omittingEmptySubsequences: false)
        guard let index = parts.lastIndex(where: { $0 == "set" || $0 == "get" }), index >= 1,
            parts.count - index <= 2, index <= 2
        else { return nil }
        let name = parts[..<index].joined(separator: "/")
        guard !parts[..<index].contains(where: \.isEmpty) else { return nil }
        return (name, parts[index], index + 1 < parts.count ? String(parts[index + 1]) : nil)
    }

    private func handle(_ message: MQTTMessage) {
        guard let (name, verb, attribute) = parse(message.topic), !name.hasPrefix("bridge/"), name != "bridge" else {
            return
        }
        switch retained.check(message, outbox: context.outbox) {
        case .ignore:
            return
        case .refuse:
            return fail(message.topic, "commands must not be retained; the retained message was removed")
        case .handle:
            break
        }
        do throws(CommandError) {
            if verb == "get" {
                guard let (entity, hub) = try target(named: name) else { return }
                return get(entity, on: hub, topic: message.topic)
            }
            try carryOut(name: name, attribute: attribute, payload: message.payload, topic: message.topic)
        } catch {
            fail(message.topic, error.message)
        }
    }

    /// A command from the web page for the device or group `name` (as in its topic), exactly as
    /// if `payload` had been published on `<base>/<name>/set`. Throws the reason it cannot be
    /// carried out (also reported as `command_error`); the hub's own outcome comes later.
    func submit(name: String, payload: [UInt8]) throws(CommandError) {
        let topic = context.topic("\(name)/set")
        do throws(CommandError) {
            try carryOut(name: name, attribute: nil, payload: payload, topic: topic)
        } catch {
            fail(topic, error.message)
            throw error
        }
    }

    /// Finds the target, checks its hub is connected, parses and validates the command for it,
    /// and queues it on the hub (its outcome comes back as `.commandFinished` for `topic`).
    private func carryOut(name: String, attribute: String?, payload: [UInt8], topic: String) throws(CommandError) {
        guard let (entity, hub) = try target(named: name) else { return }
        guard hub.connected else {
            throw CommandError(
                context.topicsUseHubNames ? "the gateway '\(hub.name)' is offline" : "the gateway is offline")
        }
        let attributes = try CommandParser.attributes(payload: payload, attribute: attribute)
        try enqueue(attributes, for: entity, on: hub, topic: topic)
    }

    /// The device or group a topic names, and its hub; nil when another instance drives its
    /// gateway (takeover: that instance answers).
    private func target(named name: String) throws(CommandError) -> (FriendlyNames.Entity, any Hub)? {
        guard let entity = context.names.entity(named: name), let hub = context.hub(named: entity.id.hub) else {
            // Takeover: a name of a gateway another instance drives is that instance's to answer.
            if context.drivesOnlySome { return nil }
            var reason = "no device or group named '\(name)'"
            if context.topicsUseHubNames, !name.contains("/") {
                let examples = context.hubs.prefix(3).map { "\($0.name)/\(name)" }.joined(separator: ", ")
                reason += " (with several gateways a name starts with its gateway's: \(examples))"
            }
            throw CommandError(reason)
        }
        guard context.drives(hub.name) else { return nil }
        return (entity, hub)
    }

    private func enqueue(
        _ attributes: [String: JSON], for entity: FriendlyNames.Entity, on hub: any Hub, topic: String
    ) throws(CommandError) {
        switch entity {
        case .device(let id):
            guard let device = hub.devices[id] else { throw CommandError("the device is gone") }
            let command = try CommandParser.command(
                from: attributes, for: .device(device), expected: expected(device, pending: hub.pendingCommand(for: id))
            )
            hub.send(command, to: id, topic: topic)
        case .group(let id):
            guard let group = hub.groups[id] else { throw CommandError("the group is gone") }
            let members = context.members(of: group)
            let level = members.compactMap { $0.light?.on == true ? $0.light?.brightness : nil }.max()
            let command = try CommandParser.command(
                from: attributes, for: .group(group, members: members),
                expected: ExpectedState(on: members.contains { $0.isOn == true }, brightness: level))
            hub.send(command, to: id, topic: topic)
        }
    }

    /// The state a TOGGLE or a brightness step starts from: the hub's last report, with a
    /// command still waiting applied on top.
    private func expected(_ device: HubDevice, pending: DeviceCommand?) -> ExpectedState {
        var state = ExpectedState(on: device.isOn, brightness: device.light?.brightness)
        if let on = pending?.on { state.on = on }
        if let level = pending?.brightness { state.brightness = level }
        return state
    }

    private func get(_ entity: FriendlyNames.Entity, on hub: any Hub, topic: String) {
        switch entity {
        case .device(let id):
            guard hub.connected else { return fail(topic, "the gateway is offline") }
            rereads.start { [weak self] in
                guard let self else { return }
                do {
                    if let device = try await hub.reread(device: id) {
                        self.states.publish(device, force: true)
                    }
                } catch {
                    self.fail(topic, "reading the device failed: \(error)")
                }
            }
        case .group(let id):
            if let group = hub.groups[id] { states.publish(group, force: true) }
        }
    }

    private func fail(_ topic: String, _ reason: String) {
        context.figures.commandErrors += 1
        logger.warning("command not carried out", metadata: ["mqtt.topic": "\(topic)", "reason": "\(reason)"])
        context.event("command_error", ["topic": .string(topic), "error": .string(reason)])
    }
}
