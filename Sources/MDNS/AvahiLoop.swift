internal import CAvahiClient

/// avahi's threaded poll: one thread, owned by avahi, that runs every avahi callback of one
/// `MDNSClient` while holding the poll's pthread mutex.
///
/// That mutex is the only lock of the MDNS module. Every piece of mutable state that a callback
/// touches (client state, browser tables, publisher state, waiters) is guarded by it: callbacks
/// already hold it, and every call from another thread goes through `withLock`. Lock order is
/// therefore trivial (there is one lock), and an avahi call made under it is what avahi requires
/// of calls from foreign threads.
///
/// Rules:
/// - `withLock` must never be called on the poll thread (the mutex is not recursive). No user code
///   runs there: callbacks only update tables and yield to `AsyncStream` continuations and
///   `CheckedContinuation`s, which hand the work to Swift executors.
/// - `stop()` must never be called on the poll thread (avahi joins the thread).
final class AvahiLoop: @unchecked Sendable {
    // @unchecked: `poll` is set once; avahi's own mutex (see above) serialises its use, and it is
    // freed only in deinit, after the thread has been stopped.
    let poll: OpaquePointer

    init() throws(MDNSError) {
        guard let poll = avahi_threaded_poll_new() else {
            throw .avahi(operation: "avahi_threaded_poll_new", code: 0, message: "out of memory or no threads")
        }
        self.poll = poll
    }

    deinit {
        // Idempotent: returns an error if the thread was never started or already stopped.
        avahi_threaded_poll_stop(poll)
        avahi_threaded_poll_free(poll)
    }

    /// The poll's `AvahiPoll` vtable, for `avahi_client_new`.
    var api: UnsafePointer<AvahiPoll> { avahi_threaded_poll_get(poll) }

    /// Runs `body` holding the poll mutex. Not on the poll thread (see the type's rules).
    func withLock<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
        avahi_threaded_poll_lock(poll)
        defer { avahi_threaded_poll_unlock(poll) }
        return try body()
    }

    /// Starts the poll thread. Callbacks run from now on.
    func start() throws(MDNSError) {
        try check(avahi_threaded_poll_start(poll), "avahi_threaded_poll_start")
    }

    /// Stops and joins the poll thread; no callback runs after this returns. Idempotent.
    /// Must not be called with the lock held or from the poll thread.
    func stop() {
        // avahi returns -1 (and does nothing) when the thread is not running.
        avahi_threaded_poll_stop(poll)
    }
}
