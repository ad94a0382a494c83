import Foundation
import HubModel
import TestSupport
import Testing

/// The bridge binary under a fake systemd (the test holds `$NOTIFY_SOCKET` and sets
/// `WATCHDOG_USEC`, as systemd does for `Type=notify` with `WatchdogSec=`): what systemd and
/// `systemctl status` see, and a stuck loop getting the bridge restarted, as systemd would do it
/// (no ping for the whole interval: SIGABRT, then `Restart=on-failure` starts it again).
@Suite(.serialized) struct SystemdTests {
    /// Short, so a test sees several intervals; the unit file says 60 s.
    static let interval = Duration.seconds(2)

    @Test func readyOnceTheFirstSyncIsPublishedThenStatusAndPingsWhileTheLoopsTurn() async throws {
        let harness = try await BridgeHarness()
        let systemd = try FakeSystemd()
        let bridge = try harness.launchBridge(
            configuration: harness.testConfiguration(), environment: systemd.environment(watchdog: Self.interval))

        let ready = try await systemd.wait(for: "READY", "1", within: .seconds(20))
        // Everything the first sync publishes is on the broker by then: a new subscriber gets it
        // at once from the retained messages.
        let retained = try await harness.subscribe(["tradfri/bridge/groups", "tradfri/living_room_ceiling"])
        try await retained.waitForLine(within: .seconds(2), "the groups, retained") {
            $0.hasPrefix("tradfri/bridge/groups [")
        }
        try await retained.waitForLine(within: .seconds(2), "a light's state, retained") {
            $0.hasPrefix("tradfri/living_room_ceiling {")
        }
        retained.signal(SIGTERM)
        let status = try #require(ready.value("STATUS"))
        #expect(status.hasPrefix("1 of 1 gateway connected; 10 devices; broker connected; last change "), "\(status)")
        #expect(systemd.values(of: "READY").count == 1)

        // Pings a quarter of the interval apart while the loops turn; systemd never waits long.
        let mark = systemd.count
        try await systemd.waitForPings(8, from: mark)
        let pings = systemd.pings(from: mark)
        let gaps = zip(pings.dropFirst(), pings).map { $0 - $1 }
        #expect(gaps.allSatisfy { $0 < Self.interval }, "\(gaps)")

        // A change at the gateway (the IKEA app) moves "last change" on within a round.
        let changeMark = systemd.count
        _ = try await harness.coap("put", "15001/65537", #"{"3311":[{"5850":1,"5851":77}]}"#)
        try await systemd.wait(within: .seconds(5), "the last change moving on", from: changeMark) {
            guard let line = $0.value("STATUS") else { return false }
            return line.contains("last change ") && line != status
        }
        // The gateway goes away: systemctl status says so, and the loops still turn.
        harness.simulator.signal(SIGKILL)
        let away = try await systemd.wait(within: .seconds(15), "the gateway offline") {
            $0.value("STATUS")?.hasPrefix("0 of 1 gateway connected (gateway offline); 10 devices;") == true
        }
        print("systemctl status would show: \(away.value("STATUS") ?? "")")
        let afterAway = systemd.count
        try await systemd.wait(for: "WATCHDOG", "1", within: .seconds(2), from: afterAway)

        // systemctl stop: STOPPING=1, and the bridge ends within 2 s with status 0.
        let sent = ContinuousClock.now
        bridge.signal(SIGTERM)
        try await systemd.wait(for: "STOPPING", "1", within: .seconds(2))
        #expect(try await bridge.waitForExit(within: .seconds(2)) == 0)
        #expect(ContinuousClock.now - sent < .seconds(2))
        systemd.close()
        await harness.shutdown()
    }

    /// Start-up ends (READY) also when the gateway is away at boot: systemd must not time the
    /// start out and restart the bridge in a loop; the status says what is missing.
    @Test func readyComesWhenTheGatewayIsAwayAtBoot() async throws {
        let harness = try await BridgeHarness()
        await harness.simulator.stop()
        let systemd = try FakeSystemd()
        try harness.launchBridge(
            configuration: harness.testConfiguration(), environment: systemd.environment(watchdog: Self.interval))
        let ready = try await systemd.wait(for: "READY", "1", within: .seconds(20))
        #expect(
            ready.value("STATUS")
                == "0 of 1 gateway connected (gateway offline); 0 devices; broker connected; no change yet")
        try await harness.restartSimulator()
        try await systemd.wait(within: .seconds(20), "the gateway in the status") {
            $0.value("STATUS")?.hasPrefix("1 of 1 gateway connected; 10 devices; broker connected") == true
        }
        #expect(systemd.values(of: "READY").count == 1, "once")
        systemd.close()
        await harness.shutdown()
    }

