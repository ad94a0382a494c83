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

    @Test func jitterTakesOffAtMostItsShare() {
        let policy = MQTTReconnectPolicy(minimumDelay: .seconds(1), maximumDelay: .seconds(60), jitter: 0.5)
        #expect(policy.delay(afterFailures: 3, random: 0) == .seconds(8))
        #expect(policy.delay(afterFailures: 3, random: 0.5) == .seconds(6))
        #expect(policy.delay(afterFailures: 3, random: 0.999_999) > .seconds(4))
    }
}
