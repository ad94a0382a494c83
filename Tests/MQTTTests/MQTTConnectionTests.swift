import Foundation
import MQTT
import TestSupport
import Testing

/// Connecting, refusals, losing and regaining the connection, the will, and a clean goodbye.
@Suite struct MQTTConnectionTests {
    @Test(arguments: [MQTTProtocolVersion.v311, .v5])
    func badCredentialsAreRefusedReadablyAndRetried(version: MQTTProtocolVersion) async throws {
        let broker = try await MosquittoBroker(.init(allowAnonymous: false, users: ["alice": "secret"]))
        let client = try MQTTClient(
            configuration(for: broker, version: version) {
                $0.username = "alice"
                $0.password = "wrong"
            })
        let events = EventLog(client)
        try client.start()
        let refusal = try await events.next("the refusal") { event -> MQTTConnectionRefusal? in
            if case .connectionRefused(let refusal) = event { return refusal }
            return nil
        }
        // Mosquitto answers a wrong password with "not authorized" (3.1.1: 5, MQTT 5: 0x87).
        #expect(refusal == .notAuthorized)
        #expect(refusal.description.contains("user name and password"))
        // The client keeps trying (libmosquitto's own loop would give up for good on MQTT 5).
        try await events.next("a second refusal after the backoff") { event -> Bool? in
            if case .connectionRefused = event { return true }
            return nil
        }
        #expect(!client.isConnected)
        #expect(!broker.log.joined().contains("wrong"))
        await client.disconnect()

        let (good, _) = try await connectedClient(
            configuration(for: broker, version: version) {
                $0.username = "alice"
                $0.password = "secret"
            })
        await good.disconnect()
    }

    /// A broker configured by host name (looked up first on a thread of its own) works both ways.
    @Test func aBrokerConfiguredByNameIsLookedUpAndUsed() async throws {
        let broker = try await MosquittoBroker()
        let watcher = try await broker.subscriber(["-t", "by-name", "-v"])
        let (client, _) = try await connectedClient(configuration(for: broker) { $0.host = "localhost" })
        try await client.publish(
            MQTTMessage(topic: "by-name", text: "hello", qos: .atLeastOnce), acknowledgedWithin: .seconds(5))
        try await watcher.waitForLine(containing: "by-name hello")
        await client.disconnect()
    }

    @Test func passwordNeverAppearsInTheLog() async throws {
        let broker = try await MosquittoBroker(.init(allowAnonymous: false, users: ["alice": "correct-horse"]))
        let capture = LogCapture()
        for password in ["hunter2-wrong", "correct-horse"] {
            let client = try MQTTClient(
                configuration(for: broker) {
                    $0.username = "alice"
                    $0.password = password
                }, logger: capture.logger(level: .trace))
            let events = EventLog(client)
            try client.start()
            try await events.next("the broker's answer") { event -> Bool? in
                switch event {
                case .connected, .connectionRefused: true
                default: nil
                }
            }
            await client.disconnect()
        }
        // libmosquitto's own trace lines (CONNECT sent, CONNACK received) are in there too.
        #expect(capture.entries.contains { $0.contains("CONNECT") }, "\(capture.entries)")
        #expect(capture.entries.contains { $0.contains("alice@127.0.0.1") })
        #expect(!capture.entries.contains { $0.contains("hunter2") || $0.contains("correct-horse") })
    }

    @Test func anonymousClientIsRefusedWhenTheBrokerRequiresLogin() async throws {
        let broker = try await MosquittoBroker(.init(allowAnonymous: false, users: ["alice": "secret"]))
        let client = try MQTTClient(configuration(for: broker))
        let events = EventLog(client)
        try client.start()
        let refusal = try await events.next("the refusal") { event -> MQTTConnectionRefusal? in
            if case .connectionRefused(let refusal) = event { return refusal }
            return nil
        }
        #expect(refusal == .notAuthorized)
        await client.disconnect()
    }

    @Test func reconnectsAndResubscribesAfterBrokerRestart() async throws {
        let broker = try await MosquittoBroker()
        let (client, events) = try await connectedClient(configuration(for: broker))
        try await client.subscribe(["commands/#"])

        await broker.stop()
        let reason = try await events.disconnected()
        #expect(reason.isUnexpected, "\(reason)")
        #expect(!client.isConnected)
        #expect(throws: MQTTError.notConnected) {
            try client.publish(MQTTMessage(topic: "x", text: "while down"))
        }

