import Foundation

/// A clock that moves only when the test says so (`advance(by:)`): code under test waits on it
/// as on any clock, and a test runs an hour of its rounds in no time, deterministically. Its
/// `sleep(until:tolerance:)` is the `Clock` requirement: it parks the caller until `advance(by:)`
/// reaches the deadline; no time passes in it.
public final class ManualClock: Clock, @unchecked Sendable {
    // @unchecked: `current`, `parked` and `parkWatchers` are guarded by `lock`.
    public struct Instant: InstantProtocol {
        public var offset: Duration

        public func advanced(by duration: Duration) -> Instant { Instant(offset: offset + duration) }
        public func duration(to other: Instant) -> Duration { other.offset - offset }
        public static func < (lhs: Instant, rhs: Instant) -> Bool { lhs.offset < rhs.offset }
    }

    private struct Parked {
        var deadline: Instant
        var continuation: CheckedContinuation<Void, any Error>
    }

    private let lock = NSLock()
    private var current = Instant(offset: .zero)
    private var parked: [Int: Parked] = [:]
    private var nextParked = 0
    private var parkWatchers: [(count: Int, continuation: CheckedContinuation<Void, Never>)] = []

    public init() {}

    public var now: Instant { lock.withLock { current } }
    public var minimumResolution: Duration { .zero }

    public func sleep(until deadline: Instant, tolerance: Duration?) async throws {
        let id: Int = lock.withLock {
            nextParked += 1
            return nextParked
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let (resumeNow, waiters): (Bool, [CheckedContinuation<Void, Never>]) = lock.withLock {
                    if Task.isCancelled || deadline <= current { return (true, []) }
                    parked[id] = Parked(deadline: deadline, continuation: continuation)
                    let ready = parkWatchers.filter { $0.count <= parked.count }
                    parkWatchers.removeAll { $0.count <= parked.count }
                    return (false, ready.map(\.continuation))
                }
                if resumeNow {
                    if Task.isCancelled {
                        continuation.resume(throwing: CancellationError())
                    } else {
                        continuation.resume()
                    }
                }
                for waiter in waiters { waiter.resume() }
            }
        } onCancel: {
            lock.withLock { parked.removeValue(forKey: id) }?.continuation.resume(throwing: CancellationError())
        }
    }

    /// Moves the clock on by `duration`, resuming every parked task whose deadline has come.
    public func advance(by duration: Duration) {
        let due: [CheckedContinuation<Void, any Error>] = lock.withLock {
            current = current.advanced(by: duration)
            let due = parked.filter { $0.value.deadline <= current }
            for id in due.keys { parked[id] = nil }
            return due.values.map(\.continuation)
        }
        for continuation in due { continuation.resume() }
    }

    /// Waits until at least `count` tasks are parked on the clock (the code under test has
    /// reached its wait), with a deadline.
    public func waitUntilParked(_ count: Int = 1, within limit: Duration = .seconds(10)) async throws {
        try await withDeadline(limit, "\(count) task(s) parked on the manual clock") {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let ready: Bool = self.lock.withLock {
                    if self.parked.count >= count { return true }
                    self.parkWatchers.append((count, continuation))
                    return false
                }
                if ready { continuation.resume() }
            }
        }
    }
}
