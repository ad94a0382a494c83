import Dispatch

/// A one-shot timer whose handler runs on the libcoap queue, as `@CoAPActor` code.
///
/// Why not a task with `Task.sleep` for every request deadline: the timer behind a cancelled
/// `Task.sleep` stays armed until its deadline and then wakes a worker thread for nothing, so
/// each answered request (144 of them during a sync, one per keep-alive ping) caused a useless
/// wake-up 5 to 15 s later; and a task per request costs more than a timer. `cancel()` removes a
/// dispatch timer at once.
///
/// (What remains in an idle process is libdispatch's own worker-pool monitor on Linux, a 1 s
/// timer on its manager thread that wakes no worker: present in every Swift program that has
/// used concurrency.)
public final class CoAPTimer: @unchecked Sendable {
    // @unchecked: the only stored property is a dispatch source, which is thread-safe.
    private let source: any DispatchSourceTimer

    /// Runs `handler` once after `delay`, unless cancelled first.
    public init(after delay: Duration, _ handler: @escaping @CoAPActor () -> Void) {
        source = DispatchSource.makeTimerSource(queue: CoAPActor.queue)
        source.schedule(deadline: .now() + delay.dispatchInterval, leeway: .milliseconds(1))
        source.setEventHandler { CoAPActor.assumeIsolated { handler() } }
        source.resume()
    }

    deinit {
        source.cancel()
    }

    /// The handler will not run (if it has not run yet).
    public func cancel() {
        source.cancel()
    }

    /// Like `Task.sleep(for:)` (throws `CancellationError` when the task is cancelled), on a
    /// dispatch timer that cancellation removes.
    public static func sleep(for duration: Duration) async throws {
        let sleep = Sleep()
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                sleep.start(duration, continuation)
            }
        } onCancel: {
            sleep.finish(CancellationError())
        }
    }

    /// One `sleep(for:)`: resumed once, by the timer or by cancellation, whichever comes first.
    private final class Sleep: @unchecked Sendable {
        // @unchecked: the three fields are only touched inside `guarded.sync`.
        private let guarded = DispatchQueue(label: "tradfri.coap-timer.sleep")
        private var continuation: CheckedContinuation<Void, any Error>?
        private var source: (any DispatchSourceTimer)?
        private var finished = false

        func start(_ duration: Duration, _ continuation: CheckedContinuation<Void, any Error>) {
            let source = DispatchSource.makeTimerSource(queue: .global())
            source.schedule(deadline: .now() + duration.dispatchInterval, leeway: .milliseconds(1))
            source.setEventHandler { [self] in finish(nil) }
            let alreadyCancelled = guarded.sync {
                if finished { return true }
                self.continuation = continuation
                self.source = source
                return false
            }
            if alreadyCancelled {
                // A source must not be released while suspended: cancel it, then let it go.
                source.cancel()
                source.resume()
                continuation.resume(throwing: CancellationError())
            } else {
                source.resume()
            }
        }

        func finish(_ error: (any Error)?) {
            let (continuation, source) = guarded.sync {
                finished = true
                defer {
                    self.continuation = nil
                    self.source = nil
                }
                return (self.continuation, self.source)
            }
            source?.cancel()
            if let error { continuation?.resume(throwing: error) } else { continuation?.resume() }
        }
    }
}

/// A timer armed again and again, each arming replacing the last deadline, on one dispatch
/// source created once: for a deadline renewed per message on the hot path (a timer source per
/// notification would be created and cancelled thousands of times a second).
final class ReusableCoAPTimer: @unchecked Sendable {
    // @unchecked: the only stored property is a dispatch source, which is thread-safe.
    private let source: any DispatchSourceTimer

    /// `handler` runs on the libcoap queue each time an armed deadline passes.
    init(_ handler: @escaping @CoAPActor () -> Void) {
        source = DispatchSource.makeTimerSource(queue: CoAPActor.queue)
        source.setEventHandler { CoAPActor.assumeIsolated { handler() } }
        source.schedule(deadline: .distantFuture)
        source.resume()
    }

    deinit {
        source.cancel()
    }

    /// Fires once after `delay` (replacing any deadline armed before).
    func arm(after delay: Duration) {
        source.schedule(deadline: .now() + delay.dispatchInterval, leeway: .milliseconds(1))
    }

    func disarm() {
        source.schedule(deadline: .distantFuture)
    }
}

extension Duration {
    var dispatchInterval: DispatchTimeInterval {
        let (seconds, attoseconds) = components
        let nanoseconds = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        guard !nanoseconds.overflow, seconds >= 0 else { return seconds < 0 ? .nanoseconds(0) : .never }
        return .nanoseconds(Int(nanoseconds.partialValue + attoseconds / 1_000_000_000))
    }
}
