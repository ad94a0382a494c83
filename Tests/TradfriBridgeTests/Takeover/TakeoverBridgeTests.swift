import Foundation
import HubModel
import TestSupport
import Testing

/// Two `tradfri-bridge` binaries with `takeover.enabled`, the same configuration but for the
/// instance id (and each its own identity on the gateway, as two machines would have), one
/// gateway simulator, one mosquitto. What a user of two bridges relies on: only one talks to the
/// gateway (the simulator's request log names one identity), the other takes over by itself when
/// the first dies or stops, MQTT then equals the gateway both ways, and the first, back, stands by.
@Suite(.serialized, .timeLimit(.minutes(3))) struct TakeoverBridgeTests {
    /// A bridge instance: its id, the identity it paired with, its process.
    final class Instance: @unchecked Sendable {
        // @unchecked: mutated only by the test that owns it, one step at a time.
        let id: String
        let identity: String
        let configFile: String
        var process: ChildProcess?

        init(id: String, identity: String, configFile: String) {
            self.id = id
            self.identity = identity
            self.configFile = configFile
        }

        func start() throws {
            process = try ChildProcess("tradfri-bridge", ["run", "--config", configFile], name: "bridge-\(id)")
        }
    }

    /// The set-up: a harness (broker, simulator), two instances paired each with an identity of
    /// its own, a subscriber on the takeover records, bridge/state and the light's state.
    final class TwoBridges: @unchecked Sendable {
        // @unchecked: used by one test, one step at a time.
        let harness: BridgeHarness
        let a: Instance
        let b: Instance
        let watch: ChildProcess
        let gatewayID: String
        /// Request log entries made while pairing (each `auth` checks its new identity).
        let pairingRequests: Int

        init() async throws {
            harness = try await BridgeHarness()
            var instances: [Instance] = []
            for id in ["bridge-a", "bridge-b"] {
                let credentials = harness.directory.appendingPathComponent("\(id)-credentials.json").path
                let paired = try await runCommand(
                    "tradfri-bridge",
                    [
                        "auth", "--gateway", harness.gateway, "--security-code", BridgeHarness.securityCode,
                        "--credentials", credentials, "--identity", "identity-\(id)",
                    ])
                #expect(paired.status == 0, "\(paired.output)")
                let configFile = harness.directory.appendingPathComponent("\(id).yaml").path
                try Self.configuration(harness, credentials: credentials, instance: id)
                    .write(toFile: configFile, atomically: true, encoding: .utf8)
                instances.append(Instance(id: id, identity: "identity-\(id)", configFile: configFile))
            }
            (a, b) = (instances[0], instances[1])
            pairingRequests = try harness.requests().count
            watch = try await harness.subscribe([
                "tradfri/bridge/takeover/#", "tradfri/bridge/state", "tradfri/bridge/groups", "tradfri/bridge/info",
                "tradfri/+",
            ])
            // "tradfri-gateway-sim listening on 127.0.0.1:port gateway-id <id> firmware …"
            let ready = harness.simulator.output.first { $0.contains("gateway-id ") } ?? ""
            let words = ready.split(separator: " ")
            gatewayID = try #require(words.firstIndex(of: "gateway-id").map { String(words[$0 + 1]) }, "\(ready)")
        }

        /// The same for both but `takeover.instance_id` (and the credentials file: each machine
        /// pairs its own); the same `mqtt.client_id` on purpose.
        static func configuration(_ harness: BridgeHarness, credentials: String, instance: String) -> String {
            """
            gateway:
              address: \(harness.gateway)
              credentials: \(credentials)
              keepalive: 1
              request_timeout: 2
              reconnect_max_delay: 2
              command_spacing: 0.2
            mqtt:
              server: \(harness.broker.url)
              client_id: tradfri-shared
            discovery:
              enabled: false
              advertise: false
            homeassistant:
              enabled: true
            takeover:
              enabled: true
              instance_id: \(instance)
            """
        }

        /// Starts both instances; returns the one that drives and the one standing by, once the
        /// standby says so (it has read the records).
        func startBoth() async throws -> (driving: Instance, standingBy: Instance) {
            try a.start()
            try b.start()
            let first = try await driver()
            let second = first === a ? b : a
            try await #require(second.process).waitForLine(
                containing: "standing by: another instance drives the gateways", within: .seconds(20))
            return (first, second)
        }

        /// Waits until an instance drives the gateway (its first full sync published
        /// `bridge/groups`, after `after`) and returns it: the one running that logged acquiring it.
        func driver(within limit: Duration = .seconds(20), after: Int = 0) async throws -> Instance {
            try await watch.waitForLine(within: limit, "bridge/groups of a driving bridge", after: after) {
                $0.hasPrefix("tradfri/bridge/groups ")
            }
            // Its log line was written before it drove, but each process's output is read by a
            // thread of its own: wait for it rather than read what has arrived so far.
            let running = [a, b].filter { $0.process?.isRunning == true }
            let first = await withTaskGroup(of: Instance?.self) { group in
                for instance in running {
                    group.addTask {
                        let acquired = try? await instance.process?.waitForLine(
                            containing: "acquired gateway", within: .seconds(10))
                        return acquired == nil ? nil : instance
                    }
                }
                for await found in group where found != nil {
                    group.cancelAll()
                    return found
                }
                return nil
            }
            let driver = try #require(first, "no running instance logged acquiring the gateway")
            let others = running.filter { $0 !== driver && $0.process?.outputText.contains("acquired gateway") == true }
            #expect(others.isEmpty, "also driving: \(others.map(\.id))")
            return driver
        }

        /// Waits for the retained ownership record naming `owner` (any owner when nil); returns it.
        @discardableResult
        func ownerRecord(
            _ owner: String? = nil, within limit: Duration = .seconds(20), after: Int = 0
        ) async throws -> String {
            let record = try await message(
                on: "tradfri/bridge/takeover/gateway/\(gatewayID)", from: watch, within: limit, after: after
            ) { json in
                json["state"] == "owned" && (owner == nil || json["owner"]?.stringValue == owner)
            }
            return try #require(record["owner"]?.stringValue)
        }

        /// The bridge identities that sent requests to the gateway, from the request log entry
        /// `from` on (not pairing's bootstrap identity, not the test's app).
        func identities(from: Int? = nil) throws -> Set<String> {
            Set(
                try harness.requests().dropFirst(from ?? pairingRequests).compactMap { $0["identity"]?.stringValue }
                    .filter {
                        $0 != "Client_identity" && !$0.hasPrefix("ikea-app-")
                    })
        }

        /// Both ways through `owner`: a set command over MQTT reaches the gateway (a PUT by the
        /// owner's identity), and a change at the gateway reaches MQTT.
        func roundTrips(through owner: Instance, brightness: Int) async throws {
            let logged = try harness.requests().count
            let before = watch.lineCount
            try await harness.publish("tradfri/65537/set", #"{"state":"ON","brightness":\#(brightness)}"#)
            try await message(on: "tradfri/hallway", from: watch, within: .seconds(10), after: before) {
                $0["brightness"]?.intValue == brightness
            }
            #expect(try await harness.device(65537).light?.brightness == brightness)
            let puts = try harness.requests().dropFirst(logged).filter { $0["method"] == "PUT" }
            #expect(!puts.isEmpty && puts.allSatisfy { $0["identity"]?.stringValue == owner.identity }, "\(puts)")
            // The app changes the light at the gateway: MQTT follows.
            let again = watch.lineCount
            _ = try await harness.coap("put", "15001/65537", #"{"3311":[{"5850":1,"5851":\#(brightness + 20)}]}"#)
            try await message(on: "tradfri/hallway", from: watch, within: .seconds(10), after: again) {
                $0["brightness"]?.intValue == brightness + 20
            }
        }

        func shutdown() async {
            for instance in [a, b] {
                if let dump = ProcessInfo.processInfo.environment["TAKEOVER_DUMP"], let process = instance.process {
                    try? process.outputText.write(
                        toFile: "\(dump)-\(instance.id).log", atomically: true, encoding: .utf8)
                }
                instance.process?.signal(SIGKILL)
                _ = try? await instance.process?.waitForExit()
            }
            watch.signal(SIGTERM)
            await harness.shutdown()
        }
    }

    /// Runs `body` with a fresh set-up, and stops everything however it ends.
    static func withTwoBridges(_ body: (TwoBridges) async throws -> Void) async throws {
        let set = try await TwoBridges()
        do {
            try await body(set)
        } catch {
            await set.shutdown()
            throw error
        }
        await set.shutdown()
    }

    /// (a) one drives, the other never sends the gateway anything; (b) kill -9 of the owner: the
    /// other drives within 15 s and MQTT equals the gateway both ways; (c) the killed one, back,
    /// stands by while the other lives.
    @Test func oneDrivesAKilledOwnerIsReplacedAndStandsByWhenBack() async throws {
        try await Self.withTwoBridges { set in try await Self.killedOwner(set) }
    }

    static func killedOwner(_ set: TwoBridges) async throws {
        let (first, second) = try await set.startBoth()
        try await set.roundTrips(through: first, brightness: 90)
        // (a) Only the owner's identity ever talked to the gateway (the harness paired a third
        // identity, which never sends anything).
        let identities = try set.identities()
        #expect(identities == [first.identity], "requests by \(identities)")

        // (b) kill -9 the owner.
        let killedAt = ContinuousClock.now
        let beforeKill = set.watch.lineCount
        let logged = try set.harness.requests().count
        first.process?.signal(SIGKILL)
        _ = try await first.process?.waitForExit()
        try await set.ownerRecord(second.id, within: .seconds(15), after: beforeKill)
        try await message(on: "tradfri/bridge/state", from: set.watch, within: .seconds(15), after: beforeKill) {
            $0["state"] == "online"
        }
        // Driving: it read the light from the gateway (MQTT equals the gateway) by itself.
        try await message(on: "tradfri/hallway", from: set.watch, within: .seconds(15), after: beforeKill) {
            $0["brightness"]?.intValue == 110
        }
        let tookOver = ContinuousClock.now - killedAt
        #expect(try await set.driver(after: beforeKill) === second)
        print("takeover after kill -9: bridge/state online and states published \(tookOver) after the kill")
        #expect(tookOver < .seconds(15))
        try await set.roundTrips(through: second, brightness: 60)
        #expect(try set.identities(from: logged) == [second.identity])

        // (c) The first one comes back: it stands by while the second lives.
        let beforeReturn = set.watch.lineCount
        let loggedBeforeReturn = try set.harness.requests().count
        try first.start()
        try await #require(first.process).waitForLine(
            containing: "standing by: another instance drives the gateways", within: .seconds(20))
        // Long enough for any claim of it to show: 10 of the owner's heartbeats (a claim would
        // come at most 2 s after it read the records, and drive 5 s later).
        for _ in 0..<10 {
            try await message(
                on: "tradfri/bridge/takeover/gateway/\(set.gatewayID)", from: set.watch, within: .seconds(5),
                after: set.watch.lineCount
            ) { $0["heartbeat"] != nil && $0["owner"]?.stringValue == second.id }
        }
        try await set.roundTrips(through: second, brightness: 30)
        let records = set.watch.output.dropFirst(beforeReturn).filter {
            $0.hasPrefix("tradfri/bridge/takeover/gateway/") && $0.contains(#""owner":"\#(first.id)""#)
        }
        #expect(records.isEmpty, "the returned instance claimed: \(records)")
        #expect(try set.identities(from: loggedBeforeReturn) == [second.identity])
        #expect(
            set.watch.output.dropFirst(beforeReturn).allSatisfy {
                !$0.hasPrefix(#"tradfri/bridge/state {"state":"offline"}"#)
            })
    }

    /// (d) A clean stop (SIGTERM) of the owner hands over at once: the other drives within a few
    /// seconds (its own settle is 0.25 s), and MQTT equals the gateway both ways.
    @Test func aCleanStopHandsOverPromptly() async throws {
        try await Self.withTwoBridges { set in try await Self.cleanStop(set) }
    }

    static func cleanStop(_ set: TwoBridges) async throws {
        let (first, second) = try await set.startBoth()
        try await set.roundTrips(through: first, brightness: 100)

        let stoppedAt = ContinuousClock.now
        let beforeStop = set.watch.lineCount
        let logged = try set.harness.requests().count
        first.process?.signal(SIGTERM)
        let status = try await #require(first.process).waitForExit(within: .seconds(5))
        #expect(status == 0)
        let exited = ContinuousClock.now - stoppedAt
        try await set.ownerRecord(second.id, within: .seconds(10), after: beforeStop)
        let claimed = ContinuousClock.now - stoppedAt
        try await message(on: "tradfri/bridge/state", from: set.watch, within: .seconds(10), after: beforeStop) {
            $0["state"] == "online"
        }
        let online = ContinuousClock.now - stoppedAt
        #expect(try await set.driver(after: beforeStop) === second)
        print("clean stop hand-over: exited \(exited), claimed \(claimed), bridge/state online \(online) after SIGTERM")
        #expect(online < .seconds(4))
        // The stopping one published offline before the other went online, never after.
        let states = set.watch.output.dropFirst(beforeStop).filter { $0.hasPrefix("tradfri/bridge/state ") }
        #expect(states.last?.contains("online") == true, "\(states)")
        // bridge/info says who drives the gateway now.
        let gatewayID = set.gatewayID
        try await message(on: "tradfri/bridge/info", from: set.watch, within: .seconds(5), after: beforeStop) {
            $0["takeover"]?["instance"]?.stringValue == second.id
                && $0["takeover"]?["gateways"]?[gatewayID]?["owner"]?.stringValue == second.id
                && $0["takeover"]?["gateways"]?[gatewayID]?["role"] == "active"
        }
        try await set.roundTrips(through: second, brightness: 45)
        #expect(try set.identities(from: logged) == [second.identity])
    }

    /// Two gateways (`first`: the harness's, `second`), takeover on as instance bridge-a.
    static func twoGateways(_ harness: BridgeHarness, _ second: SimulatedGateway) -> String {
        harness.gatewaysConfiguration(
            [
                harness.gatewayEntry("first", id: "7e11515204400072", harness.primary, commandSpacing: 0.2),
                harness.gatewayEntry("second", id: "7f00000000000002", second, commandSpacing: 0.2),
            ],
            extra: """
                homeassistant:
                  republish_delay: 0.2
                takeover:
                  enabled: true
                  instance_id: bridge-a
                """)
    }

    /// A rival already drives one of the two gateways when the bridge starts: it drives the
    /// other, and its status says it is in service (not "Starting: …" for good, waiting for a
    /// gateway it will never drive) and names the one it does not drive.
    @Test func aBridgeThatDrivesOnlySomeGatewaysFromTheStartIsReady() async throws {
        let harness = try await BridgeHarness()
        let second = try await harness.addGateway(name: "second", id: "7f00000000000002")
        let systemd = try FakeSystemd()
        defer { systemd.close() }
        let base = "tradfri/bridge/takeover"
        try await harness.publish(
            "\(base)/instance/bridge-x",
            #"{"instance":"bridge-x","session":"s","since":"2026-01-01T00:00:00Z","gateways":["7f00000000000002"]}"#,
            retain: true)
        try await harness.publish(
            "\(base)/gateway/7f00000000000002",
            #"{"state":"owned","owner":"bridge-x","token":"t","since":"2026-01-01T00:00:00Z"}"#, retain: true)
        let bridge = try harness.launchBridge(
            configuration: Self.twoGateways(harness, second), environment: systemd.environment())
        try await harness.run(killing: [bridge], gateways: [second]) {
            try await bridge.waitForLine(containing: "driving gateway gateway=first", within: .seconds(20))
            try await systemd.wait(within: .seconds(20), "ready, naming the gateway it does not drive") {
                $0.value("STATUS")?.hasPrefix(
                    "1 of 1 gateway connected (second not driven by this instance); 10 devices;") == true
            }
            #expect(!bridge.outputText.contains("driving gateway gateway=second"))
        }
    }

    /// The bridge cannot be built when the gateway is acquired (the broker's password file went
    /// away after the start): the instance says why and exits with an error (systemd restarts it),
    /// releasing the gateway on its way out, so another instance can drive it; it never sits on
    /// the gateway without driving it.
    @Test func anInstanceThatCannotBuildItsBridgeReleasesTheGatewayAndExits() async throws {
        let harness = try await BridgeHarness()
        let passwordFile = harness.directory.appendingPathComponent("broker-password").path
        try "secret\n".write(toFile: passwordFile, atomically: true, encoding: .utf8)
        let records = try await harness.subscribe(["tradfri/bridge/takeover/gateway/+"])
        let bridge = try harness.launchBridge(
            configuration: harness.testConfiguration(
                extraConfiguration: "takeover:\n  enabled: true\n  instance_id: bridge-a",
                mqttConfiguration: "  user: bridge\n  password_file: \(passwordFile)"))
        try await harness.run(killing: [bridge, records]) {
            // The claim's settle time (seconds) is the window: the file goes before it ends.
            try await bridge.waitForLine(containing: "claiming gateway", within: .seconds(20))
            try FileManager.default.removeItem(atPath: passwordFile)
            try await bridge.waitForLine(within: .seconds(20), "the reason") {
                $0.contains("cannot build the bridge") && $0.contains("mqtt.password_file")
            }
            let status = try await bridge.waitForExit(within: .seconds(5))
            #expect(status != 0, "systemd's Restart=on-failure needs a failure")
            try await records.waitForLine(within: .seconds(5), "the gateway released") {
                $0.contains(#""state":"released""#) && $0.contains(#""owner":"bridge-a""#)
            }
        }
    }

    /// A gateway given up while the bridge drives another: its record is replaced (here by the
    /// test, as a rival instance would), so the bridge stops driving it alone. From then on it
    /// publishes nothing for that gateway (a change made at the gateway does not reach MQTT,
    /// nothing comes under its topics) and sends it nothing, while the other gateway keeps working;
    /// once the rival is gone, it drives it again and MQTT equals the gateway.
    @Test func aGatewayGivenUpGetsNothingPublishedWhileTheOtherKeepsWorking() async throws {
        let harness = try await BridgeHarness()
        let second = try await harness.addGateway(name: "second", id: "7f00000000000002")
        let systemd = try FakeSystemd()
        defer { systemd.close() }
        var processes: [ChildProcess] = []
        do {
            let configuration = Self.twoGateways(harness, second)
            let watch = try await harness.subscribe([
                "tradfri/first/+", "tradfri/second/#", "homeassistant/+/+/+/config", "tradfri/bridge/response/#",
            ])
            processes.append(watch)
            let bridge = try harness.launchBridge(configuration: configuration, environment: systemd.environment())
            processes.append(bridge)
            try await bridge.waitForLine(containing: "driving gateway gateway=second", within: .seconds(20))
            try await message(on: "tradfri/second/hallway", from: watch, within: .seconds(10))
            // `systemctl status` counts what this instance drives.
            try await systemd.wait(within: .seconds(10), "status: both driven") {
                $0.value("STATUS")?.hasPrefix("2 of 2 gateways connected; 20 devices;") == true
            }
            let bridgeIdentities = { (entries: ArraySlice<JSON>) in
                Set(
                    entries.compactMap { $0["identity"]?.stringValue }.filter {
                        $0 != "Client_identity" && !$0.hasPrefix("ikea-app-")
                    })
            }

            // A rival's record replaces ours (its instance record says it is alive).
            let base = "tradfri/bridge/takeover"
            try await harness.publish(
                "\(base)/instance/bridge-x",
                #"{"instance":"bridge-x","session":"s","since":"2026-01-01T00:00:00Z","gateways":["7f00000000000002"]}"#,
                retain: true)
            let lines = bridge.lineCount
            try await harness.publish(
                "\(base)/gateway/7f00000000000002",
                #"{"state":"owned","owner":"bridge-x","token":"t","since":"2026-01-01T00:00:00Z"}"#, retain: true)
            try await bridge.waitForLine(within: .seconds(5), "losing the second gateway", after: lines) {
                $0.contains("lost gateway") && $0.contains("7f00000000000002")
            }
            try await systemd.wait(within: .seconds(5), "status: the second named as driven elsewhere") {
                $0.value("STATUS")?.hasPrefix(
                    "1 of 1 gateway connected (second not driven by this instance); 10 devices;") == true
            }
            let statusGivenUp = systemd.count
            let givenUp = watch.lineCount
            let logged = try second.requests().count
            // The app changes a light at the given-up gateway; the other gateway is commanded.
            _ = try await second.coap("put", "15001/65537", #"{"3311":[{"5850":1,"5851":33}]}"#)
            try await harness.publish("tradfri/first/hallway/set", #"{"state":"ON","brightness":44}"#)
            try await message(on: "tradfri/first/hallway", from: watch, after: givenUp) { $0["brightness"] == 44 }
            #expect(try await harness.device(65537).light?.brightness == 44)
            // Whatever the bridge published before now has arrived before this marker.
            try await harness.publish("tradfri/second/zz_marker", "{}")
            try await watch.waitForLine(within: .seconds(5), "the marker", after: givenUp) {
                $0.hasPrefix("tradfri/second/zz_marker ")
            }
            let published = watch.output.dropFirst(givenUp).filter {
                $0.hasPrefix("tradfri/second/") && !$0.hasPrefix("tradfri/second/zz_marker ")
            }
            #expect(published.isEmpty, "published for the given-up gateway: \(published)")
            #expect(bridgeIdentities(try second.requests().dropFirst(logged)).isEmpty)

            // Home Assistant comes online: the bridge announces again what it drives, and nothing
            // of the given-up gateway (what is retained for it is the rival's now, and stays so).
            // A config the rival publishes for that gateway is not taken for a stale one of ours.
            let secondConfigs = { (line: String) in
                line.hasPrefix("homeassistant/") && line.contains("tradfri_7f00000000000002_")
            }
            let rivalConfig = "homeassistant/light/tradfri_7f00000000000002_rival/light/config"
            let announced = watch.lineCount
            try await harness.publish(rivalConfig, #"{"name":"rival"}"#, retain: true)
            try await harness.publish("homeassistant/status", "online")
            try await watch.waitForLine(within: .seconds(10), "a config of the first announced", after: announced) {
                $0.hasPrefix("homeassistant/") && $0.contains("tradfri_7e11515204400072_")
            }
            // The whole announcement goes out at once; an answer the bridge sends after it, on the
            // same connection, comes after all of it.
            try await harness.publish("tradfri/bridge/request/health_check", "{}")
            try await message(
                on: "tradfri/bridge/response/health_check", from: watch, within: .seconds(10), after: announced)
            let announcedForSecond = watch.output.dropFirst(announced).filter {
                $0.hasPrefix("tradfri/second/") || (secondConfigs($0) && $0 != #"\#(rivalConfig) {"name":"rival"}"#)
            }
            #expect(announcedForSecond.isEmpty, "announced for the given-up gateway: \(announcedForSecond)")

            // The rival goes: the bridge drives the gateway again and reads what changed.
            let again = bridge.lineCount
            let beforeReturn = watch.lineCount
            try await harness.publish("\(base)/instance/bridge-x", "", retain: true)
            try await bridge.waitForLine(within: .seconds(15), "driving the second gateway again", after: again) {
                $0.contains("driving gateway gateway=second")
            }
            try await message(on: "tradfri/second/hallway", from: watch, within: .seconds(10), after: beforeReturn) {
                $0["brightness"] == 33
            }
            try await systemd.wait(within: .seconds(10), "status: both driven again", from: statusGivenUp) {
                $0.value("STATUS")?.hasPrefix("2 of 2 gateways connected; 20 devices;") == true
            }
            let before = watch.lineCount
            try await harness.publish("tradfri/second/hallway/set", #"{"state":"ON","brightness":77}"#)
            try await message(on: "tradfri/second/hallway", from: watch, after: before) { $0["brightness"] == 77 }
            #expect(try await second.device(65537).light?.brightness == 77)
        } catch {
            for process in processes { process.signal(SIGKILL) }
            await harness.shutdown([second])
            throw error
        }
        for process in processes { process.signal(SIGKILL) }
        await harness.shutdown([second])
    }
}
