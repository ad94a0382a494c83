import Foundation

/// A clock that moves only when the test says so (`advance(by:)`): code under test sleeps on it
/// as on any clock, and a test runs an hour of its rounds in no time, deterministically.
public final class ManualClock: Clock, @unchecked Sendable {
    // @unchecked: `current`, `sleepers` and `sleeperWaiters` are guarded by `lock`.
    public struct Instant: InstantProtocol {
        public var offset: Duration

        public func advanced(by duration: Duration) -> Instant { Instant(offset: offset + duration) }
        public func duration(to other: Instant) -> Duration { other.offset - offset }
        public static func < (lhs: Instant, rhs: Instant) -> Bool { lhs.offset < rhs.offset }
    }

    private struct Sleeper {
        var deadline: Instant
        var continuation: CheckedContinuation<Void, any Error>
    }

    private let lock = NSLock()
    private var current = Instant(offset: .zero)
    private var sleepers: [Int: Sleeper] = [:]
    private var nextSleeper = 0
    private var sleeperWaiters: [(count: Int, continuation: CheckedContinuation<Void, Never>)] = []

    public init() {}

    public var now: Instant { lock.withLock { current } }
    public var minimumResolution: Duration { .zero }

    public func sleep(until deadline: Instant, tolerance: Duration?) async throws {
        let id: Int = lock.withLock {
            nextSleeper += 1
            return nextSleeper
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let (resumeNow, waiters): (Bool, [CheckedContinuation<Void, Never>]) = lock.withLock {
                    if Task.isCancelled || deadline <= current { return (true, []) }
                    sleepers[id] = Sleeper(deadline: deadline, continuation: continuation)
                    let ready = sleeperWaiters.filter { $0.count <= sleepers.count }
                    sleeperWaiters.removeAll { $0.count <= sleepers.count }
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
            lock.withLock { sleepers.removeValue(forKey: id) }?.continuation.resume(throwing: CancellationError())
        }
    }

    /// Moves the clock on by `duration`, waking every sleeper whose deadline has come.
    public func advance(by duration: Duration) {
        let due: [CheckedContinuation<Void, any Error>] = lock.withLock {
            current = current.advanced(by: duration)
            let due = sleepers.filter { $0.value.deadline <= current }
            for id in due.keys { sleepers[id] = nil }
            return due.values.map(\.continuation)
        }
        for continuation in due { continuation.resume() }
    }

    /// Waits until at least `count` tasks sleep on the clock (the code under test has reached its
    /// wait), with a deadline.
    public func waitForSleepers(_ count: Int = 1, within limit: Duration = .seconds(10)) async throws {
        try await withDeadline(limit, "\(count) sleeper(s) on the manual clock") {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let ready: Bool = self.lock.withLock {
                    if self.sleepers.count >= count { return true }
                    self.sleeperWaiters.append((count, continuation))
                    return false
                }
                if ready { continuation.resume() }
            }
        }
    }
}