    /// With takeover on, a bridge is ready as soon as it runs (standing by is what it should do)
    /// and keeps pinging the watchdog before, while and after it drives: systemd never kills a
    /// bridge for standing by. While it drives, a late will of another instance does not leave
    /// `bridge/state` offline.
    @Test func withTakeoverTheBridgeIsReadyAndPingsWhileStandingByAndDriving() async throws {
        let harness = try await BridgeHarness()
        let systemd = try FakeSystemd()
        let bridge = try harness.launchBridge(
            configuration: harness.testConfiguration(
                extraConfiguration: "takeover:\n  enabled: true\n  instance_id: a"),
            environment: systemd.environment(watchdog: Self.interval))
        let ready = try await systemd.wait(for: "READY", "1", within: .seconds(10))
        #expect(ready.value("STATUS") == "takeover: waiting to drive the gateways")
        try await systemd.waitForPings(2)
        // Alone, it takes the gateway over and then says what it drives.
        try await systemd.wait(within: .seconds(30), "the driving status") {
            $0.value("STATUS")?.hasPrefix("1 of 1 gateway connected; 10 devices;") == true
        }
        let mark = systemd.count
        try await systemd.waitForPings(4, from: mark)

        // The will of an earlier owner whose connection died silently comes from the broker
        // after this one took over: it is answered with online at once (Home Assistant would
        // otherwise show every entity unavailable while this one drives).
        let state = try await harness.subscribe(["tradfri/bridge/state"])
        try await state.waitForLine(containing: #"{"state":"online"}"#)
        let beforeWill = state.lineCount
        try await harness.publish("tradfri/bridge/state", #"{"state":"offline"}"#, retain: true)
        try await state.waitForLine(within: .seconds(5), "online again", after: beforeWill) {
            $0 == #"tradfri/bridge/state {"state":"online"}"#
        }
        let fresh = try await harness.subscribe(["tradfri/bridge/state"])
        try await fresh.waitForLine(within: .seconds(5), "online retained") {
            $0 == #"tradfri/bridge/state {"state":"online"}"#
        }

        // A rival instance takes the gateway (its records, as in TakeoverBridgeTests): this one
        // stands by, still pinging, and `systemctl status` says so instead of its last count.
        let base = "tradfri/bridge/takeover"
        let gateway = "7e11515204400072"
        try await harness.publish(
            "\(base)/instance/bridge-x",
            #"{"instance":"bridge-x","session":"s","since":"2026-01-01T00:00:00Z","gateways":["\#(gateway)"]}"#,
            retain: true)
        try await harness.publish(
            "\(base)/gateway/\(gateway)",
            #"{"state":"owned","owner":"bridge-x","token":"t","since":"2026-01-01T00:00:00Z"}"#, retain: true)
        try await systemd.wait(within: .seconds(10), "the standby status") {
            $0.value("STATUS") == "takeover: standing by, another instance drives the gateways"
        }
        let standing = systemd.count
        try await systemd.waitForPings(2, from: standing)
        // The rival goes: this one drives again and counts the gateway again.
        try await harness.publish("\(base)/instance/bridge-x", "", retain: true)
        try await systemd.wait(within: .seconds(30), "the driving status again", from: standing) {
            $0.value("STATUS")?.hasPrefix("1 of 1 gateway connected; 10 devices;") == true
        }
        state.signal(SIGTERM)
        fresh.signal(SIGTERM)
        bridge.signal(SIGTERM)
        #expect(try await bridge.waitForExit(within: .seconds(2)) == 0)
        systemd.close()
        await harness.shutdown()
    }

    /// A loop that sticks (a blocking call on the libcoap executor, or in the MQTT network
    /// thread): the pings stop, systemd's watchdog expires, systemd kills the bridge (SIGABRT)
    /// and starts it again, and the new one is ready and pinging.
    @Test(arguments: ["coap", "mqtt"]) func aStuckLoopGetsTheBridgeRestarted(_ loop: String) async throws {
        let harness = try await BridgeHarness()
        let systemd = try FakeSystemd()
        let environment = systemd.environment(watchdog: Self.interval).merging(["TRADFRI_DEBUG_HOOKS": "1"]) { $1 }
        let bridge = try harness.launchBridge(configuration: harness.testConfiguration(), environment: environment)
        try await systemd.wait(for: "READY", "1", within: .seconds(20))
        let warm = systemd.count
        try await systemd.waitForPings(3, from: warm)

        let stalled = ContinuousClock.now
        try await harness.publish("tradfri/bridge/request/debug/stall", #"{"loop":"\#(loop)","seconds":120}"#)
        let expired = try await Self.watchdogExpiry(systemd, interval: Self.interval, within: .seconds(15))
        print("\(loop) stuck: the watchdog expired \(expired - stalled) after the stall")
        #expect(expired - stalled < Self.interval * 3, "found and acted on within one and a half intervals")
        let named = loop == "coap" ? "the libcoap executor" : "the MQTT network thread"
        try await bridge.waitForLine(within: .seconds(5), "the log naming the stuck loop") {
            $0.contains(named) && $0.contains("no sign of life")
        }

        // systemd: WatchdogSignal=SIGABRT; SIGKILL if it has not ended after TimeoutAbortSec=
        // (10 s in the unit: Swift's crash handler prints a backtrace of every thread, which
        // shows where the loop is stuck, and may leave the process running); then
        // Restart=on-failure starts it again.
        bridge.signal(SIGABRT)
        let status: Int32
        if let ended = try? await bridge.waitForExit(within: .seconds(10)) {
            status = ended
        } else {
            // As systemd does, to the whole cgroup: the bridge and the crash handler's helper
            // (swift-backtrace, its child), which can otherwise hold the exit on a loaded machine.
            for child in Self.children(of: bridge.pid) { kill(child, SIGKILL) }
            bridge.signal(SIGKILL)
            status = try await bridge.waitForExit(within: .seconds(20))
        }
        print(
            "\(loop) stuck: ended by \(status == SIGABRT ? "SIGABRT" : status == SIGKILL ? "SIGKILL after TimeoutAbortSec" : "status \(status)")"
        )
        #expect(status == SIGABRT || status == SIGKILL)
        let restart = systemd.count
        try harness.launchBridge(configuration: harness.testConfiguration(), environment: environment)
        try await systemd.wait(for: "READY", "1", within: .seconds(20), from: restart)
        try await systemd.waitForPings(3, from: restart)
        systemd.close()
        await harness.shutdown()
    }

    /// The processes whose parent is `pid`.
    static func children(of pid: Int32) -> [Int32] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { entry -> Int32? in
            guard let child = Int32(entry),
                let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
                let fields = stat.split(separator: ")").last?.split(separator: " "), fields.count > 2,
                Int32(fields[1]) == pid
            else { return nil }
            return child
        }
    }

    /// Plays systemd's watchdog: returns when no `WATCHDOG=1` has come for `interval` since the
    /// last one (the moment systemd would kill the service).
    static func watchdogExpiry(
        _ systemd: FakeSystemd, interval: Duration, within limit: Duration
    ) async throws -> ContinuousClock.Instant {
        let give = ContinuousClock.now + limit
        var last = systemd.pings().last ?? .now
        while ContinuousClock.now < give {
            let mark = systemd.count
            let left = last + interval - .now
            if left <= .zero { return last + interval }
            do {
                let ping = try await systemd.wait(within: left, "a ping", from: mark) { $0.value("WATCHDOG") == "1" }
                last = ping.time
            } catch is DeadlineExceeded {
                return last + interval
            }
        }
        Issue.record("the pings went on for \(limit): the watchdog never expired")
        return .now
    }
}
