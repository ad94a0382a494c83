import Foundation
import HubModel
import TestSupport
import Testing
import TradfriModel

/// Device pairing through the real parts: mosquitto with the dynamic-security plugin, the bridge
/// binary, curl (from several loopback source addresses), mosquitto_pub, the `pair` CLI, and a
/// script that behaves like EmonESP.
@Suite(.serialized, .timeLimit(.minutes(5)))
struct PairingTests {
    /// Splits EmonESP's `USER:PASSWORD:BASETOPIC[:PORT]`.
    func colonFields(_ body: String) -> (user: String, password: String, topic: String)? {
        let fields = body.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        guard fields.count == 3 || fields.count == 4 else { return nil }
        return (fields[0], fields[1], fields[2])
    }

    @Test func legacyCredentialsGoOnceToTheApprovedAddressAndNobodyElse() async throws {
        let pairing = try await PairingHarness()
        let events = try await pairing.bridge.subscribe(["tradfri/bridge/event"])

        // Outside a pairing window: nothing.
        let closed = try await pairing.legacy()
        #expect(closed.status == 403 && closed.body == "pairing is not open")
        #expect(try await pairing.pendingIDs().isEmpty)

        try await pairing.pair(["open", "--legacy", "--minutes", "2"])
        let asked = try await pairing.legacy(from: "127.0.0.1")
        #expect(asked.status == 200 && asked.body == "request registered", "exactly what EmonESP expects")
        try await message(on: "tradfri/bridge/event", from: events) { $0["type"] == "pairing_requested" }
        let id = try #require(try await pairing.pendingIDs().first)
        let allowed = try await pairing.pair(["allow", id])
        #expect(allowed.output.contains("Allowed \(id)"))
        try await message(on: "tradfri/bridge/event", from: events) { $0["type"] == "pairing_allowed" }

        // Another address gets nothing (it merely registers a request of its own).
        let intruder = try await pairing.legacy(from: "127.0.0.2")
        #expect(intruder.body == "request registered")
        // The approved address gets its credentials, on either path EmonESP and emoncms use.
        let fetched = try await pairing.legacy(from: "127.0.0.1", path: "/device/auth/request.json")
        #expect(fetched.status == 200)
        let credentials = try #require(colonFields(fetched.body), "USER:PASSWORD:BASETOPIC, got \(fetched.body)")
        #expect(credentials.topic.hasPrefix("devices/emonesp-"))
        #expect(!credentials.password.isEmpty && !credentials.user.contains(":"))
        // Only once.
        #expect(try await pairing.legacy(from: "127.0.0.1").body == "request registered")

        // The credentials are the device's own: its prefix works, nothing else does.
        #expect(
            try await pairing.devicePublish(
                user: credentials.user, password: credentials.password,
                topic: credentials.topic + "/power"))
        #expect(
            try await !pairing.devicePublish(
                user: credentials.user, password: credentials.password,
                topic: "tradfri/hallway/set"))
        #expect(
            try await !pairing.devicePublish(
                user: credentials.user, password: credentials.password,
                topic: "devices/someone-else/power"))
        // They are not the bridge's account.
        #expect(credentials.user != "tradfri-bridge" && credentials.user != "tradfri-pairing")

        // Revoke cuts the device off at once.
        let device = credentials.user.replacingOccurrences(of: "dev-", with: "")
        try await pairing.pair(["revoke", device])
        try await message(on: "tradfri/bridge/event", from: events) { $0["type"] == "pairing_revoked" }
        #expect(
            try await !pairing.devicePublish(
                user: credentials.user, password: credentials.password,
                topic: credentials.topic + "/power"))
        let devices = try await pairing.pair(["devices"])
        #expect(devices.output.contains("revoked"))

        // The audit log saw everything, without the password.
        for event in ["window_open", "\"request\"", "\"allow\"", "\"issue\"", "\"fetch\"", "\"revoke\""] {
            #expect(pairing.audit.contains(event), "audit has \(event)")
        }
        #expect(!pairing.audit.contains(credentials.password))
        #expect(!events.outputText.contains(credentials.password))
        let bridgeLog = pairing.bridge.bridge?.outputText ?? ""
        #expect(!bridgeLog.contains(credentials.password))
        await pairing.shutdown()
    }

    @Test func anUncollectedGrantExpiresAndItsAccountIsRemoved() async throws {
        let pairing = try await PairingHarness(grantSeconds: 2)
        let events = try await pairing.bridge.subscribe(["tradfri/bridge/event"])
        try await pairing.pair(["open", "--legacy"])
        _ = try await pairing.legacy()
        let id = try #require(try await pairing.pendingIDs().first)
        let allowed = try await pairing.pair(["allow", id]).output
        let device = try #require(allowed.split(separator: " ").first { $0.hasPrefix("emonesp-") }).description
        try await message(on: "tradfri/bridge/event", from: events, within: .seconds(10)) {
            $0["type"] == "pairing_expired" && $0["data"]?["device"]?.stringValue == device
        }
        let late = try await pairing.legacy()
        #expect(late.body == "request registered", "after the grant time there is nothing to collect: \(late)")
        let client = try await runCommand(
            "mosquitto_ctrl",
            ["-p", "\(pairing.bridge.broker.port)"] + PairingHarness.admin
                + ["dynsec", "getClient", "dev-\(device)"], check: false)
        #expect(client.output.contains("not found"), "the unused account is gone: \(client.output)")
        await pairing.shutdown()
    }

    @Test func aDeniedDeviceGetsNothing() async throws {
        let pairing = try await PairingHarness()
        let events = try await pairing.bridge.subscribe(["tradfri/bridge/event"])
        try await pairing.pair(["open", "--legacy"])
        _ = try await pairing.legacy()
        let id = try #require(try await pairing.pendingIDs().first)
        try await pairing.pair(["deny", id])
        try await message(on: "tradfri/bridge/event", from: events) { $0["type"] == "pairing_denied" }
        let answer = try await pairing.legacy()
        #expect(answer.status == 403 && answer.body == "request denied", "\(answer)")
        #expect(try await pairing.pendingIDs().isEmpty)
        await pairing.shutdown()
    }

    /// Out of the box MQTT may read the pairing state but not let anyone in: whoever can publish
    /// to bridge/request could otherwise approve their own device.
    @Test func overMQTTPairingIsReadOnlyUnlessTheUserTurnsDecisionsOn() async throws {
        let pairing = try await PairingHarness()
        let account = pairing.bridge.clientArguments
        let mqtt = try await Requester(pairing.bridge, version: "mqttv311", credentials: account, listenAs: account)
        let status = try await mqtt.send("pairing/status", nil)
        #expect(status.status == "ok" && status.data["window"] == .null, "\(status.payload)")
        #expect(status.data["fingerprint"]?.stringValue?.hasPrefix("SHA256:") == true)
        let open = try await mqtt.send("pairing/open", #"{"minutes":2}"#)
        #expect(open.status == "error" && open.error.contains("pairing.approve_over_mqtt"), "\(open.payload)")
        #expect(try await mqtt.send("pairing/status", nil).data["window"] == .null, "the window stayed closed")
        let tooEarly = try await pairing.secure(
            "/pairing/v1/request", ["name": "Intruder", "secret": "s3cr3t-s3cr3t-s3cr3t"])
        #expect(tooEarly.status == 403)
        await pairing.shutdown()
    }

    /// With decisions over MQTT on (and the ACL locked down), an automation pairs a device the way
    /// the prompt does; no answer carries a password.
    @Test func withDecisionsOverMQTTAnAutomationPairsAndRevokesADevice() async throws {
        let pairing = try await PairingHarness(approveOverMQTT: true)
        let account = pairing.bridge.clientArguments
        let mqtt = try await Requester(pairing.bridge, version: "mqttv311", credentials: account, listenAs: account)
        #expect(
            try await mqtt.send("pairing/open", #"{"minutes":20}"#).error == "a pairing window lasts 1 to 15 minutes")
        let opened = try await mqtt.send("pairing/open", #"{"minutes":2,"transaction":7}"#)
        #expect(opened.status == "ok" && opened.data["window"]?["seconds_left"] != nil, "\(opened.payload)")
        #expect(opened.payload["transaction"] == 7)

        let secret = "Qm8vT2xR5nK9pL3wZ7cY1dF4hJ6gS0aB"
        let requested = try await pairing.secure(
            "/pairing/v1/request", ["name": "Heat pump", "secret": .string(secret)])
        let id = try #require(requested.json["id"]?.stringValue)
        let list = try await mqtt.send("pairing/list", nil)
        #expect(
            list.data.arrayValue?.first?["verification_code"] == requested.json["verification_code"], "\(list.payload)")
        #expect(list.data.arrayValue?.first?["name"] == "Heat pump")
        #expect(try await mqtt.send("pairing/allow", #"{"id":"NOPE"}"#).error == "no pending request NOPE")
        #expect(try await mqtt.send("pairing/allow", #"{"device":"x"}"#).error.contains("unknown member 'device'"))

        let allowed = try await mqtt.send("pairing/allow", id)  // the bare id, as typed at a shell
        let device = try #require(allowed.data["device"]?.stringValue, "\(allowed.payload)")
        #expect(allowed.data["password"] == nil)
        let released = try await pairing.secure(
            "/pairing/v1/credentials", ["id": .string(id), "secret": .string(secret)])
        let user = try #require(released.json["username"]?.stringValue)
        let password = try #require(released.json["password"]?.stringValue)
        let prefix = try #require(released.json["topic_prefix"]?.stringValue)
        #expect(try await pairing.devicePublish(user: user, password: password, topic: prefix + "/power"))

        let devices = try await mqtt.send("pairing/devices", nil)
        #expect(
            devices.data.arrayValue?.contains { $0["id"]?.stringValue == device && $0["username"]?.stringValue == user }
                == true,
            "\(devices.payload)")
        let revoked = try await mqtt.send("pairing/revoke", #"{"device":"\#(device)"}"#)
        #expect(revoked.data["state"] == "revoked", "\(revoked.payload)")
        #expect(try await !pairing.devicePublish(user: user, password: password, topic: prefix + "/power"))
        #expect(!mqtt.answers.outputText.contains(password) && !mqtt.answers.outputText.contains(secret))
        await pairing.shutdown()
    }

    @Test func secureModeReleasesCredentialsOnlyToTheSecretHolderOnce() async throws {
        let pairing = try await PairingHarness()
        let secret = "k2Lw9vP0qZ4tX7bN1cR8mH3jF6dS5aYe"
        let tooEarly = try await pairing.secure(
            "/pairing/v1/request", ["name": "Heat pump", "secret": .string(secret)])
        #expect(tooEarly.status == 403, "no requests outside a window")
        try await pairing.pair(["open"])
        let requested = try await pairing.secure(
            "/pairing/v1/request", ["name": "Heat pump", "secret": .string(secret)])
        #expect(requested.status == 202, "\(requested)")
        let id = try #require(requested.json["id"]?.stringValue)
        let code = try #require(requested.json["verification_code"]?.stringValue)
        #expect(requested.json["fingerprint"]?.stringValue?.hasPrefix("SHA256:") == true)
        // The prompt shows the same verification code.
        let list = try await pairing.pair(["list"]).output
        #expect(list.contains("Heat pump") && list.contains(code))
        let early = try await pairing.secure("/pairing/v1/credentials", ["id": .string(id), "secret": .string(secret)])
        #expect(early.status == 202, "\(early)")
        try await pairing.pair(["allow", id])
        let wrong = try await pairing.secure(
            "/pairing/v1/credentials", ["id": .string(id), "secret": .string(secret + "x")])
        #expect(wrong.status == 403 && wrong.json["password"] == nil)
        let released = try await pairing.secure(
            "/pairing/v1/credentials", ["id": .string(id), "secret": .string(secret)],
            from: "127.0.0.3")
        #expect(released.status == 200)
        let user = try #require(released.json["username"]?.stringValue)
        let password = try #require(released.json["password"]?.stringValue)
        let prefix = try #require(released.json["topic_prefix"]?.stringValue)
        #expect(released.json["broker"]?["port"] == .int(Int(pairing.bridge.broker.port)))
        #expect(released.json["broker"]?["host"] == "127.0.0.1")
        #expect(released.json.objectValue?.keys.contains("ca_fingerprint") == true)
        #expect(
            try await pairing.secure("/pairing/v1/credentials", ["id": .string(id), "secret": .string(secret)]).status
                == 404,
            "only once")
        #expect(try await pairing.devicePublish(user: user, password: password, topic: prefix + "/temperature"))
        #expect(
            try await !pairing.devicePublish(
                user: user, password: password, topic: "tradfri/bridge/request/gateway/reboot"))
        // Neither the device's secret nor its password is written anywhere.
        let bridgeLog = pairing.bridge.bridge?.outputText ?? ""
        for secretText in [secret, password] {
            #expect(!pairing.audit.contains(secretText) && !bridgeLog.contains(secretText))
        }
        #expect(pairing.audit.contains("fetch_refused"), "the wrong secret was audited")
        await pairing.shutdown()
    }

    @Test func thePromptShowsTheRequestAndAllowGivesTheEmonESPItsOwnCredentials() async throws {
        let pairing = try await PairingHarness()
        // The prompt on a pseudo-terminal (script), answered like a person would.
        let prompt = try ChildProcess(
            "script",
            [
                "-qfec", "\(BuildProducts.path(of: "tradfri-bridge")!) pair --config \(pairing.bridge.configFile)",
                "/dev/null",
            ], interactive: true)
        try await prompt.waitForOutput(containing: "Open a pairing window for 5 minutes? [Y/n]")
        prompt.send("y")
        try await prompt.waitForOutput(containing: "Also accept EmonESP's legacy (unencrypted) requests? [y/N]")
        prompt.send("y")
        try await prompt.waitForOutput(containing: "EmonESP legacy requests accepted too")

        // An EmonESP polls every 10 s, exactly as the firmware does.
        let emonesp = try ChildProcess(
            PairingHarness.script("fake-emonesp.sh"), ["127.0.0.1", "\(pairing.legacyPort)"])
        try await prompt.waitForOutput(containing: "name:  EmonESP at 127.0.0.1", within: .seconds(20))
        try await prompt.waitForOutput(containing: "mode:  legacy EmonESP")
        prompt.send("a")
        try await emonesp.waitForLine(containing: "published to devices/emonesp-", within: .seconds(30))
        try await prompt.waitForOutput(containing: "collected its credentials", within: .seconds(10))
        try await prompt.waitForOutput(containing: "connected to the broker", within: .seconds(10))
        prompt.send("q")
        _ = try? await prompt.waitForExit(within: .seconds(5))
        await pairing.shutdown()
    }

    @Test func aFloodLeavesTheDaemonResponsiveAndThePendingListCapped() async throws {
        let pairing = try await PairingHarness(maxPending: 16)
        try await pairing.pair(["open", "--legacy"])
        let flood = try await runCommand(
            "python3",
            [
                PairingHarness.script("flood.py"),
                "http://127.0.0.1:\(pairing.legacyPort)/emoncms/device/auth/request.json",
                "3000", "30", "200",
            ], within: .seconds(120))
        #expect(flood.output.contains("429="), "rate limits answered the flood: \(flood.output)")
        // Odd query strings are just requests.
        for query in ["?=", "?&=&", "?a=1&=x", "?"] {
            _ = try await runCommand(
                "curl",
                ["-s", "-o", "/dev/null", "http://127.0.0.1:\(pairing.legacyPort)/device/auth/request.json\(query)"],
                check: false)
        }
        let pending = try await pairing.pendingIDs()
        #expect(pending.count == 16, "capped: \(pending.count)")
        // Still serving: the control channel and the lights.
        #expect(try await pairing.pair(["status"]).output.contains("Pending requests: 16"))
        let watcher = try await pairing.bridge.subscribe(["tradfri/hallway"])
        try await pairing.bridge.publish("tradfri/hallway/set", "ON")
        try await message(on: "tradfri/hallway", from: watcher) { $0["state"] == "ON" }
        // The audit log notes rate limiting without growing with every rejected request.
        let limitedLines = pairing.audit.split(separator: "\n").filter { $0.contains("rate_limited") }.count
        #expect(limitedLines > 0 && limitedLines < 500)
        await pairing.shutdown()
    }

    @Test func theRegistryRebuildsAnAccountTheBrokerLost() async throws {
        let pairing = try await PairingHarness()
        try await pairing.pair(["open", "--legacy"])
        _ = try await pairing.legacy()
        try await pairing.pair(["allow", try #require(try await pairing.pendingIDs().first)])
        let credentials = try #require(colonFields(try await pairing.legacy().body))
        // The broker loses the account (e.g. its dynamic-security file was restored from an old backup).
        try await runCommand(
            "mosquitto_ctrl",
            ["-p", "\(pairing.bridge.broker.port)"] + PairingHarness.admin
                + ["dynsec", "deleteClient", credentials.user])
        #expect(
            try await !pairing.devicePublish(
                user: credentials.user, password: credentials.password,
                topic: credentials.topic + "/power"))
        // On its next start the bridge recreates it from its own records (before it says it is ready).
        _ = await pairing.bridge.stopBridge()
        try await pairing.bridge.startBridge(
            extraConfiguration: try String(contentsOfFile: pairing.bridge.configFile, encoding: .utf8)
                .components(separatedBy: "pairing:").last.map { "pairing:" + $0 } ?? "",
            mqttConfiguration: """
                  user: tradfri-bridge
                  password_file: \(pairing.directory.appendingPathComponent("bridge-password").path)
                """)
        try await pairing.bridge.bridge?.waitForLine(containing: "pairing ready")
        let log = pairing.bridge.bridge?.outputText ?? ""
        #expect(log.contains("restored a device's broker account from the registry"), "\(log)")
        #expect(
            try await pairing.devicePublish(
                user: credentials.user, password: credentials.password,
                topic: credentials.topic + "/power"))
        await pairing.shutdown()
    }

    @Test func onlyTheAdministratorReachesTheControlSocket() async throws {
        let pairing = try await PairingHarness()
        let attributes = try FileManager.default.attributesOfItem(atPath: pairing.controlSocket)
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
        let stranger = try await runCommand(
            "runuser",
            [
                "-u", "nobody", "--", BuildProducts.path(of: "tradfri-bridge")!,
                "pair", "status", "--socket", pairing.controlSocket,
            ], check: false)
        #expect(stranger.status != 0)
        #expect(stranger.output.contains("permission denied"), "\(stranger.output)")
        #expect(try await pairing.pair(["status"]).output.contains("The pairing window is closed"))
        await pairing.shutdown()
    }
}
