import Foundation
import MQTT
import Testing

/// What a user gets back for a configuration, before any network traffic.
@Suite struct MQTTConfigurationTests {
    @Test func descriptionNeverShowsThePassword() {
        let configuration = MQTTConfiguration(
            host: "broker.local", port: 8883, clientID: "tradfri", username: "bridge", password: "s3cret!",
            tls: MQTTTLSConfiguration())
        #expect(configuration.description == "mqtts://bridge@broker.local:8883")
        #expect(!"\(configuration)".contains("s3cret"))
    }

    @Test func keepAliveOutOfRangeIsRejected() {
        let error = #expect(throws: MQTTError.self) {
            try MQTTClient(MQTTConfiguration(host: "127.0.0.1", clientID: "x", keepAlive: .seconds(2)))
        }
        #expect(error?.description.contains("keepalive must be 0 (off) or 5 … 65535 seconds") == true)
    }

    @Test func unreadableTLSFileIsNamed() {
        let error = #expect(throws: MQTTError.self) {
            try MQTTClient(
                MQTTConfiguration(
                    host: "127.0.0.1", clientID: "x", tls: MQTTTLSConfiguration(caFile: "/nonexistent/ca.pem")))
        }
        #expect(error == .invalidConfiguration("TLS CA file '/nonexistent/ca.pem' is not readable"))
    }

    @Test func persistentSessionNeedsAClientID() {
        #expect(throws: MQTTError.self) {
            try MQTTClient(MQTTConfiguration(host: "127.0.0.1", clientID: "", cleanSession: false))
        }
    }

    @Test func invalidWillTopicIsRejected() {
        let error = #expect(throws: MQTTError.self) {
            try MQTTClient(
                MQTTConfiguration(
                    host: "127.0.0.1", clientID: "x", will: MQTTMessage(topic: "bridge/+/state", text: "offline")))
        }
        #expect(error?.description.hasPrefix("setting the will on 'bridge/+/state' failed") == true)
    }

    @Test func startTwiceIsAnError() async throws {
        let client = try MQTTClient(MQTTConfiguration(host: "127.0.0.1", port: 1, clientID: "x"))
        try client.start()
        #expect(throws: MQTTError.self) { try client.start() }
        await client.disconnect()
        #expect(throws: MQTTError.closed) { try client.start() }
    }
}

/// The reconnect backoff: grows, is capped, and is spread by jitter.
@Suite struct MQTTReconnectPolicyTests {
    @Test func delayDoublesUpToTheMaximum() {
        let policy = MQTTReconnectPolicy(minimumDelay: .seconds(1), maximumDelay: .seconds(60), jitter: 0)
        let delays = (0..<9).map { policy.delay(afterFailures: $0, random: 0.7) }
        #expect(delays == [1, 2, 4, 8, 16, 32, 60, 60, 60].map { Duration.seconds($0) })
        #expect(policy.delay(afterFailures: 10_000, random: 0.7) == .seconds(60))
    }

    /// Six broker restarts 8–10 s apart (the measurement was 3.5, 2.8, 6.0, 13.5, 24.5,
    /// 53.1 s with a backoff reset only after 30 s connected): each reconnect waits the minimum.
    @Test func aBrokerRestartedAgainAndAgainIsReconnectedAtOnceEachTime() {
        let policy = MQTTReconnectPolicy(minimumDelay: .seconds(1), maximumDelay: .seconds(60), jitter: 0)
        var failures = -1
        var delays: [Duration] = []
        for uptime in [8, 9, 10, 8, 9, 10] {
            failures = policy.failures(after: failures, connectedFor: .seconds(uptime))
            delays.append(policy.delay(afterFailures: failures, random: 0))
        }
        #expect(delays == Array(repeating: .seconds(1), count: 6))
    }

    /// A connection the broker drops at once (another client with our id) still backs off, as do
    /// attempts that never connect.
    @Test func aConnectionDroppedAtOnceStillBacksOff() {
        let policy = MQTTReconnectPolicy(minimumDelay: .seconds(1), maximumDelay: .seconds(60), jitter: 0)
        var failures = -1
        var delays: [Duration] = []
        for uptime: Duration? in [.milliseconds(300), nil, .milliseconds(200), nil] {
            failures = policy.failures(after: failures, connectedFor: uptime)
            delays.append(policy.delay(afterFailures: failures, random: 0))
        }
        #expect(delays == [1, 2, 4, 8].map { Duration.seconds($0) })
    }

    @Test func jitterTakesOffAtMostItsShare() {
        let policy = MQTTReconnectPolicy(minimumDelay: .seconds(1), maximumDelay: .seconds(60), jitter: 0.5)
        #expect(policy.delay(afterFailures: 3, random: 0) == .seconds(8))
        #expect(policy.delay(afterFailures: 3, random: 0.5) == .seconds(6))
        #expect(policy.delay(afterFailures: 3, random: 0.999_999) > .seconds(4))
    }
}
