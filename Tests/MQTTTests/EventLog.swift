import Foundation
import MQTT
import TestSupport

/// Records every event of one client (the stream's single consumer) so a test can wait for the
/// next event it cares about, with a deadline.
final class EventLog: @unchecked Sendable {
    // @unchecked: all mutable state is guarded by `lock`.
    private let lock = NSLock()
    private var events: [MQTTEvent] = []
    /// Events before this index were consumed by an earlier `next`.
    private var cursor = 0
    private var finished = false
    private var waiter: (id: UUID, match: (MQTTEvent) -> Bool, end: () -> Void, fail: (any Error) -> Void)?

    init(_ client: MQTTClient) {
        let stream = client.events
        Task { [self] in
            for await event in stream { append(event) }
            finish()
        }
    }

    /// Every event so far.
    var all: [MQTTEvent] { lock.withLock { events } }

    /// True once the client's event stream has finished.
    var isFinished: Bool { lock.withLock { finished } }

    /// Waits for the next event (after those consumed by earlier calls) for which `match` returns
    /// a value; the events skipped on the way are consumed too.
    @discardableResult
    func next<T: Sendable>(
        within limit: Duration = .seconds(10), _ what: String, _ match: @escaping @Sendable (MQTTEvent) -> T?
    ) async throws -> T {
        try await wait(within: limit, what) { continuation in
            (
                match: { event in
                    guard let value = match(event) else { return false }
                    continuation.resume(returning: value)
                    return true
                },
                end: { continuation.resume(throwing: StreamEnded()) },
                fail: { continuation.resume(throwing: $0) }
            )
        }
    }

    /// Waits for the next `.connected`.
    func connected(within limit: Duration = .seconds(10)) async throws {
        try await next(within: limit, ".connected") { event -> Bool? in
            if case .connected = event { return true }
            return nil
        }
    }

    /// Waits for the next `.disconnected` and returns its reason.
    func disconnected(within limit: Duration = .seconds(10)) async throws -> MQTTDisconnectReason {
        try await next(within: limit, ".disconnected") { event in
            if case .disconnected(let reason) = event { return reason }
            return nil
        }
    }

    /// Waits for the next message on `topic`.
    func message(on topic: String, within limit: Duration = .seconds(10)) async throws -> MQTTMessage {
        try await next(within: limit, "a message on '\(topic)'") { event in
            if case .message(let message) = event, message.topic == topic { return message }
            return nil
        }
    }

    /// Waits for the next message, whatever its topic.
    func anyMessage(within limit: Duration = .seconds(10)) async throws -> MQTTMessage {
        try await next(within: limit, "a message") { event in
            if case .message(let message) = event { return message }
            return nil
        }
    }

    /// Waits until the stream has finished, consuming every event left.
    func end(within limit: Duration = .seconds(10)) async throws {
        try await wait(within: limit, "the end of the event stream") {
            (continuation: CheckedContinuation<Void, any Error>) in
            (match: { _ in false }, end: { continuation.resume() }, fail: { continuation.resume(throwing: $0) })
        }
    }

    // MARK: Internals

    private struct EventTimeout: Error, CustomStringConvertible {
        let description: String
    }

    private struct StreamEnded: Error, CustomStringConvertible {
        var description: String { "the client's event stream ended" }
    }

    private typealias Waiter = (match: (MQTTEvent) -> Bool, end: () -> Void, fail: (any Error) -> Void)

    /// Registers the waiter that `makeWaiter` builds around the continuation and waits for it.
    private func wait<T: Sendable>(
        within limit: Duration, _ what: String,
        _ makeWaiter: @escaping @Sendable (CheckedContinuation<T, any Error>) -> Waiter
    ) async throws -> T {
        let id = UUID()
        do {
            return try await withDeadline(limit, what) {
                try await withTaskCancellationHandler {
                    try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
                        self.register(id: id, makeWaiter(continuation))
                    }
                } onCancel: {
                    self.cancel(id)
                }
            }
        } catch let error as DeadlineExceeded {
            throw EventTimeout(description: "\(error); events so far: \(all)")
        }
    }

    private func register(id: UUID, _ newWaiter: Waiter) {
        lock.withLock {
            precondition(waiter == nil, "EventLog supports one waiting test at a time")
            while cursor < events.count {
                let event = events[cursor]
                cursor += 1
                if newWaiter.match(event) { return }
            }
            if finished {
                newWaiter.end()
            } else {
                waiter = (id, newWaiter.match, newWaiter.end, newWaiter.fail)
            }
        }
    }

    private func cancel(_ id: UUID) {
        lock.withLock {
            guard let waiter, waiter.id == id else { return }
            self.waiter = nil
            waiter.fail(CancellationError())
        }
    }

    private func append(_ event: MQTTEvent) {
        lock.withLock {
            events.append(event)
            guard let waiter else { return }
            cursor = events.count
            if waiter.match(event) { self.waiter = nil }
        }
    }

    private func finish() {
        lock.withLock {
            finished = true
            if let waiter {
                self.waiter = nil
                waiter.end()
            }
        }
    }
}
