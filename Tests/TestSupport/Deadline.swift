import Foundation

/// Waiting in tests: on an event, with a deadline; never a fixed sleep.

public struct DeadlineExceeded: Error, CustomStringConvertible {
    public let what: String
    public let after: Duration
    public var description: String { "deadline of \(after) exceeded waiting for \(what)" }
}

/// Runs `operation`, failing with `DeadlineExceeded` if it has not finished within `limit`.
/// `what` is evaluated when the deadline passes, so it can describe what had happened by then
/// (the output so far, the events so far).
///
/// The deadline wins even if `operation` waits on something that never happens and ignores
/// cancellation (a continuation nobody resumes): the caller gets the error at once and the
/// abandoned operation is cancelled in the background.
public func withDeadline<T: Sendable>(
    _ limit: Duration, _ what: @autoclosure @escaping @Sendable () -> String = "operation",
    _ operation: @escaping @Sendable () async throws -> T
) async throws -> T {
    let outcome = FirstOutcome<T>()
    return try await withTaskCancellationHandler {
        try await withCheckedThrowingContinuation { continuation in
            outcome.install(continuation)
            let work = Task {
                do { outcome.finish(.success(try await operation())) } catch { outcome.finish(.failure(error)) }
            }
            outcome.onFinish { work.cancel() }
            Task {
                try? await Task.sleep(for: limit)
                guard !outcome.isFinished else { return }
                outcome.finish(.failure(DeadlineExceeded(what: what(), after: limit)))
            }
        }
    } onCancel: {
        outcome.finish(.failure(CancellationError()))
    }
}

/// Resumes a continuation with whichever outcome comes first; later ones are ignored.
final class FirstOutcome<T: Sendable>: @unchecked Sendable {
    // @unchecked: every field is guarded by `lock`.
    private let lock = NSLock()
    private var continuation: CheckedContinuation<T, any Error>?
    private var early: Result<T, any Error>?
    private var finished = false
    private var cleanup: (@Sendable () -> Void)?

    var isFinished: Bool { lock.withLock { finished } }

    func install(_ continuation: CheckedContinuation<T, any Error>) {
        let pending: Result<T, any Error>? = lock.withLock {
            if let early { return early }
            self.continuation = continuation
            return nil
        }
        if let pending { continuation.resume(with: pending) }
    }

    func onFinish(_ action: @escaping @Sendable () -> Void) {
        let runNow: Bool = lock.withLock {
            if finished { return true }
            cleanup = action
            return false
        }
        if runNow { action() }
    }

    func finish(_ result: Result<T, any Error>) {
        let (continuation, action): (CheckedContinuation<T, any Error>?, (@Sendable () -> Void)?) = lock.withLock {
            guard !finished else { return (nil, nil) }
            finished = true
            if self.continuation == nil { early = result }
            defer { self.continuation = nil; cleanup = nil }
            return (self.continuation, cleanup)
        }
        continuation?.resume(with: result)
        action?()
    }
}

/// Re-evaluates `condition` whenever `changes` yields, until it holds or `limit` passes.
/// Returns the first non-nil value of `condition`.
public func firstValue<S: AsyncSequence & Sendable, T: Sendable>(
    in changes: S, within limit: Duration, _ what: String,
    where condition: @escaping @Sendable (S.Element) throws -> T?
) async throws -> T where S.Element: Sendable {
    try await withDeadline(limit, what) {
        for try await element in changes {
            if let value = try condition(element) { return value }
        }
        throw DeadlineExceeded(what: "\(what) (stream ended)", after: limit)
    }
}
