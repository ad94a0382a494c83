import MQTT
import TestSupport
import Testing

/// MQTT 5: request/response properties, user properties, No Local, and the broker's reason
/// codes on PUBACK and SUBACK.
@Suite struct MQTT5Tests {
    @Test func requestResponseRoundTripBetweenTwoClients() async throws {
        let broker = try await MosquittoBroker()
        let (responder, requests) = try await connectedClient(configuration(for: broker))
        let (requester, replies) = try await connectedClient(configuration(for: broker))
        try await responder.subscribe(["bridge/request/#"])
        try await requester.subscribe(["clients/requester/response"])

        let request = MQTTMessage(
            topic: "bridge/request/permit_join", text: "{\"time\":60}", qos: .atLeastOnce,
            responseTopic: "clients/requester/response", correlationData: [0xCA, 0xFE, 0x00, 0x01],
            messageExpiryInterval: 30, contentType: "application/json", payloadIsUTF8: true,
            userProperties: [MQTTUserProperty("source", "test"), MQTTUserProperty("source", "again")])
        try await requester.publish(request, acknowledgedWithin: .seconds(5))

        let received = try await requests.message(on: "bridge/request/permit_join")
        #expect(received.text == "{\"time\":60}")
        #expect(received.responseTopic == "clients/requester/response")
        #expect(received.correlationData == [0xCA, 0xFE, 0x00, 0x01])
        #expect(received.contentType == "application/json")
        #expect(received.payloadIsUTF8)
        #expect(received.userProperties == request.userProperties)
        // The broker reports the remaining lifetime: at most what was sent.
        #expect((1...30).contains(received.messageExpiryInterval ?? 0))

        let responseTopic = try #require(received.responseTopic)
        try await responder.publish(
            MQTTMessage(
                topic: responseTopic, text: "{\"status\":\"ok\"}", qos: .atLeastOnce,
                correlationData: received.correlationData),
            acknowledgedWithin: .seconds(5))
        let reply = try await replies.message(on: "clients/requester/response")
        #expect(reply.text == "{\"status\":\"ok\"}")
        #expect(reply.correlationData == [0xCA, 0xFE, 0x00, 0x01])

        await responder.disconnect()
        await requester.disconnect()
    }

    @Test func propertiesFromMosquittoPubArrive() async throws {
        let broker = try await MosquittoBroker()
        let (client, events) = try await connectedClient(configuration(for: broker))
        try await client.subscribe(["bridge/request/#"])
        try await broker.publish([
            "-V", "mqttv5", "-t", "bridge/request/devices", "-m", "{}", "-q", "1",
            "-D", "publish", "response-topic", "tools/reply",
            "-D", "publish", "correlation-data", "abc",
            "-D", "publish", "user-property", "gateway_id", "gw-1",
        ])
        let message = try await events.message(on: "bridge/request/devices")
        #expect(message.responseTopic == "tools/reply")
        #expect(message.correlationData == Array("abc".utf8))
        #expect(message.userProperties == [MQTTUserProperty("gateway_id", "gw-1")])
        await client.disconnect()
    }

    @Test func ourPropertiesReachMosquittoSub() async throws {
        let broker = try await MosquittoBroker()
        let watcher = try await broker.subscriber(["-V", "mqttv5", "-t", "bridge/state", "-F", "%t|%R|%C|%P|%p"])
        let (client, _) = try await connectedClient(configuration(for: broker))
        try await client.publish(
            MQTTMessage(
                topic: "bridge/state", text: "online", qos: .atLeastOnce, responseTopic: "r/1",
                contentType: "text/plain",
                userProperties: [MQTTUserProperty("source", "bridge")]),
            acknowledgedWithin: .seconds(5))
        try await watcher.waitForLine(containing: "bridge/state|r/1|text/plain|source:bridge|online")
        await client.disconnect()
    }

    @Test func propertiesAreLeftOutOverMQTT311() async throws {
        let broker = try await MosquittoBroker()
        let watcher = try await broker.subscriber(["-t", "bridge/state", "-v"])
        let (client, _) = try await connectedClient(configuration(for: broker, version: .v311))
        try await client.publish(
            MQTTMessage(
                topic: "bridge/state", text: "online", qos: .atLeastOnce, userProperties: [MQTTUserProperty("a", "b")]),
            acknowledgedWithin: .seconds(5))
        try await watcher.waitForLine(containing: "bridge/state online")
        await client.disconnect()
    }

