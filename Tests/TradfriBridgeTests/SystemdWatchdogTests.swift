import Foundation
import SystemdNotify
import TestSupport
import Testing

@testable import TradfriBridge

/// The watchdog's rounds on a manual clock, against loops the test makes stick, talking to a
/// fake systemd through the real notify socket: pings while both loops turn, none once one of
/// them has shown no sign of life for two rounds (half the interval), and pings again when it
/// turns again.
@Suite struct SystemdWatchdogTests {
    /// Loops whose libcoap probe and MQTT turn count the test controls.
    final class Loops: WatchedLoops, @unchecked Sendable {
        // @unchecked: every field is guarded by `lock`.
        private let lock = NSLock()
        private var coapStuck = false
        private var held: [CheckedContinuation<Void, Never>] = []
        private var mqttStuck = false
        private var turns = 0
        private var answered = 0
        private var answerWaiters: [(Int, CheckedContinuation<Void, Never>)] = []

        func probe() async {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let stuck = lock.withLock {
                    if coapStuck { held.append(continuation) }
                    return coapStuck
                }
                if !stuck { continuation.resume() }
            }
            let ready: [CheckedContinuation<Void, Never>] = lock.withLock {
                answered += 1
                let ready = answerWaiters.filter { $0.0 <= answered }.map(\.1)
                answerWaiters.removeAll { $0.0 <= answered }
                return ready
            }
            for waiter in ready { waiter.resume() }
        }

        /// A healthy thread comes round between two rounds.
        func mqttTurns() -> Int {
            lock.withLock {
                if !mqttStuck { turns += 1 }
                return turns
            }
        }

        func stickCoAP(_ stuck: Bool) {
            let release: [CheckedContinuation<Void, Never>] = lock.withLock {
                coapStuck = stuck
                defer { if !stuck { held = [] } }
                return stuck ? [] : held
            }
            for continuation in release { continuation.resume() }
        }

        func stickMQTT(_ stuck: Bool) { lock.withLock { mqttStuck = stuck } }

        var probesAnswered: Int { lock.withLock { answered } }

