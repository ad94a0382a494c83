import Foundation
import MQTT
import TestSupport
import Testing

@testable import TradfriBridge

/// Two or more coordinators (`GatewayOwnership`) against a real mosquitto: in this process, and as
/// `TakeoverProbe` processes where a test kills (SIGKILL) or freezes (SIGSTOP) one. What the user
/// of two bridges relies on: one drives the gateways, the other stands by, takes over within 15 s
/// when the first dies, and the first, back, does not take them back.
@Suite(.serialized, .timeLimit(.minutes(2))) struct GatewayOwnershipTests {
    static let gateways = ["7e11515204400072", "7e1151520440aa01"]

    /// A base topic of its own per run, so repeated runs on one broker never see each other.
    static func base(_ name: String) -> String { "t\(UInt32.random(in: 0...UInt32.max))/\(name)" }

    // MARK: In this process

    @Test func ofTwoInstancesOneDrivesAndTheOtherStandsBy() async throws {
        let broker = try await MosquittoBroker()
        let base = Self.base("one")
        let a = try RunningOwnership(broker: broker, base: base, instance: "bridge-a", gateways: Self.gateways)
        let b = try RunningOwnership(broker: broker, base: base, instance: "bridge-b", gateways: Self.gateways)
        let winner = try await Self.winner(a, b)
        let standby = winner === a ? b : a
        try await standby.waitUntilSeeing(winner.instance, on: Self.gateways)
        #expect(standby.acquisitions.isEmpty)
        #expect(winner.ownership.owned == Self.gateways)
        let status = standby.ownership.status
        #expect(status.instances == ["bridge-a", "bridge-b"])
        for gateway in Self.gateways {
            #expect(status.gateways[gateway]?.role == .standby)
            #expect(status.gateways[gateway]?.owner == winner.instance)
        }
        // The standby stops first: nothing changes for the owner.
        let standbyStop = try await standby.stop()
        let ownerStopping = ContinuousClock.now
        let ownerStop = try await winner.stop()
        #expect(standbyStop < .seconds(2) && ownerStop < .seconds(2), "stops took \(standbyStop), \(ownerStop)")
        #expect(standby.acquisitions.isEmpty)
        #expect(!winner.events.events.contains { $0.lost != nil && $0.at < ownerStopping })
        // A clean stop leaves released records and no instance record.
        let released = { (records: [String: String], gateway: String) in
            let record = records["\(base)/bridge/takeover/gateway/\(gateway)"] ?? ""
            return record.contains(#""state":"released""#) && record.contains(#""owner":"\#(winner.instance)""#)
        }
        let records = try await retainedOwnershipRecords(broker, base: base) { records in
            Self.gateways.allSatisfy { released(records, $0) }
        }
        for gateway in Self.gateways { #expect(released(records, gateway), "\(records)") }
        #expect(records.keys.filter { $0.contains("/instance/") }.isEmpty, "\(records)")
    }

    /// Started at the same moment, or the second at each step of the first's start, again and
    /// again: exactly one instance acquires, and it acquires both gateways.
    @Test func instancesStartedTogetherEndWithExactlyOneOwner() async throws {
        let broker = try await MosquittoBroker()
        for round in 0..<12 {
            let base = Self.base("race\(round)")
            let records = "\(base)/bridge/takeover"
            // When B starts: with A; once A's instance record is out (B inside A's hold-off,
            // before its claim); once A has claimed one gateway; once it has claimed both. Each
            // step is the record topics of A's to see first.
            let steps: [(name: String, topics: [String])] = [
                ("together", []),
                ("after A's instance record", ["\(records)/instance/bridge-a "]),
                ("after A's first claim", ["\(records)/gateway/"]),
                ("after A's claims", Self.gateways.map { "\(records)/gateway/\($0) " }),
            ]
            let step = steps[round % steps.count]
            let watch = try await broker.subscriber(["-t", "\(records)/#", "-v"])
            defer { watch.signal(SIGTERM) }
            let a = try RunningOwnership(broker: broker, base: base, instance: "bridge-a", gateways: Self.gateways)
            for topic in step.topics {
                try await watch.waitForLine(within: .seconds(10), "\(topic)by bridge-a") {
                    $0.hasPrefix(topic) && $0.contains(#""bridge-a""#)
                }
            }
            let b = try RunningOwnership(broker: broker, base: base, instance: "bridge-b", gateways: Self.gateways)
            let winner = try await Self.winner(a, b)
            let standby = winner === a ? b : a
            try await standby.waitUntilSeeing(winner.instance, on: Self.gateways)
            #expect(standby.acquisitions.isEmpty, "round \(round), B \(step.name): \(standby.events.describeEvents())")
            try await standby.stop()
            try await winner.stop()
            #expect(overlaps([a, b], gateways: Self.gateways).isEmpty, "round \(round), B \(step.name)")
        }
    }

    /// A clean stop releases the records: the standby drives the gateways a moment later.
    @Test func aCleanStopHandsOverAtOnce() async throws {
        let broker = try await MosquittoBroker()
        let base = Self.base("clean")
        var settings = GatewayOwnership.Settings()  // the shipped race window and settle time
        settings.syncHoldoff = .milliseconds(500)
        let a = try RunningOwnership(
            broker: broker, base: base, instance: "bridge-a", gateways: Self.gateways, settings: settings)
        try await a.waitUntilOwning(Self.gateways)
        let b = try RunningOwnership(
            broker: broker, base: base, instance: "bridge-b", gateways: Self.gateways, settings: settings)
        try await b.waitUntilSeeing("bridge-a", on: Self.gateways)
        let stopping = ContinuousClock.now
        let stop = try await a.stop()
        let acquired = try await b.waitUntilOwning(Self.gateways, within: .seconds(5))
        let handover = acquired - stopping
        print("clean stop: bridge-a stopped in \(stop), bridge-b drove both gateways \(handover) after the stop began")
        #expect(stop < .seconds(2))
        // About 0.5 s (a 0.25 s race window, a round trip and a heartbeat per gateway); 2 s leaves
        // room for a loaded machine and still tells it from the 5 s settle after an owner died.
        #expect(handover < .seconds(2))
        try await b.stop()
        #expect(overlaps([a, b], gateways: Self.gateways).isEmpty)
    }

    /// The broker restarts without persistence: every retained record is gone, both instances
    /// reconnect, and they end with one owner (the same one, when it comes back within its lease).
    @Test(arguments: ["stop", "kill"]) func aBrokerRestartEndsWithOneOwner(how: String) async throws {
        let broker = try await MosquittoBroker()
        let base = Self.base("restart")
        let a = try RunningOwnership(broker: broker, base: base, instance: "bridge-a", gateways: Self.gateways)
        let b = try RunningOwnership(broker: broker, base: base, instance: "bridge-b", gateways: Self.gateways)
        let first = try await Self.winner(a, b)
        let standby = first === a ? b : a
        try await standby.waitUntilSeeing(first.instance, on: Self.gateways)
        for restart in 0..<3 {
            let down = (a.events.count, b.events.count)
            if how == "kill" { await broker.kill() } else { await broker.stop() }
            for (running, mark) in [(a, down.0), (b, down.1)] {
                try await running.events.firstEvent(within: .seconds(10), "\(running.instance) to notice", from: mark) {
                    $0.status?.synced == false
                }
            }
            let marks = (a.events.count, b.events.count)
            try await broker.start()
            // Both back, synced, agreeing on one live owner of both gateways.
            let owner = try await Self.agreedOwner(a, b, from: marks)
            #expect(
                overlaps([a, b], gateways: Self.gateways).isEmpty, "restart \(restart): \(a.events.describeEvents())")
            let holder = owner == "bridge-a" ? a : b
            #expect(holder.ownership.owned == Self.gateways)
            #expect((owner == "bridge-a" ? b : a).ownership.owned.isEmpty)
        }
        try await a.stop()
        try await b.stop()
    }

    /// A broker restart shorter than the lease changes nothing: the owner puts its records back
    /// before the other's hold-off ends. The shipped timing.
    @Test func aShortBrokerRestartChangesNothing() async throws {
        let broker = try await MosquittoBroker()
        let base = Self.base("blip")
        let settings = GatewayOwnership.Settings()
        let a = try RunningOwnership(
            broker: broker, base: base, instance: "bridge-a", gateways: Self.gateways, settings: settings)
        try await a.waitUntilOwning(Self.gateways)
        let b = try RunningOwnership(
            broker: broker, base: base, instance: "bridge-b", gateways: Self.gateways, settings: settings)
        try await b.waitUntilSeeing("bridge-a", on: Self.gateways)
        let down = (a.events.count, b.events.count)
        let stopped = ContinuousClock.now
        await broker.stop()
        try await broker.start()
        print("broker restart took \(ContinuousClock.now - stopped)")
        for (running, mark) in [(a, down.0), (b, down.1)] {
            try await running.events.firstEvent(within: .seconds(10), "\(running.instance) to notice", from: mark) {
                $0.status?.synced == false
            }
        }
        #expect(try await Self.agreedOwner(a, b, from: (a.events.count, b.events.count)) == "bridge-a")
        // Longer than the standby's hold-off and the full settle time: it claims nothing.
        let claimed = try? await b.events.firstEvent(
            within: settings.syncHoldoff + settings.takeoverSettle + .seconds(1), "a claim by bridge-b", from: down.1
        ) { $0.status?.gateways.values.contains { $0.role != .standby } == true }
        #expect(claimed == nil, "\(b.events.describeEvents())")
        #expect(!a.events.events.contains { $0.lost != nil }, "\(a.events.describeEvents())")
        try await b.stop()
        try await a.stop()
    }

    /// Graceful shutdown and cancellation both end `run()` well within 2 s, also with the broker gone.
    @Test func stopsPromptlyInEveryState() async throws {
        let broker = try await MosquittoBroker()
        let base = Self.base("stop")
        // Owning, broker there: records released.
        let a = try RunningOwnership(broker: broker, base: base, instance: "bridge-a", gateways: Self.gateways)
        try await a.waitUntilOwning(Self.gateways)
        #expect(try await a.stop() < .seconds(2))
        // Owning, cancelled: the instance record goes, the ownership records stay (the others
        // wait the full settle time).
        let b = try RunningOwnership(broker: broker, base: base, instance: "bridge-b", gateways: Self.gateways)
        try await b.waitUntilOwning(Self.gateways)
        #expect(try await b.cancel() < .seconds(2))
        try await b.events.firstEvent(within: .seconds(2), "lost on cancellation") { $0.lost == Self.gateways[0] }
        let records = try await retainedOwnershipRecords(broker, base: base) {
            $0["\(base)/bridge/takeover/gateway/\(Self.gateways[0])"] != nil
        }
        #expect(records["\(base)/bridge/takeover/instance/bridge-b"] == nil, "\(records)")
        let record = records["\(base)/bridge/takeover/gateway/\(Self.gateways[0])"] ?? ""
        #expect(record.contains(#""owner":"bridge-b""#) && record.contains(#""state":"owned""#), "\(record)")
        // Owning, broker gone.
        let c = try RunningOwnership(broker: broker, base: base, instance: "bridge-c", gateways: Self.gateways)
        try await c.waitUntilOwning(Self.gateways)
        await broker.kill()
        #expect(try await c.stop() < .seconds(2))
        // Never connected at all.
        let d = try RunningOwnership(broker: broker, base: base, instance: "bridge-d", gateways: Self.gateways)
        #expect(try await d.stop() < .seconds(2))
        let e = try RunningOwnership(broker: broker, base: base, instance: "bridge-e", gateways: Self.gateways)
        #expect(try await e.cancel() < .seconds(2))
    }

    // MARK: As processes

    /// Two coordinator processes with the shipped timing, once the standby sees who owns.
    static func ownerAndStandby(
        _ broker: MosquittoBroker, base: String
    ) async throws -> (owner: OwnershipProbe, standby: OwnershipProbe) {
        let a = try OwnershipProbe(broker: broker, base: base, instance: "bridge-a", gateways: gateways, fast: false)
        let b = try OwnershipProbe(broker: broker, base: base, instance: "bridge-b", gateways: gateways, fast: false)
        let (owner, standby) = try await winner(a, b)
        try await standby.waitUntilSeeing(owner.instance, on: gateways, within: .seconds(20))
        return (owner, standby)
    }

    /// kill -9 of the owner (the process, with its TCP connection): the broker publishes its will,
    /// and the standby drives both gateways within 15 s. The killed one is started again and
    /// stands by. The shipped timing.
    @Test func aKilledOwnerIsReplacedWithin15SecondsAndDoesNotTakeItBack() async throws {
        let broker = try await MosquittoBroker()
        let base = Self.base("kill")
        let (owner, standby) = try await Self.ownerAndStandby(broker, base: base)
        let mark = standby.process.lineCount
        let killed = ContinuousClock.now
        owner.process.signal(SIGKILL)
        try await standby.waitUntilOwning(Self.gateways, after: mark, within: .seconds(15))
        let takeover = ContinuousClock.now - killed
        print("kill -9: \(standby.instance) drove both gateways \(takeover) after the owner was killed")
        #expect(takeover < .seconds(15))

        // The old owner comes back with the same instance id: it sees the new owner and stays standby
        // for longer than its hold-off and the full settle time.
        let returned = try OwnershipProbe(
            broker: broker, base: base, instance: owner.instance, gateways: Self.gateways, fast: false)
        try await returned.waitUntilSeeing(standby.instance, on: Self.gateways, within: .seconds(10))
        let settings = GatewayOwnership.Settings()
        let quiet = settings.syncHoldoff + settings.takeoverSettle + .seconds(2)
        let fought = try? await returned.process.waitForLine(within: quiet, "an acquisition by the returned owner") {
            $0.hasPrefix("acquired ") || $0.hasPrefix("lost ")
        }
        #expect(fought == nil, "the returned owner printed: \(fought ?? "")")
        let after = standby.process.output.dropFirst(mark)
        #expect(!after.contains { $0.hasPrefix("lost ") }, "\(after)")
    }

    /// SIGSTOP of the owner: it falls silent without closing its connection. The standby notices
    /// (the owner's heartbeats stop; the broker's keepalive expires) and drives the gateways within
    /// 15 s. Resumed, the old owner reports its lease gone before anything else and stands by.
    @Test func aFrozenOwnerIsReplacedWithin15SecondsAndStandsByWhenResumed() async throws {
        let broker = try await MosquittoBroker()
        let base = Self.base("freeze")
        let (owner, standby) = try await Self.ownerAndStandby(broker, base: base)
        let mark = standby.process.lineCount
        let ownerMark = owner.process.lineCount
        let frozen = ContinuousClock.now
        owner.process.signal(SIGSTOP)
        try await standby.waitUntilOwning(Self.gateways, after: mark, within: .seconds(15))
        let takeover = ContinuousClock.now - frozen
        print("SIGSTOP: \(standby.instance) drove both gateways \(takeover) after the owner froze")
        #expect(takeover < .seconds(15))

        owner.process.signal(SIGCONT)
        for gateway in Self.gateways {
            let line = try await owner.process.waitForLine(
                within: .seconds(5), "the resumed owner to give up \(gateway)", after: ownerMark
            ) { $0.hasPrefix("lost \(gateway)") || $0.hasPrefix("acquired \(gateway)") }
            #expect(line.hasPrefix("lost \(gateway)"), "\(line)")
        }
        try await owner.waitUntilSeeing(standby.instance, on: Self.gateways, after: ownerMark, within: .seconds(15))
        #expect(!owner.process.output.dropFirst(ownerMark).contains { $0.hasPrefix("acquired ") })
        #expect(!standby.process.output.dropFirst(mark).contains { $0.hasPrefix("lost ") })
    }

    // MARK: Helpers
    //
    // Each wait has one waiter: TestSupport's `ChildProcess` and `EventRecorder` resume waiters
    // while holding their lock, and a waiter's cancellation handler takes that lock, so cancelling
    // a wait at the moment a line or event arrives can deadlock (two waits raced in a task group).

    /// The instance that acquired both gateways, once `a` sees one instance own both and that one
    /// has acquired them; the other must have acquired nothing.
    static func winner(_ a: RunningOwnership, _ b: RunningOwnership) async throws -> RunningOwnership {
        let seen = try await a.events.firstEvent(within: .seconds(20), "bridge-a to see one owner of both gateways") {
            guard let status = $0.status, status.synced, let owner = status.gateways[gateways[0]]?.owner else {
                return false
            }
            return gateways.allSatisfy { id in
                guard let gateway = status.gateways[id], gateway.owner == owner else { return false }
                return owner == a.instance ? gateway.role == .active : gateway.ownerConnected
            }
        }
        let owner = seen.status?.gateways[gateways[0]]?.owner == a.instance ? a : b
        try await owner.waitUntilOwning(gateways)
        return owner
    }

    /// The same for two probes, from `a`'s status lines (`status synced=true <gateway>=<role>:<owner>:<up|down> …`).
    static func winner(_ a: OwnershipProbe, _ b: OwnershipProbe) async throws -> (OwnershipProbe, OwnershipProbe) {
        let line = try await a.process.waitForLine(within: .seconds(20), "bridge-a to see one owner of both gateways") {
            line in
            guard line.hasPrefix("status synced=true") else { return false }
            let mine = gateways.allSatisfy { line.contains("\($0)=active:\(a.instance):up") }
            let theirs = gateways.allSatisfy { line.contains("\($0)=standby:\(b.instance):up") }
            return mine || theirs
        }
        let (owner, standby) = line.contains("=active:") ? (a, b) : (b, a)
        try await owner.waitUntilOwning(gateways, within: .seconds(20))
        #expect(!standby.owns)
        return (owner, standby)
    }

    /// Waits (after events `from`) until both instances are synced and agree that one live
    /// instance drives both gateways, and that one says it drives them; returns it.
    static func agreedOwner(_ a: RunningOwnership, _ b: RunningOwnership, from marks: (Int, Int)) async throws -> String
    {
        func agreement(_ running: RunningOwnership, from mark: Int, owner wanted: String?) async throws -> String {
            let event = try await running.events.firstEvent(
                within: .seconds(20), "\(running.instance) to see one live owner of both gateways", from: mark
            ) { stamped in
                guard let status = stamped.status, status.synced,
                    let owner = wanted ?? status.gateways[gateways[0]]?.owner
                else { return false }
                return gateways.allSatisfy { id in
                    guard let gateway = status.gateways[id], gateway.owner == owner, gateway.ownerConnected else {
                        return false
                    }
                    return owner != running.instance || gateway.role == .active
                }
            }
            return event.status?.gateways[gateways[0]]?.owner ?? ""
        }
        let owner = try await agreement(a, from: marks.0, owner: nil)
        _ = try await agreement(b, from: marks.1, owner: owner)
        // Still so for both.
        for running in [a, b] {
            let status = running.ownership.status
            #expect(gateways.allSatisfy { status.gateways[$0]?.owner == owner }, "\(running.instance): \(status)")
        }
        return owner
    }
}
