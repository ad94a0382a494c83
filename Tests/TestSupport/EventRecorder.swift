import Foundation

/// Reads an event stream (an `AsyncStream` of browse events, MQTT messages, ...) in the
/// background and keeps every event, so a test can wait for "an event like this" with a
/// deadline without losing events that arrived earlier or that another wait skipped over.
public final class EventRecorder<Event: Sendable>: @unchecked Sendable {
    // @unchecked: all mutable state is guarded by `lock`.
    private let lock = NSLock()
    private var recorded: [Event] = []
    private var finished = false
    private var waiters: [Int: (predicate: (Event) -> Bool, continuation: CheckedContinuation<Event, any Error>)] = [:]
    private var endWaiters: [Int: CheckedContinuation<Void, any Error>] = [:]
    private var nextWaiter = 0
    private var reader: Task<Void, Never>?

    public init<S: AsyncSequence & Sendable>(_ events: S) where S.Element == Event {
        reader = Task { [weak self] in
            do {
                for try await event in events {
                    self?.append(event)
                }
            } catch {}
            self?.finish()
        }
    }

    deinit {
        reader?.cancel()
    }

    /// Every event so far, in order.
    public var events: [Event] { lock.withLock { recorded } }

    /// Whether the stream has finished.
    public var isFinished: Bool { lock.withLock { finished } }

    /// The number of events so far: pass it as `from` to wait only for events still to come.
    public var count: Int { lock.withLock { recorded.count } }

    /// The first event at position `from` or later (already recorded or still to come) for
    /// which `match` returns a value.
    @discardableResult
    public func first<T: Sendable>(
        within limit: Duration = .seconds(10), _ what: String, from start: Int = 0,
        _ match: @escaping @Sendable (Event) -> T?
    ) async throws -> T {
        let event = try await firstEvent(within: limit, what, from: start) { match($0) != nil }
        return match(event)!
    }

    /// The first event at position `from` or later (already recorded or still to come) that
    /// satisfies `predicate`.
    @discardableResult
    public func firstEvent(
        within limit: Duration = .seconds(10), _ what: String, from start: Int = 0,
        where predicate: @escaping @Sendable (Event) -> Bool
    ) async throws -> Event {
        let id: Int = lock.withLock {
            nextWaiter += 1
            return nextWaiter
        }
        return try await withDeadline(limit, "\(what); events so far:\n\(self.describeEvents())") {
            try await withTaskCancellationHandler {
                try await withCheckedThrowingContinuation { continuation in
                    self.register(id: id, from: start, predicate: predicate, continuation: continuation, what: what)
                }
            } onCancel: {
                self.cancelWaiter(id)
            }
        }
    }

    /// Waits until the stream finishes.
    public func waitForEnd(
        within limit: Duration = .seconds(10), _ what: String = "the end of the event stream"
    )
        async throws
    {
        let id: Int = lock.withLock {
            nextWaiter += 1
            return nextWaiter
        }
        try await withDeadline(limit, "\(what); events so far:\n\(self.describeEvents())") {
            try await withTaskCancellationHandler {
                try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                    self.lock.withLock {
                        if self.finished {
                            continuation.resume()
                        } else {
                            self.endWaiters[id] = continuation
                        }
                    }
                }
            } onCancel: {
                self.lock.withLock {
                    self.endWaiters.removeValue(forKey: id)?.resume(throwing: CancellationError())
                }
            }
        }
    }

    public func describeEvents() -> String {
        events.map { "  \($0)" }.joined(separator: "\n")
    }

    // MARK: Internals

    private func register(
        id: Int, from start: Int, predicate: @escaping (Event) -> Bool,
        continuation: CheckedContinuation<Event, any Error>, what: String
    ) {
        lock.withLock {
            if let event = recorded.dropFirst(start).first(where: predicate) {
                continuation.resume(returning: event)
            } else if finished {
                continuation.resume(throwing: StreamEnded(what: what))
            } else {
                waiters[id] = (predicate, continuation)
            }
        }
    }

    private func cancelWaiter(_ id: Int) {
        lock.withLock { waiters.removeValue(forKey: id)?.continuation.resume(throwing: CancellationError()) }
    }

    private func append(_ event: Event) {
        lock.withLock {
            recorded.append(event)
            for (id, waiter) in waiters where waiter.predicate(event) {
                waiters[id] = nil
                waiter.continuation.resume(returning: event)
            }
        }
    }

    private func finish() {
        lock.withLock {
            finished = true
            for waiter in waiters.values {
                waiter.continuation.resume(throwing: StreamEnded(what: "waiting"))
            }
            waiters.removeAll()
            for waiter in endWaiters.values { waiter.resume() }
            endWaiters.removeAll()
        }
    }

    /// The stream finished before a matching event arrived.
    public struct StreamEnded: Error, CustomStringConvertible {
        public let what: String
        public var description: String { "the event stream ended while \(what)" }
    }
}