        /// Waits until `count` probes have been answered in all.
        func waitForAnswers(_ count: Int) async throws {
            try await withDeadline(.seconds(10), "\(count) probes answered") {
                await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                    let done: Bool = self.lock.withLock {
                        if self.answered >= count { return true }
                        self.answerWaiters.append((count, continuation))
                        return false
                    }
                    if done { continuation.resume() }
                }
            }
        }
    }

    struct Rig {
        let systemd: FakeSystemd
        let clock = ManualClock()
        let loops = Loops()
        let round = Duration.seconds(1)
        let watchdog: SystemdWatchdog<ManualClock>

        /// A watchdog with an interval of 4 s: a round a second.
        init(systemd: FakeSystemd) throws {
            self.systemd = systemd
            let socket = try #require(NotifySocket(environment: systemd.environment()))
            watchdog = SystemdWatchdog(
                channel: SystemdChannel(socket: socket), loops: loops, interval: .seconds(4), clock: clock)
        }

        /// One round later: the watchdog has run its round and sleeps again.
        func nextRound(healthy: Bool = true) async throws {
            let answered = loops.probesAnswered
            clock.advance(by: round)
            try await clock.waitUntilParked(1)
            // A healthy executor has run the probe the round sent.
            if healthy { try await waitForAnswer(answered + 1) }
        }

        /// Waits until `count` probes have been answered in all, and the watchdog has seen the
        /// last answer (the probe returned to it), so the next round sends a new probe.
        func waitForAnswer(_ count: Int) async throws {
            try await loops.waitForAnswers(count)
            try await withDeadline(.seconds(10), "the watchdog to see the probe answered") { [watchdog] in
                while watchdog.probeOutstanding, !Task.isCancelled { await Task.yield() }
            }
        }

        /// Runs `body` with the watchdog running.
        func run(_ body: @Sendable (Rig) async throws -> Void) async throws {
            try await withThrowingTaskGroup { group in
                group.addTask { try await watchdog.run() }
                try await clock.waitUntilParked(1)
                try await waitForAnswer(1)
                try await body(self)
                loops.stickCoAP(false)
                group.cancelAll()
                try await group.waitForAll()
            }
        }
    }

    // Only WATCHDOG=1 reaches this fake systemd (these loops send no status), so the number of
    // notifications is the number of pings.

    @Test func pingsEveryRoundWhileBothLoopsTurn() async throws {
        let rig = try Rig(systemd: try FakeSystemd())
        try await rig.run { rig in
            for _ in 1...8 { try await rig.nextRound() }
            try await rig.systemd.waitForCount(9)
            #expect(rig.systemd.pings().count == 9, "the first round and eight more")
        }
        rig.systemd.close()
    }

    @Test func aStuckLibcoapExecutorStopsThePingsAndTheyResumeWhenItTurns() async throws {
        let rig = try Rig(systemd: try FakeSystemd())
        try await rig.run { rig in
            try await rig.nextRound()
            try await rig.systemd.waitForCount(2)
            rig.loops.stickCoAP(true)
            // This round's probe sticks; the next round is one round of patience, still pinging.
            try await rig.nextRound(healthy: false)
            try await rig.nextRound(healthy: false)
            try await rig.systemd.waitForCount(4)
            for _ in 1...6 { try await rig.nextRound(healthy: false) }
            #expect(rig.systemd.pings().count == 4, "no ping while the executor is stuck")
            let answered = rig.loops.probesAnswered
            rig.loops.stickCoAP(false)
            try await rig.waitForAnswer(answered + 1)
            try await rig.nextRound()
            try await rig.systemd.waitForCount(5)
            #expect(rig.systemd.pings().count == 5, "pings again")
        }
        rig.systemd.close()
    }

    @Test func aStuckMQTTThreadStopsThePings() async throws {
        let rig = try Rig(systemd: try FakeSystemd())
        try await rig.run { rig in
            try await rig.nextRound()
            try await rig.systemd.waitForCount(2)
            rig.loops.stickMQTT(true)
            for _ in 1...6 { try await rig.nextRound() }
            // The first quiet round still pings; from the second on, nothing.
            try await rig.systemd.waitForCount(3)
            #expect(rig.systemd.pings().count == 3)
            rig.loops.stickMQTT(false)
            try await rig.nextRound()
            try await rig.systemd.waitForCount(4)
            #expect(rig.systemd.pings().count == 4)
        }
        rig.systemd.close()
    }

    @Test func theJudgementNeedsTwoSilentRounds() {
        var watch = LoopWatch(patience: 2)
        #expect(watch.round(probeOutstanding: false, mqttTurns: 1).isEmpty)
        #expect(watch.round(probeOutstanding: true, mqttTurns: 2).isEmpty, "one round late is not stuck")
        #expect(watch.round(probeOutstanding: true, mqttTurns: 3) == [.coap])
        #expect(watch.round(probeOutstanding: false, mqttTurns: 3).isEmpty)
        #expect(watch.round(probeOutstanding: false, mqttTurns: 3) == [.mqtt])
        #expect(watch.round(probeOutstanding: true, mqttTurns: 3) == [.mqtt])
        #expect(watch.round(probeOutstanding: true, mqttTurns: 3) == [.coap, .mqtt])
        #expect(watch.round(probeOutstanding: false, mqttTurns: 4).isEmpty)
    }

    @Test func theMQTTThreadComesRoundWithinARound() {
        #expect(SystemdWatchdog<ContinuousClock>.mqttLoopWait(forInterval: .seconds(60)) == .seconds(13.5))
    }

    @Test func theStatusLineShowsTheLastChangeInLocalTime() throws {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = .current
        let now = try #require(calendar.date(from: DateComponents(year: 2026, month: 12, day: 5, hour: 14, minute: 3)))
        #expect(ServiceStatus.format(now.addingTimeInterval(-62), now: now) == "14:01:58")
        #expect(ServiceStatus.format(now.addingTimeInterval(-86_400), now: now) == "2026-12-04 14:03:00")
    }
}
