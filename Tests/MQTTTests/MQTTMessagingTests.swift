import MQTT
import TestSupport
import Testing

/// Publishing and subscribing through the real mosquitto broker, checked with the real
/// mosquitto_pub / mosquitto_sub.
@Suite struct MQTTMessagingTests {
    @Test(arguments: [MQTTProtocolVersion.v311, .v5])
    func publishReachesMosquittoSub(version: MQTTProtocolVersion) async throws {
        let broker = try await MosquittoBroker()
        let watcher = try await broker.subscriber(["-t", "bridge/#", "-v"])
        let (client, _) = try await connectedClient(configuration(for: broker, version: version))
        try client.publish(MQTTMessage(topic: "bridge/kitchen", text: "{\"state\":\"ON\"}"))
        try await watcher.waitForLine(containing: "bridge/kitchen {\"state\":\"ON\"}")
        await client.disconnect()
    }

    @Test(arguments: [true, false])
    func tcpNoDelaySettingConnectsAndDelivers(noDelay: Bool) async throws {
        let broker = try await MosquittoBroker()
        let watcher = try await broker.subscriber(["-t", "nodelay", "-v"])
        let (client, _) = try await connectedClient(configuration(for: broker) { $0.tcpNoDelay = noDelay })
        try await client.publish(
            MQTTMessage(topic: "nodelay", text: "\(noDelay)", qos: .atLeastOnce), acknowledgedWithin: .seconds(5))
        try await watcher.waitForLine(containing: "nodelay \(noDelay)")
        await client.disconnect()
    }

    @Test(arguments: [MQTTProtocolVersion.v311, .v5])
    func subscriptionReceivesMosquittoPub(version: MQTTProtocolVersion) async throws {
        let broker = try await MosquittoBroker()
        let (client, events) = try await connectedClient(configuration(for: broker, version: version))
        let granted = try await client.subscribe(["commands/#"], qos: .atLeastOnce)
        #expect(granted == [.atLeastOnce])

        try await broker.publish(["-t", "commands/lamp/set", "-m", "{\"brightness\":128}", "-q", "1"])
        let message = try await events.message(on: "commands/lamp/set")
        #expect(message.text == "{\"brightness\":128}")
        #expect(message.qos == .atLeastOnce)
        #expect(message.retain == false)
        await client.disconnect()
    }

    @Test func retainedMessageOfMosquittoPubReachesLaterSubscription() async throws {
        let broker = try await MosquittoBroker()
        try await broker.publish(["-t", "lamp/state", "-m", "ON", "-r", "-q", "1"])
        let (client, events) = try await connectedClient(configuration(for: broker))
        try await client.subscribe(["lamp/state"])
        let message = try await events.message(on: "lamp/state")
        #expect(message.text == "ON")
        #expect(message.retain == true)

        // A live message on the same topic is not flagged as retained.
        try await broker.publish(["-t", "lamp/state", "-m", "OFF", "-r", "-q", "1"])
        let live = try await events.message(on: "lamp/state")
        #expect(live.text == "OFF")
        #expect(live.retain == false)
        await client.disconnect()
    }

    @Test func ourRetainedMessageReachesLaterSubscribers() async throws {
        let broker = try await MosquittoBroker()
        let (publisher, _) = try await connectedClient(configuration(for: broker))
        try await publisher.publish(
            MQTTMessage(topic: "bridge/state", text: "online", qos: .atLeastOnce, retain: true),
            acknowledgedWithin: .seconds(5))
        await publisher.disconnect()

        let watcher = try await broker.subscriber(["-t", "bridge/state", "-v", "-C", "1"])
        try await watcher.waitForLine(containing: "bridge/state online")

        let (subscriber, events) = try await connectedClient(configuration(for: broker))
        try await subscriber.subscribe(["bridge/#"])
        let message = try await events.message(on: "bridge/state")
        #expect(message.text == "online")
        #expect(message.retain)
        await subscriber.disconnect()
    }

    @Test(arguments: [MQTTQoS.atLeastOnce, .exactlyOnce])
    func acknowledgedPublishReturnsOnceTheBrokerHasTheMessage(qos: MQTTQoS) async throws {
        let broker = try await MosquittoBroker()
        let (client, _) = try await connectedClient(configuration(for: broker))
        try await client.publish(
            MQTTMessage(topic: "kept", text: "\(qos)", qos: qos, retain: true), acknowledgedWithin: .seconds(5))
        // The broker had it when the acknowledgement came: a new subscriber gets it retained.
        let reader = try await broker.subscriber(["-t", "kept", "-v", "-C", "1"])
        try await reader.waitForLine(containing: "kept \(qos)")
        let acknowledgement = qos == .atLeastOnce ? "Sending PUBACK to" : "Sending PUBCOMP to"
        try await broker.waitForLog(containing: "\(acknowledgement) \(client.configuration.clientID)")
        await client.disconnect()
    }

    @Test func manyConcurrentAcknowledgedPublishesAllComplete() async throws {
        let broker = try await MosquittoBroker()
        let (subscriber, events) = try await connectedClient(configuration(for: broker))
        try await subscriber.subscribe(["burst/#"])
        let (publisher, _) = try await connectedClient(configuration(for: broker))
        let count = 300
        // Under load, libmosquitto reports some publishes (QoS 0 ones most often: "written to the
        // socket") before mosquitto_publish_v5 has handed back their message id; every publish
        // must still see its completion.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<count {
                group.addTask {
                    let qos = MQTTQoS.allCases[index % 3]
                    try await publisher.publish(
                        MQTTMessage(topic: "burst/\(index)", text: "\(index)", qos: qos),
                        acknowledgedWithin: .seconds(10))
                }
            }
            try await group.waitForAll()
        }
        var seen = Set<String>()
        while seen.count < count {
            seen.insert(try await events.anyMessage().topic)
        }
        #expect(seen == Set((0..<count).map { "burst/\($0)" }))
        await publisher.disconnect()
        await subscriber.disconnect()
    }

    @Test func unsubscribeStopsDelivery() async throws {
        let broker = try await MosquittoBroker()
        let (client, events) = try await connectedClient(configuration(for: broker))
        try await client.subscribe(["a", "b"])
        try await client.unsubscribe(["a"])
        try await broker.publish(["-t", "a", "-m", "dropped", "-q", "1"])
        try await broker.publish(["-t", "b", "-m", "kept", "-q", "1"])
        let message = try await events.anyMessage()
        #expect(message.topic == "b")
        await client.disconnect()
    }
}
