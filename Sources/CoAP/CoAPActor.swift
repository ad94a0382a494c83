import Dispatch

/// The one serial executor for every libcoap call in the process.
///
/// libcoap 4.3.1 is not thread-safe and keeps process-global state (log handler, static string
/// buffers, the PRNG), so clients, servers and the simulator all run on this single queue. Types
/// that own libcoap handles are isolated to `@CoAPActor`; C callbacks, which libcoap invokes from
/// inside `coap_io_process` on this queue, re-enter with `CoAPActor.assumeIsolated`.
@globalActor
public actor CoAPActor {
    public static let shared = CoAPActor()

    /// The dispatch queue behind the executor. Dispatch sources that drive libcoap use it directly.
    nonisolated static let queue = DispatchQueue(label: "tradfri.libcoap", qos: .userInitiated)
    private nonisolated static let executor = CoAPExecutor(queue: queue)

    public nonisolated var unownedExecutor: UnownedSerialExecutor {
        Self.executor.asUnownedSerialExecutor()
    }

    /// Runs `operation` synchronously as `@CoAPActor` code. Traps unless the caller is already on
    /// the libcoap queue (a C callback inside `coap_io_process`, or a handler of a dispatch source
    /// on `CoAPActor.queue`).
    public static func assumeIsolated<T: Sendable>(
        _ operation: @CoAPActor () throws -> T
    ) rethrows -> T {
        // What checkIsolated() checks, without the runtime's current-executor lookup in front of
        // it (this runs for every notification, twice). Every job of the actor runs on this queue.
        dispatchPrecondition(condition: .onQueue(queue))
        // Safe: the precondition above proved we run on the actor's serial queue, which is exactly
        // the isolation `operation` requires; this is how MainActor.assumeIsolated is built.
        return try withoutActuallyEscaping(operation) { fn in
            try unsafeBitCast(fn, to: (() throws -> T).self)()
        }
    }
}

/// A `SerialExecutor` over a dispatch queue (`DispatchSerialQueue` does not exist on Linux).
final class CoAPExecutor: SerialExecutor, @unchecked Sendable {
    // @unchecked: the only stored property is an immutable, thread-safe DispatchQueue.
    private let queue: DispatchQueue

    init(queue: DispatchQueue) {
        self.queue = queue
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let unowned = UnownedJob(job)
        queue.async {
            unowned.runSynchronously(on: self.asUnownedSerialExecutor())
        }
    }

    func asUnownedSerialExecutor() -> UnownedSerialExecutor {
        UnownedSerialExecutor(ordinary: self)
    }

    func checkIsolated() {
        dispatchPrecondition(condition: .onQueue(queue))
    }
}
