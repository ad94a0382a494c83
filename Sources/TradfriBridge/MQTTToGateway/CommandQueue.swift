import CoAP
import HubModel
import Logging
import TradfriModel

/// Turns commands into gateway PUTs at the pace the gateway survives.
///
/// Contract:
/// - Commands to the same target are merged while they wait (the latest value of each
///   attribute wins), so 50 rapid commands become a few PUTs ending in the last value.
/// - PUTs to the same target are at least `spacing` apart; a first command, or one for another
///   target, goes at once. One request is outstanding at a time (GatewayLink's turn-taking).
/// - A command that needs several PUTs (IKEA bulbs fade one attribute at a time) keeps its
///   remaining steps queued; a newer command for the target merges into them.
/// - Every write's outcome is reported to `onResult` (the topic that asked, and an error if it
///   failed), so failures reach `bridge/event`.
@CoAPActor
public final class CommandQueue {
    public enum Target: Hashable, Sendable, CustomStringConvertible {
        case device(Int)
        case group(Int)

        public var description: String {
            switch self {
            case .device(let id): "device \(id)"
            case .group(let id): "group \(id)"
            }
        }
    }

    public struct Result: Sendable {
        public var target: Target
        public var topic: String
        public var write: GatewayWrite
        public var error: String?
    }

    /// Writes a planned step needs; the owner answers from its gateway mirror.
    public typealias Planner = @CoAPActor (Target, DeviceCommand) -> (write: GatewayWrite?, remainder: DeviceCommand?)

    private struct Pending {
        var command: DeviceCommand
        var topic: String
    }

    private let link: GatewayLink
    /// Minimum time between two PUTs to one target; changeable at runtime (`bridge/request/options`).
    public var spacing: Duration
    private let planner: Planner
    private let logger = Logger(label: "commands")
    private var onResult: @CoAPActor (Result) -> Void = { _ in }
    private var pending: [Target: Pending] = [:]
    /// Targets in the order their pending command arrived.
    private var order: [Target] = []
    private var lastWrite: [Target: ContinuousClock.Instant] = [:]
    private var worker: Task<Void, Never>?
    /// The worker's wait for the next due time; cancelled to wake it when a command arrives.
    private var sleeper: Task<Void, Never>?

    public init(link: GatewayLink, spacing: Duration, planner: @escaping Planner) {
        self.link = link
        self.spacing = spacing
        self.planner = planner
    }

    public func onResult(_ handler: @escaping @CoAPActor (Result) -> Void) {
        onResult = handler
    }

    /// The command still waiting for `target`, if any (for TOGGLE and brightness steps).
    public func pendingCommand(for target: Target) -> DeviceCommand? {
        pending[target]?.command
    }

    public func enqueue(_ command: DeviceCommand, for target: Target, topic: String) {
        if var existing = pending[target] {
            existing.command.merge(command)
            existing.topic = topic
            pending[target] = existing
        } else {
            pending[target] = Pending(command: command, topic: topic)
            order.append(target)
        }
        if worker == nil {
            worker = Task { [weak self] in await self?.work() }
        } else {
            sleeper?.cancel()
        }
    }

    /// Drops everything waiting (the gateway went away: old commands must not fire later).
    public func discardAll(reason: String) {
        for target in order {
            if let item = pending[target] {
                logger.warning("dropping a queued command", metadata: ["target": "\(target)", "reason": "\(reason)"])
                onResult(
                    Result(target: target, topic: item.topic, write: GatewayWrite(path: "", body: .null), error: reason)
                )
            }
        }
        pending.removeAll()
        order.removeAll()
    }

    private func work() async {
        while !pending.isEmpty {
            let now = ContinuousClock.now
            if let target = order.first(where: { ready($0, now) }) {
                await send(target)
                continue
            }
            // Nothing may go yet: sleep until the earliest target is due, or a new command comes.
            let due = order.compactMap { lastWrite[$0].map { $0 + spacing } }.min() ?? now
            let sleeper = Task { _ = try? await Task.sleep(until: due, clock: .continuous) }
            self.sleeper = sleeper
            await sleeper.value
            self.sleeper = nil
        }
        worker = nil
    }

    private func ready(_ target: Target, _ now: ContinuousClock.Instant) -> Bool {
        guard let last = lastWrite[target] else { return true }
        return now - last >= spacing
    }

    private func send(_ target: Target) async {
        guard let item = pending.removeValue(forKey: target) else { return }
        order.removeAll { $0 == target }
        let (write, remainder) = planner(target, item.command)
        if let remainder, !remainder.isEmpty {
            pending[target] = Pending(command: remainder, topic: item.topic)
            order.append(target)
        }
        guard let write else { return }
        lastWrite[target] = .now
        var failure: String?
        do {
            let response = try await link.request(.put, write.path, payload: write.body.bytes, priority: .command)
            if !response.code.isSuccess {
                failure =
                    "the gateway refused it (\(response.code)\(response.text.isEmpty ? "" : ": \(response.text)"))"
            }
        } catch let error as CoAPError {
            switch error {
            case .sessionClosed: failure = "the gateway is offline"
            case .timeout: failure = "the gateway did not answer"
            default: failure = "\(error)"
            }
        } catch {
            failure = "\(error)"
        }
        // The spacing counts from the answer, not from the send.
        lastWrite[target] = .now
        onResult(Result(target: target, topic: item.topic, write: write, error: failure))
    }
}
