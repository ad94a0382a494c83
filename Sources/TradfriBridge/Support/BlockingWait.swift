import Dispatch

/// Runs async work from a plain thread (one the HTTP server or the control channel started for
/// a connection, never a Swift-concurrency thread) and blocks that thread until it is done.
func waitOnThread<T: Sendable>(placeholder: T, _ work: @escaping @Sendable () async -> T) -> T {
    let box = WaitBox(placeholder)
    Task {
        box.value = await work()
        box.done.signal()
    }
    box.done.wait()
    return box.value
}

private final class WaitBox<T: Sendable>: @unchecked Sendable {
    // @unchecked: written once by the task before `done` is signalled, read only after.
    var value: T
    let done = DispatchSemaphore(value: 0)
    init(_ value: T) { self.value = value }
}
