import CoAP
import TestSupport
import Testing

/// The timers behind request deadlines and the keep-alive wait.
///
/// "Never fires" and "fires once" are checked against a later sentinel timer on the same serial
/// libcoap queue: once the sentinel has fired, an earlier timer that was going to fire (again)
/// would already have done so.
@Suite struct CoAPTimerTests {
    /// Which timers fired, in order.
    static func firings() -> (EventRecorder<String>, @Sendable @CoAPActor (String) -> Void) {
        let (stream, sink) = AsyncStream<String>.makeStream()
        return (EventRecorder(stream), { sink.yield($0) })
    }

    @Test func aTimerFiresOnceOnTheLibcoapQueue() async throws {
        let (fired, fire) = Self.firings()
        // The handler is `@CoAPActor`: CoAPTimer enters it through CoAPActor.assumeIsolated, which
        // traps anywhere but on the libcoap queue.
        let timer = CoAPTimer(after: .milliseconds(20)) { fire("timer") }
        let sentinel = CoAPTimer(after: .milliseconds(150)) { fire("sentinel") }
        try await fired.firstEvent("the sentinel timer") { $0 == "sentinel" }
        #expect(fired.events == ["timer", "sentinel"])
        timer.cancel()
        sentinel.cancel()
    }

    @Test func aCancelledTimerNeverFires() async throws {
        let (fired, fire) = Self.firings()
        let timer = CoAPTimer(after: .milliseconds(50)) { fire("cancelled") }
        timer.cancel()
        let sentinel = CoAPTimer(after: .milliseconds(150)) { fire("sentinel") }
        try await fired.firstEvent("the sentinel timer") { $0 == "sentinel" }
        #expect(fired.events == ["sentinel"])
        sentinel.cancel()
    }

    @Test func sleepWaitsItsTimeAndEndsAtOnceWhenCancelled() async throws {
        let clock = ContinuousClock()
        let start = clock.now
        try await CoAPTimer.sleep(for: .milliseconds(50))
        #expect(clock.now - start >= .milliseconds(50))

        let (started, signal) = AsyncStream<Void>.makeStream()
        let sleeper = Task {
            signal.yield()
            try await CoAPTimer.sleep(for: .seconds(60))
        }
        _ = try await EventRecorder(started).firstEvent("the sleeper to start") { _ in true }
        let cancelled = clock.now
        sleeper.cancel()
        await #expect(throws: CancellationError.self) { try await sleeper.value }
        // Long before the 60 s it was asked to sleep (generous: a loaded CI machine is slow to schedule).
        #expect(clock.now - cancelled < .seconds(10))

        let already = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            try await CoAPTimer.sleep(for: .seconds(60))
        }
        await #expect(throws: CancellationError.self) { try await already.value }
    }
}
