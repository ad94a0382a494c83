import CoAP

/// The short-lived tasks a feature starts for one piece of work (a request's handler, a re-read
/// for `<name>/get`): each is kept until it ends, and `cancelAll()` (when the bridge stops, or
/// the session they belong to ends) cancels those still running, so none outlives its owner.
@CoAPActor
final class Tasks {
    private var running: [Int: Task<Void, Never>] = [:]
    private var next = 0

    nonisolated init() {}

    /// Starts `body` on the libcoap actor.
    func start(_ body: @escaping @CoAPActor () async -> Void) {
        next += 1
        let id = next
        running[id] = Task { [weak self] in
            await body()
            self?.running[id] = nil
        }
    }

    var count: Int { running.count }

    func cancelAll() {
        for task in running.values { task.cancel() }
        running.removeAll()
    }
}