        try await broker.start()
        try await events.connected()
        // The remembered subscription was re-issued without the caller's help.
        try await broker.publish(["-t", "commands/lamp", "-m", "after restart", "-q", "1"])
        let message = try await events.message(on: "commands/lamp")
        #expect(message.text == "after restart")
        await client.disconnect()
    }

    @Test func willIsPublishedWhenTheConnectionBreaks() async throws {
        let broker = try await MosquittoBroker()
        let watcher = try await broker.subscriber(["-t", "bridge/state", "-v"])
        let relay = try TCPRelay(to: broker.port)
        defer { relay.close() }
        let will = MQTTMessage(topic: "bridge/state", text: "offline", qos: .atLeastOnce, retain: true)
        let (client, events) = try await connectedClient(
            configuration(for: broker, port: relay.port) { $0.will = will })

        relay.cut()
        try await watcher.waitForLine(containing: "bridge/state offline")
        let reason = try await events.disconnected()
        guard case .connectionLost = reason else {
            Issue.record("expected a lost connection, got \(reason)")
            return
        }
        // The relay still accepts: the client comes back by itself.
        try await events.connected()
        await client.disconnect()
    }

    @Test func willIsNotPublishedAfterCleanDisconnect() async throws {
        let broker = try await MosquittoBroker()
        let watcher = try await broker.subscriber(["-t", "bridge/state", "-v"])
        let will = MQTTMessage(topic: "bridge/state", text: "offline", qos: .atLeastOnce, retain: true)
        let clientID = uniqueClientID()
        let (client, events) = try await connectedClient(
            configuration(for: broker, clientID: clientID) { $0.will = will })

        await client.disconnect()
        #expect(try await events.disconnected() == .requested)
        try await events.end()
        try await broker.waitForLog(containing: "Client \(clientID) disconnected")
        // Anything the broker did about our goodbye comes before a later message on the topic.
        try await broker.publish(["-t", "bridge/state", "-m", "marker", "-q", "1"])
        try await watcher.waitForLine(containing: "bridge/state marker")
        #expect(!watcher.output.contains("bridge/state offline"), "\(watcher.outputText)")
        #expect(throws: MQTTError.closed) {
            try client.publish(MQTTMessage(topic: "x", text: "after disconnect"))
        }
    }

    @Test func releasingTheClientDisconnectsCleanlyAndEndsItsThread() async throws {
        let broker = try await MosquittoBroker()
        let clientID = uniqueClientID("r")
        var client: MQTTClient? = try MQTTClient(configuration(for: broker, clientID: clientID))
        let events = EventLog(client!)
        try client!.start()
        try await events.connected()
        let threads = ProcessThreads.ids(named: "mqtt \(clientID)")
        #expect(threads.count == 1, "one network thread, named after the client")

        client = nil
        try await broker.waitForLog(containing: "Client \(clientID) disconnected")
        try await events.end()
        do {
            for thread in threads {
                try await ProcessThreads.waitForExit(of: thread, within: .seconds(5))
            }
            #expect(ProcessThreads.ids(named: "mqtt \(clientID)").isEmpty)
        } catch let unsupported as ProcessThreads.Unsupported {
            // Kernels before 6.9 cannot signal a thread's exit; the stream's end above is then
            // the last thing the test can wait for.
            print("skipped the thread-exit check: \(unsupported)")
        }
    }

    @Test func publishingWithoutConnectionFailsClearly() async throws {
        let unused = freePort()
        let client = try MQTTClient(
            MQTTConfiguration(host: "127.0.0.1", port: unused, clientID: uniqueClientID(), reconnect: quickReconnect))
        let message = MQTTMessage(topic: "bridge/state", text: "online", qos: .atLeastOnce)
        #expect(throws: MQTTError.notConnected) { try client.publish(message) }
        await #expect(throws: MQTTError.notConnected) {
            try await client.subscribe(["bridge/#"])
        }
        #expect(MQTTError.notConnected.description == "not connected to the MQTT broker")

        let events = EventLog(client)
        try client.start()
        let failure = try await events.next("a failed attempt") { event -> MQTTError? in
            if case .connectionFailed(let error) = event { return error }
            return nil
        }
        #expect(failure.description.contains("127.0.0.1:\(unused)"), "\(failure)")
        #expect(failure.description.lowercased().contains("connection refused"), "\(failure)")
        #expect(throws: MQTTError.notConnected) { try client.publish(message) }
        await client.disconnect()
        #expect(throws: MQTTError.closed) { try client.publish(message) }
    }

    @Test func brokerThatNeverAnswersTimesOutAfterTheKeepalive() async throws {
        // Accepts TCP (the kernel completes the handshake) but never reads the CONNECT.
        let silent = try TCPRelay.silentListener()
        defer { close(silent.descriptor) }
        let client = try MQTTClient(
            MQTTConfiguration(
                host: "127.0.0.1", port: silent.port, clientID: uniqueClientID(), keepAlive: .seconds(5),
                reconnect: quickReconnect))
        let events = EventLog(client)
        let started = ContinuousClock.now
        try client.start()
        let error = try await events.next(within: .seconds(15), "the attempt to time out") { event -> MQTTError? in
            if case .connectionFailed(let error) = event { return error }
            return nil
        }
        #expect(ContinuousClock.now - started >= .seconds(4))
        #expect(error.description.contains("the broker did not answer within the keepalive interval"), "\(error)")
        await client.disconnect()
    }

    /// The network thread keeps its own copy of libmosquitto's keep-alive deadline (its poll loop
    /// has to wake up for the PINGREQ itself): an idle connection sends one each keepalive, stays
    /// up, and the thread sleeps in between instead of spinning.
    @Test func idleConnectionSendsPingsAtTheKeepaliveAndSleepsBetween() async throws {
        let broker = try await MosquittoBroker()
        let clientID = uniqueClientID()
        let (client, events) = try await connectedClient(
            configuration(for: broker, clientID: clientID) { $0.keepAlive = .seconds(5) })
        let turnsBefore = client.statistics.loopTurns
        let connected = ContinuousClock.now
        let ping = "Received PINGREQ from \(clientID)"
        // Nothing else is sent: the first ping comes a keepalive after the connection, the next
        // a keepalive after it (never sooner; later only on a loaded machine).
        try await broker.waitForLog(containing: ping, within: .seconds(30))
        let first = ContinuousClock.now
        try await broker.waitForLog(containing: ping, after: broker.log.count, within: .seconds(30))
        let second = ContinuousClock.now
        #expect(first - connected >= .seconds(4), "the first ping after \(first - connected)")
        #expect(second - first >= .seconds(4), "the second ping after \(second - first)")
        #expect(client.isConnected)
        // A wake-up per half keepalive, plus one per ping written and its answer read: about 10
        // in two keepalives (a spinning thread would come round thousands of times).
        let elapsed = (ContinuousClock.now - connected) / .milliseconds(2500)
        #expect(client.statistics.loopTurns - turnsBefore < Int(elapsed) + 10)
        await client.disconnect()
        #expect(try await events.disconnected() == .requested)
    }
}