    @Test func noLocalSubscriptionSkipsOwnMessages() async throws {
        let broker = try await MosquittoBroker()
        let (client, events) = try await connectedClient(configuration(for: broker))
        try await client.subscribe(["lights/#"], options: .noLocal)
        try await client.publish(
            MQTTMessage(topic: "lights/own", text: "mine", qos: .atLeastOnce), acknowledgedWithin: .seconds(5))
        try await broker.publish(["-t", "lights/other", "-m", "theirs", "-q", "1"])
        let first = try await events.anyMessage()
        #expect(first.topic == "lights/other")
        await client.disconnect()
    }

    @Test func subscribeOptionsNeedMQTT5() async throws {
        let broker = try await MosquittoBroker()
        let (client, _) = try await connectedClient(configuration(for: broker, version: .v311))
        await #expect(throws: MQTTError.invalidArgument("subscribe options need MQTT 5")) {
            try await client.subscribe(["lights/#"], options: .noLocal)
        }
        await client.disconnect()
    }

    /// Anonymous clients may only use `allowed/#` (mosquitto ACL file: lines before any `user`
    /// apply to anonymous clients).
    static let restrictedBroker = MosquittoBroker.Options(acl: "topic readwrite allowed/#\n")

    @Test func acknowledgedPublishReportsTheBrokersRefusal() async throws {
        let broker = try await MosquittoBroker(Self.restrictedBroker)
        let (client, _) = try await connectedClient(configuration(for: broker))
        try await client.publish(
            MQTTMessage(topic: "allowed/x", text: "ok", qos: .atLeastOnce), acknowledgedWithin: .seconds(5))
        let error = await #expect(throws: MQTTError.self) {
            try await client.publish(
                MQTTMessage(topic: "secret/x", text: "no", qos: .atLeastOnce), acknowledgedWithin: .seconds(5))
        }
        #expect(error == .publishRefused(topic: "secret/x", reason: .notAuthorized))
        #expect(error?.description == "the broker refused the publish to 'secret/x': Not authorized (0x87)")
        await client.disconnect()
    }

    /// Mosquitto's ACL file never refuses a SUBSCRIBE (2.0 filters on delivery instead); the
    /// dynamic-security plugin does. Anonymous clients may subscribe to `allowed/#` only.
    static var subscribeRestrictedBroker: MosquittoBroker.Options {
        var options = MosquittoBroker.Options()
        options.useDynamicSecurity(
            """
            {
              "defaultACLAccess": {"publishClientSend": true, "publishClientReceive": true, "subscribe": false, "unsubscribe": true},
              "clients": [],
              "groups": [{"groupname": "anonymous", "roles": [{"rolename": "reader"}], "clients": []}],
              "anonymousGroup": "anonymous",
              "roles": [{"rolename": "reader", "acls": [{"acltype": "subscribePattern", "topic": "allowed/#", "allow": true}]}]
            }
            """)
        return options
    }

    @Test(arguments: [MQTTProtocolVersion.v311, .v5])
    func refusedSubscriptionIsReported(version: MQTTProtocolVersion) async throws {
        let broker = try await MosquittoBroker(Self.subscribeRestrictedBroker)
        let (client, events) = try await connectedClient(configuration(for: broker, version: version))
        let error = await #expect(throws: MQTTError.self) {
            try await client.subscribe(["allowed/#", "secret/#"])
        }
        guard case .subscriptionRefused(let filters, let reason) = error else {
            Issue.record("expected a refused subscription, got \(String(describing: error))")
            return
        }
        #expect(filters == ["secret/#"])
        // MQTT 3.1.1 has a single failure code (0x80); MQTT 5 says why.
        #expect(reason == (version == .v5 ? .notAuthorized : .unspecifiedError))
        // The granted filter of the same SUBSCRIBE works.
        try await broker.publish(["-t", "allowed/y", "-m", "still here", "-q", "1"])
        #expect(try await events.message(on: "allowed/y").text == "still here")
        await client.disconnect()
    }
}
