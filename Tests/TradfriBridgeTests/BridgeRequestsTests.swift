import Foundation
import HubModel
import TestSupport
import Testing
import TradfriBridge
import TradfriModel

/// Someone using the request API from the command line: `mosquitto_pub` sends, `mosquitto_sub`
/// (printing topic, MQTT 5 correlation data and payload) reads the answers.
struct Requester {
    let harness: BridgeHarness
    /// `mqttv311` or `mqttv5` (mosquitto_pub/sub `-V`).
    let version: String
    let answers: ChildProcess
    /// Extra mosquitto_pub arguments (a user name and password).
    var credentials: [String] = []
    var replyTopic: String { "replies/\(version)" }

    struct Answer {
        var topic: String
        var correlation: String
        var payload: JSON
        var status: JSON? { payload["status"] }
        var data: JSON { payload["data"] ?? .null }
        var error: String { payload["error"]?.stringValue ?? "" }
    }

    /// - Parameter listenAs: user name and password for reading the answers (anonymous if empty).
    init(_ harness: BridgeHarness, version: String, credentials: [String] = [], listenAs: [String] = []) async throws {
        self.harness = harness
        self.version = version
        self.credentials = credentials
        answers = try await harness.broker.subscriber(
            listenAs + [
                "-V", version, "-F", "%t|%D|%p", "-t", "tradfri/bridge/response/#", "-t", "replies/#",
            ])
    }

    /// Sends `payload` (nil: an empty message) to `bridge/request/<verb>` and returns the answer
    /// on `bridge/response/<verb>`. With MQTT 5 the request also carries a response topic and
    /// correlation data, and the same answer must arrive there with them.
    @discardableResult
    func send(
        _ verb: String, _ payload: String?, retain: Bool = false, responseTopic: String? = nil
    ) async throws -> Answer {
        let before = answers.lineCount
        let correlation = "c-\(UUID().uuidString.prefix(8))"
        // -d: if mosquitto_pub ever stalls, its output says at which step.
        var arguments =
            credentials + ["-d", "-V", version, "-t", "tradfri/bridge/request/\(verb)"]
            + (payload.map { ["-m", $0] } ?? ["-n"])
        if retain { arguments.append("-r") }
        let fiveWithReply = version == "mqttv5" && !retain
        if fiveWithReply {
            arguments += [
                "-D", "publish", "response-topic", responseTopic ?? replyTopic,
                "-D", "publish", "correlation-data", correlation,
            ]
        }
        try await harness.broker.publish(arguments)
        let answer = try await next(on: "tradfri/bridge/response/\(verb)", after: before)
        if fiveWithReply, responseTopic == nil {
            let reply = try await next(on: replyTopic, after: before)
            #expect(reply.correlation == correlation, "the correlation data comes back on the response topic")
            #expect(answer.correlation == correlation)
            #expect(reply.payload == answer.payload, "the same answer on both topics")
        }
        return answer
    }

    func next(on topic: String, after: Int) async throws -> Answer {
        let line = try await answers.waitForLine(within: .seconds(20), "an answer on \(topic)", after: after) {
            $0.hasPrefix(topic + "|")
        }
        let parts = line.split(separator: "|", maxSplits: 2, omittingEmptySubsequences: false)
        return Answer(
            topic: String(parts[0]), correlation: String(parts[1]), payload: try JSON(parsing: String(parts[2])))
    }
}

