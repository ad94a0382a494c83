import HubModel
import Synchronization

/// The web page's live streams (server-sent events): who is listening, and one message for all
/// or one of them.
///
/// Contract: thread-safe. `isActive` is one atomic load, so the bridge's features can ask it on
/// every change at no cost. Each stream buffers at most 64 messages; a browser that falls that
/// far behind has its stream ended, and its page reconnects and starts from a fresh snapshot
/// (so nothing it shows is silently stale). `finishAll()` ends every stream and refuses new
/// ones (graceful shutdown).
final class WebEvents: Sendable {
    private struct Subscriber {
        var session: String
        var continuation: AsyncStream<String>.Continuation
    }

    private struct State {
        var next = 0
        var subscribers: [Int: Subscriber] = [:]
        var closed = false
    }

    private let state = Mutex(State())
    private let count = Atomic<Int>(0)

    /// Whether any page is listening.
    var isActive: Bool { count.load(ordering: .relaxed) > 0 }

    /// A new stream for a page of `session`; nil after `finishAll()`.
    func subscribe(session: String) -> (id: Int, stream: AsyncStream<String>)? {
        let (stream, continuation) = AsyncStream.makeStream(of: String.self, bufferingPolicy: .bufferingNewest(64))
        let id: Int? = state.withLock { state -> Int? in
            guard !state.closed else { return nil }
            state.next += 1
            state.subscribers[state.next] = Subscriber(session: session, continuation: continuation)
            count.store(state.subscribers.count, ordering: .relaxed)
            return state.next
        }
        guard let id else {
            continuation.finish()
            return nil
        }
        continuation.onTermination = { [weak self] _ in self?.remove([id]) }
        return (id, stream)
    }

    /// Sends `event` with `data` to every stream, or only to `id`.
    func send(_ event: String, _ data: JSON, to id: Int? = nil) {
        let message = "event: \(event)\ndata: \(data.description)\n\n"
        let targets: [(Int, AsyncStream<String>.Continuation)] = state.withLock { state in
            if let id { return state.subscribers[id].map { [(id, $0.continuation)] } ?? [] }
            return state.subscribers.map { ($0.key, $0.value.continuation) }
        }
        var behind: [Int] = []
        for (id, continuation) in targets {
            switch continuation.yield(message) {
            case .enqueued: break
            case .dropped, .terminated: behind.append(id)
            @unknown default: behind.append(id)
            }
        }
        if !behind.isEmpty { finish(remove(behind)) }
    }

    /// Ends the streams of a session (log-out, expiry).
    func finish(session: String) {
        let ids = state.withLock { state in state.subscribers.filter { $0.value.session == session }.map(\.key) }
        finish(remove(ids))
    }

    /// Ends every stream and refuses new ones.
    func finishAll() {
        let ids = state.withLock { state in
            state.closed = true
            return Array(state.subscribers.keys)
        }
        finish(remove(ids))
    }

    /// Takes the subscribers out under the lock; they are finished outside it (finishing runs
    /// `onTermination`, which takes the lock again).
    @discardableResult
    private func remove(_ ids: [Int]) -> [AsyncStream<String>.Continuation] {
        state.withLock { state in
            let removed = ids.compactMap { state.subscribers.removeValue(forKey: $0)?.continuation }
            count.store(state.subscribers.count, ordering: .relaxed)
            return removed
        }
    }

    private func finish(_ continuations: [AsyncStream<String>.Continuation]) {
        for continuation in continuations { continuation.finish() }
    }
}
