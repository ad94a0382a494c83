import CoAP
import Testing

/// The timers behind request deadlines and the keep-alive wait.
@Suite struct CoAPTimerTests {
    @CoAPActor
    final class Counter {
        var fired = 0
        nonisolated init() {}
        func fire() { fired += 1 }
    }

    @Test func aTimerFiresOnceOnTheLibcoapQueue() async throws {
        let counter = Counter()
        let timer = CoAPTimer(after: .milliseconds(20)) { counter.fire() }
        try await Task.sleep(for: .milliseconds(300))
        #expect(await counter.fired == 1)
        timer.cancel()
    }

    @Test func aCancelledTimerNeverFires() async throws {
        let counter = Counter()
        let timer = CoAPTimer(after: .milliseconds(50)) { counter.fire() }
        timer.cancel()
        try await Task.sleep(for: .milliseconds(300))
        #expect(await counter.fired == 0)
    }

    @Test func sleepWaitsItsTimeAndEndsAtOnceWhenCancelled() async throws {
        let clock = ContinuousClock()
        let start = clock.now
        try await CoAPTimer.sleep(for: .milliseconds(50))
        #expect(clock.now - start >= .milliseconds(50))

        let sleeper = Task { try await CoAPTimer.sleep(for: .seconds(60)) }
        try await Task.sleep(for: .milliseconds(20))
        let cancelled = clock.now
        sleeper.cancel()
        await #expect(throws: CancellationError.self) { try await sleeper.value }
        #expect(clock.now - cancelled < .seconds(1))

        let already = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            try await CoAPTimer.sleep(for: .seconds(60))
        }
        await #expect(throws: CancellationError.self) { try await already.value }
    }
}