/// The request/response API through the real parts: the bridge binary, the simulator, mosquitto,
/// and mosquitto_pub/mosquitto_sub speaking MQTT 3.1.1 and MQTT 5.
@Suite(.serialized) struct BridgeRequestsTests {
    @Test(arguments: ["mqttv311", "mqttv5"])
    func everyVerbAnswersWithAndWithoutATransaction(version: String) async throws {
        let harness = try await BridgeHarness()
        try await harness.startBridge()
        let api = try await Requester(harness, version: version)
        let watcher = try await harness.subscribe(["tradfri/#"])

        // health_check, without and with a transaction (any JSON value is echoed).
        var answer = try await api.send("health_check", nil)
        #expect(answer.status == "ok" && answer.payload["transaction"] == nil && answer.payload["error"] == nil)
        #expect(answer.data["healthy"] == true && answer.data["gateway"]?["connected"] == true)
        #expect(answer.data["broker"]?["connected"] == true)
        #expect(answer.data["devices"] == 10 && answer.data["groups"] == 3 && answer.data["scenes"] == 4)
        #expect((answer.data["uptime"]?.intValue ?? -1) >= 0 && answer.data["gateway"]?["last_contact"] != nil)
        #expect(try await api.send("health_check", #"{"transaction":42}"#).payload["transaction"] == 42)
        #expect(try await api.send("health_check", #"{"transaction":"a-b"}"#).payload["transaction"] == "a-b")

        // options: read.
        answer = try await api.send("options", "{}")
        #expect(answer.data["options"]?["logging"]?["level"] == "info" && answer.data["restart_required"] == false)
        answer = try await api.send("options", #"{"options":{"homeassistant":{"republish_delay":3}},"transaction":1}"#)
        #expect(answer.payload["transaction"] == 1 && answer.data["changed"] == ["homeassistant.republish_delay"])
        #expect(answer.data["options"]?["homeassistant"]?["republish_delay"] == 3.0)

        // resync: a change the gateway never notified shows up.
        try await harness.control(#"change-silently 65543 {"3312":[{"5850":1}]}"#)
        answer = try await api.send("resync", #"{"transaction":"sync"}"#)
        #expect(answer.status == "ok" && answer.payload["transaction"] == "sync" && answer.data["devices"] == 10)
        try await message(on: "tradfri/coffee_maker", from: watcher) { $0["state"] == "ON" }
        #expect(try await api.send("resync", nil).status == "ok")

        // device/rename, by friendly name: written to the gateway, followed by the bridge.
        answer = try await api.send("device/rename", #"{"from":"coffee_maker","to":"Kettle","transaction":7}"#)
        #expect(answer.status == "ok" && answer.payload["transaction"] == 7, "\(answer.payload)")
        #expect(
            answer.data["friendly_name"] == "kettle" && answer.data["from"] == "Coffee maker"
                && answer.data["id"] == 65543)
        #expect(try await harness.device(65543).name == "Kettle", "the IKEA app sees the new name")
        try await message(on: "tradfri/kettle", from: watcher) { $0["state"] == "ON" }
        // … by id, and by the name in the app.
        #expect(
            try await api.send("device/rename", #"{"from":65537,"to":"Hall light"}"#).data["friendly_name"]
                == "hall_light")
        #expect(
            try await api.send("device/rename", #"{"from":"Hall light","to":"Hallway"}"#).data["friendly_name"]
                == "hallway")

        // group/rename.
        answer = try await api.send("group/rename", #"{"from":"bedroom","to":"Sleeping room"}"#)
        #expect(
            answer.status == "ok" && answer.data["friendly_name"] == "sleeping_room"
                && answer.payload["transaction"] == nil)
        try await message(on: "tradfri/sleeping_room", from: watcher)
        #expect(try await harness.coap("get", "15004/131075").contains("Sleeping room"))

        // gateway/reboot: answered, then the gateway goes away and comes back.
        let events = watcher.lineCount
        answer = try await api.send("gateway/reboot", #"{"transaction":"boot"}"#)
        #expect(answer.status == "ok" && answer.payload["transaction"] == "boot")
        try await message(on: "tradfri/bridge/event", from: watcher, after: events) { $0["type"] == "gateway_offline" }
        try await message(on: "tradfri/bridge/event", from: watcher, within: .seconds(20), after: events) {
            $0["type"] == "gateway_online"
        }
        #expect(try await api.send("health_check", nil).data["gateway"]?["connected"] == true)
        await harness.shutdown()
    }

    @Test func badRequestsGetAClearErrorAndChangeNothing() async throws {
        let harness = try await BridgeHarness()
        try await harness.startBridge()
        let api = try await Requester(harness, version: "mqttv311")
        let cases: [(verb: String, payload: String?, error: String)] = [
            (
                "permit_join", #"{"time":60}"#,
                "unknown request 'permit_join' (known: device/rename, gateway/reboot, group/rename, health_check, options, resync)"
            ),
            ("device/rename", #"{"from":"hallway","#, "malformed JSON"),
            ("device/rename", #"{"to":"Lamp"}"#, "missing 'from'"),
            ("device/rename", #"{"from":"hallway"}"#, "missing 'to'"),
            ("device/rename", #"{"from":"hallway","to":"  "}"#, "'to' must not be empty"),
            ("device/rename", #"{"from":"hallway","to":"Lamp","force":true}"#, "unknown member 'force'"),
            ("device/rename", #"{"from":"nothing","to":"Lamp"}"#, "no device or group named 'nothing'"),
            ("device/rename", #"{"from":"living_room","to":"Lamp"}"#, "is a group: use bridge/request/group/rename"),
            ("group/rename", #"{"from":"hallway","to":"Lamp"}"#, "is a device: use bridge/request/device/rename"),
            ("health_check", #"{"verbose":true}"#, "unknown member 'verbose' (this request takes none)"),
            ("health_check", "[1,2]", "expected a JSON object"),
            ("options", #"{"options":{"logging":{"level":"loud"}}}"#, "logging.level must be one of trace, debug"),
            (
                "options", #"{"options":{"gateway":{"command_spacing":60}}}"#,
                "gateway.command_spacing must be a number of seconds from 0.0 to 10.0"
            ),
            (
                "options", #"{"options":{"mqtt":{"password":"x"}}}"#,
                "'mqtt.password' cannot be changed while the bridge runs"
            ),
            (
                "options", #"{"options":{"logging":{"level":"debug"},"gateway":{"keepalive":5}}}"#,
                "'gateway.keepalive' cannot be changed"
            ),
        ]
        for item in cases {
            let answer = try await api.send(item.verb, item.payload)
            #expect(
                answer.status == "error" && answer.data == [:], "\(item.verb) \(item.payload ?? ""): \(answer.payload)")
            #expect(answer.error.contains(item.error), "\(item.verb) \(item.payload ?? ""): \(answer.error)")
        }
        // An error still echoes the transaction.
        #expect(try await api.send("nothing", #"{"transaction":9}"#).payload["transaction"] == 9)
        // The refused option changes changed nothing, not even the valid part.
        let options = try await api.send("options", nil).data["options"]
        #expect(options?["logging"]?["level"] == "info" && options?["gateway"]?["command_spacing"] == 0.5)
        #expect(try await harness.device(65537).name == "Hallway")

        // A retained request is refused and removed, so it cannot replay at every restart.
        let answer = try await api.send("gateway/reboot", "{}", retain: true)
        #expect(answer.error.contains("requests must not be retained"))
        let left = try await runCommand(
            "mosquitto_sub",
            harness.broker.clientArguments + [
                "-t", "tradfri/bridge/request/#", "-v", "-W", "1",
            ], check: false
        ).output
        #expect(!left.contains("gateway/reboot"), "\(left)")
        #expect(
            try await api.send("health_check", nil).data["gateway"]?["connected"] == true, "the gateway did not reboot")
        await harness.shutdown()
    }

    @Test func anMQTT5ResponseTopicCannotPointIntoTheBridgesTopics() async throws {
        let harness = try await BridgeHarness()
        try await harness.startBridge()
        let api = try await Requester(harness, version: "mqttv5")
        let watcher = try await harness.subscribe(["tradfri/hallway/set", "homeassistant/#"])
        for topic in ["tradfri/hallway/set", "homeassistant/light/x/light/config"] {
            let answer = try await api.send("health_check", nil, responseTopic: topic)
            #expect(
                answer.status == "error" && answer.error.contains("the response topic must not"), "\(answer.payload)")
        }
        // Not even an error about something else goes there.
        let malformed = try await api.send("health_check", "{bad", responseTopic: "tradfri/hallway/set")
        #expect(malformed.error.contains("malformed JSON"))
        #expect(
            !watcher.output.contains { $0.hasPrefix("tradfri/hallway/set ") || $0.hasPrefix("homeassistant/light/x/") })
        // Other topics, and the bridge's own response topics, are fine.
        #expect(try await api.send("health_check", nil, responseTopic: "tradfri/bridge/response/mine").status == "ok")
        await harness.shutdown()
    }

    @Test func optionsChangeTheRunningBridge() async throws {
        let harness = try await BridgeHarness()
        try await harness.startBridge()
        let api = try await Requester(harness, version: "mqttv5")
        let watcher = try await harness.subscribe(["tradfri/bridge/info", "tradfri/hallway"])
        let bridge = try #require(harness.bridge)
        #expect(!bridge.outputText.contains(" debug "))

        let answer = try await api.send(
            "options", #"{"options":{"logging":{"level":"debug"},"gateway":{"command_spacing":2}}}"#)
        #expect(answer.status == "ok" && answer.data["changed"] == ["gateway.command_spacing", "logging.level"])
        #expect(
            answer.data["options"]?["gateway"]?["command_spacing"] == 2.0 && answer.data["restart_required"] == false)
        let info = try await message(on: "tradfri/bridge/info", from: watcher) { $0["log_level"] == "debug" }
        #expect(info["config"]?["command_spacing"] == 2.0)

        // Debug lines appear now; two commands to one lamp are now 2 s apart at the gateway.
        try await harness.publish("tradfri/hallway/set", #"{"state":"ON","brightness":10}"#)
        try await message(on: "tradfri/hallway", from: watcher) { $0["brightness"] == 10 }
        try await harness.publish("tradfri/hallway/set", #"{"brightness":20}"#)
        try await message(on: "tradfri/hallway", from: watcher, within: .seconds(5)) { $0["brightness"] == 20 }
        try await bridge.waitForLine(within: .seconds(5), "a debug line") {
            $0.contains(" debug commands: command sent")
        }
        let times = try harness.requests().filter { $0["method"] == "PUT" && $0["path"] == "15001/65537" }
            .compactMap { $0["time"]?.doubleValue }
        #expect(times.count == 2 && times[1] - times[0] >= 1.9, "\(times)")
        await harness.shutdown()
    }

    @Test func withTheGatewayGoneHealthSaysSoAndGatewayRequestsFail() async throws {
        let harness = try await BridgeHarness()
        try await harness.startBridge()
        let api = try await Requester(harness, version: "mqttv311")
        let events = try await harness.subscribe(["tradfri/bridge/event"])
        // Power cut: the gateway vanishes without a word.
        harness.simulator.signal(SIGKILL)
        try await message(on: "tradfri/bridge/event", from: events, within: .seconds(15)) {
            $0["type"] == "gateway_offline"
        }
        let health = try await api.send("health_check", nil)
        #expect(
            health.status == "ok" && health.data["healthy"] == false && health.data["gateway"]?["connected"] == false)
        #expect(health.data["broker"]?["connected"] == true && health.data["devices"] == 10, "the last known inventory")
        for (verb, payload) in [
            ("resync", "{}"), ("gateway/reboot", "{}"), ("device/rename", #"{"from":"hallway","to":"X"}"#),
        ] {
            let answer = try await api.send(verb, payload)
            #expect(answer.status == "error" && answer.error == "the gateway is offline", "\(verb): \(answer.payload)")
        }
        await harness.shutdown()
    }

    /// A bridge connected with MQTT 3.1.1 cannot see response topics: MQTT 5 requesters still get
    /// their answer on `bridge/response/<verb>`, matched by `transaction`.
    @Test func aBridgeOnMQTT311AnswersOnTheResponseTopicsWithTheTransaction() async throws {
        let harness = try await BridgeHarness()
        try await harness.startBridge(mqttConfiguration: "  version: 4")
        let api = try await Requester(harness, version: "mqttv311")
        let answer = try await api.send("health_check", #"{"transaction":"old-broker"}"#)
        #expect(
            answer.status == "ok" && answer.payload["transaction"] == "old-broker" && answer.data["healthy"] == true)
        let renamed = try await api.send("device/rename", #"{"from":"repeater","to":"Stairs repeater"}"#)
        #expect(renamed.data["friendly_name"] == "stairs_repeater")
        await harness.shutdown()
    }

    /// The ACL in README.md ("Securing the broker"), used as is: the bridge, Home Assistant and
    /// an administrator can each do their part, and nobody more.
    @Test func theDocumentedACLIsEnoughAndNoMore() async throws {
        let readme = try String(
            contentsOf: URL(fileURLWithPath: #filePath).deletingLastPathComponent()
                .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("README.md"),
            encoding: .utf8)
        let start = try #require(readme.range(of: "# /etc/mosquitto/acl"))
        let end = try #require(readme.range(of: "```", range: start.upperBound..<readme.endIndex))
        let documented = String(readme[start.lowerBound..<end.lowerBound])
        #expect(documented.contains("user tradfri-bridge") && documented.contains("user homeassistant"))
        // Anonymous clients (this test's observers) may only read.
        let broker = MosquittoBroker.Options(
            users: ["tradfri-bridge": "bridge-pw", "homeassistant": "ha-pw", "admin": "admin-pw"],
            acl: "topic read #\n\n" + documented)
        let harness = try await BridgeHarness(brokerOptions: broker)
        try await harness.startBridge(mqttConfiguration: "  user: tradfri-bridge\n  password: bridge-pw")
        let watcher = try await harness.subscribe(["tradfri/#", "homeassistant/#"])
        try await message(on: "homeassistant/light/tradfri_7e11515204400072_65537/light/config", from: watcher)

        // Home Assistant switches a light…
        let homeAssistant = ["-u", "homeassistant", "-P", "ha-pw"]
        try await harness.broker.publish(
            homeAssistant + ["-t", "tradfri/hallway/set", "-m", #"{"state":"ON","brightness":127}"#])
        try await message(on: "tradfri/hallway", from: watcher) { $0["brightness"] == 127 }
        // … but an anonymous client cannot (its command is dropped by the broker, before Home
        // Assistant's next one).
        try await harness.publish("tradfri/coffee_maker/set", "ON")
        try await harness.broker.publish(homeAssistant + ["-t", "tradfri/hallway/set", "-m", #"{"state":"OFF"}"#])
        try await message(on: "tradfri/hallway", from: watcher) { $0["state"] == "OFF" }
        #expect(try await harness.device(65543).plug?.on == false)

        // Home Assistant may not rename; an administrator may, with MQTT 5 replies.
        let ha = try await Requester(harness, version: "mqttv311", credentials: homeAssistant)
        let admin = try await Requester(harness, version: "mqttv5", credentials: ["-u", "admin", "-P", "admin-pw"])
        let before = ha.answers.lineCount
        try await harness.broker.publish(
            homeAssistant + [
                "-t", "tradfri/bridge/request/device/rename",
                "-m", #"{"from":"hallway","to":"Mine"}"#,
            ])
        #expect(try await admin.send("health_check", nil).status == "ok")
        #expect(!ha.answers.output[before...].contains { $0.hasPrefix("tradfri/bridge/response/device/rename") })
        #expect(try await harness.device(65537).name == "Hallway")
        #expect(try await admin.send("device/rename", #"{"from":"hallway","to":"Hall light"}"#).status == "ok")
        // Home Assistant's reboot button works.
        #expect(try await ha.send("gateway/reboot", "{}").status == "ok")
        await harness.shutdown()
    }

    // MARK: Parsing, without a broker

    @Test func requestPayloads() throws {
        #expect(try BridgeRequest.parse(verb: "v", payload: []).payload == [:])
        // A bare id stays as typed, even one that reads as a number.
        #expect(try BridgeRequest.parse(verb: "v", payload: Array("2E45".utf8)).bareText == "2E45")
        #expect(try BridgeRequest.parse(verb: "v", payload: Array(#""A3K9""#.utf8)).bareText == "A3K9")
        #expect(try BridgeRequest.parse(verb: "v", payload: Array(#"{"id":"A3K9"}"#.utf8)).bareText == nil)
        #expect(try BridgeRequest.parse(verb: "v", payload: Array("  \n".utf8)).payload == [:])
        let request = try BridgeRequest.parse(verb: "v", payload: Array(#"{"a":1,"transaction":[1,"x"]}"#.utf8))
        #expect(request.payload == ["a": 1] && request.transaction == [1, "x"])
        #expect(try BridgeRequest.parse(verb: "v", payload: Array("kitchen".utf8)).payload == "kitchen")
        #expect(try BridgeRequest.parse(verb: "v", payload: Array("42".utf8)).payload == 42)
        #expect(throws: BridgeRequestError.self) { try BridgeRequest.parse(verb: "v", payload: Array("{nope".utf8)) }
        #expect(throws: BridgeRequestError.self) {
            try BridgeRequest.parse(verb: "v", payload: Array(String(repeating: " ", count: 20_000).utf8))
        }
        #expect(try request.string("a") == "1", "ids may be numbers")
        #expect(throws: BridgeRequestError("missing 'b'")) { try request.string("b") }
    }
}
