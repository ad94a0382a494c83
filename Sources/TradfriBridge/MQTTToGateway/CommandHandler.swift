import CoAP
import Logging
import MQTT
import TradfriModel

/// MQTT → gateway: `<base>/<name>/set` (JSON, or plain ON / OFF / TOGGLE / OPEN / CLOSE / STOP),
/// `<base>/<name>/set/<attribute>` (a raw value) and `<base>/<name>/get` (re-read and publish).
/// `<name>` is the friendly name or the numeric id.
///
/// Every command that cannot be carried out (unknown device, gateway offline, malformed JSON,
/// value out of range, attribute the device lacks, the gateway refusing it) produces a
/// `command_error` event on `bridge/event` and a log line, both naming the topic and the reason;
/// nothing else is affected. Retained commands are refused and cleared, so they cannot replay on
/// every restart.
@CoAPActor
final class CommandHandler: BridgeFeature {
    private let context: BridgeContext
    private let states: StatePublisher
    private let logger = Logger(label: "commands")
    private var retained = RetainedCommands()

    init(context: BridgeContext, states: StatePublisher) {
        self.context = context
        self.states = states
        context.queue.onResult { [weak self] result in self?.finished(result) }
    }

    var subscriptions: [String] {
        ["set", "set/+", "get", "get/+"].map { context.topic("+/\($0)") }
    }

    func handle(_ event: BridgeEvent) {
        switch event {
        case .message(let message):
            handle(message)
        case .gatewayDisconnected:
            context.queue.discardAll(reason: "the gateway went offline before the command was sent")
        default:
            break
        }
    }

    private func handle(_ message: MQTTMessage) {
        guard message.topic.hasPrefix(context.base + "/") else { return }
        let parts = message.topic.dropFirst(context.base.count + 1).split(
            separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2 || parts.count == 3, parts[1] == "set" || parts[1] == "get" else { return }
        let name = String(parts[0])
        guard name != "bridge" else { return }
        let attribute = parts.count == 3 ? String(parts[2]) : nil

        switch retained.check(message, outbox: context.outbox) {
        case .ignore:
            return
        case .refuse:
            return fail(message.topic, "commands must not be retained; the retained message was removed")
        case .handle:
            break
        }
        guard let entity = context.names.entity(named: name) else {
            return fail(message.topic, "no device or group named '\(name)'")
        }
        if parts[1] == "get" {
            return get(entity, topic: message.topic)
        }
        guard context.gatewayConnected else {
            return fail(message.topic, "the gateway is offline")
        }
        do {
            let attributes = try CommandParser.attributes(payload: message.payload, attribute: attribute)
            try enqueue(attributes, for: entity, topic: message.topic)
        } catch let error as CommandError {
            fail(message.topic, error.message)
        } catch {
            fail(message.topic, "\(error)")
        }
    }

    private func enqueue(_ attributes: [String: JSON], for entity: FriendlyNames.Entity, topic: String) throws {
        switch entity {
        case .device(let id):
            guard let device = context.mirror.devices[id] else { throw CommandError("the device is gone") }
            let target = CommandQueue.Target.device(id)
            let command = try CommandParser.command(
                from: attributes, for: .device(device),
                expected: expected(device, pending: context.queue.pendingCommand(for: target)))
            context.queue.enqueue(command, for: target, topic: topic)
        case .group(let id):
            guard let group = context.mirror.groups[id] else { throw CommandError("the group is gone") }
            let members = context.members(of: group)
            let anyOn = members.contains { $0.light?.on == true || $0.plug?.on == true }
            let level = members.compactMap { $0.light?.on == true ? $0.light?.brightness : nil }.max()
            let command = try CommandParser.command(
                from: attributes, for: .group(group, members: members, scenes: context.scenes(ofGroup: id)),
                expected: ExpectedState(on: anyOn, brightness: level))
            let split = CommandPlanner.split(command, for: group, members: members)
            if let groupPart = split.group {
                context.queue.enqueue(groupPart, for: .group(id), topic: topic)
            }
            for (member, memberCommand) in split.members.sorted(by: { $0.key < $1.key }) {
                context.queue.enqueue(memberCommand, for: .device(member), topic: topic)
            }
        }
    }

    /// The state a TOGGLE or a brightness step starts from: the gateway's last report, with a
    /// command still waiting applied on top.
    private func expected(_ device: Device, pending: Command?) -> ExpectedState {
        var state = ExpectedState(on: device.light?.on ?? device.plug?.on, brightness: device.light?.brightness)
        if let on = pending?.on { state.on = on }
        if let level = pending?.brightness { state.brightness = level }
        return state
    }

    private func get(_ entity: FriendlyNames.Entity, topic: String) {
        switch entity {
        case .device(let id):
            guard context.gatewayConnected else { return fail(topic, "the gateway is offline") }
            Task { [weak self] in
                guard let self else { return }
                do {
                    if let device = try await self.context.mirror.reread(device: id) {
                        self.states.publish(device, force: true)
                    }
                } catch {
                    self.fail(topic, "reading the device failed: \(error)")
                }
            }
        case .group(let id):
            if let group = context.mirror.groups[id] { states.publish(group, force: true) }
        }
    }

    private func finished(_ result: CommandQueue.Result) {
        // The effect is confirmed by the gateway, not assumed: what it changed must notify, or
        // it is read again (also after a failure: a command that timed out may have arrived).
        if !result.write.path.isEmpty {
            context.mirror.expectNotification(from: context.mirror.affected(by: result.target))
        }
        if let error = result.error {
            fail(result.topic, error)
        } else {
            logger.debug("command sent", metadata: ["mqtt.topic": "\(result.topic)", "write": "\(result.write)"])
        }
    }

    private func fail(_ topic: String, _ reason: String) {
        logger.warning("command not carried out", metadata: ["mqtt.topic": "\(topic)", "reason": "\(reason)"])
        context.event("command_error", ["topic": .string(topic), "error": .string(reason)])
    }
}
