/// Waiting in tests: on an event, with a deadline; never a fixed sleep.

public struct DeadlineExceeded: Error, CustomStringConvertible {
    public let what: String
    public let after: Duration
    public var description: String { "deadline of \(after) exceeded waiting for \(what)" }
}

/// Runs `operation`, failing with `DeadlineExceeded` if it has not finished within `limit`.
public func withDeadline<T: Sendable>(
    _ limit: Duration, _ what: String = "operation",
    _ operation: @escaping @Sendable () async throws -> T
) async throws -> T {
    try await withThrowingTaskGroup(of: T.self) { group in
        group.addTask { try await operation() }
        group.addTask {
            try await Task.sleep(for: limit)
            throw DeadlineExceeded(what: what, after: limit)
        }
        defer { group.cancelAll() }
        return try await group.next()!
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
