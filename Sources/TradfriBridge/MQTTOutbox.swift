import CoAP
import HubModel
import Logging
import MQTT
import TradfriModel

/// Everything the bridge publishes goes through here.
///
/// Contract:
/// - Remembers the current payload of every state-like topic (retained ones, and device states
///   even when not retained), publishes a topic only when its payload changed, and publishes the
///   whole set again after every (re)connection to the broker: a broker that lost its retained
///   messages, or a restart of either side, never leaves consumers without state.
/// - Events (non-retained, one-off) published while the broker is away wait in a small buffer
///   (newest 100, younger than 5 minutes) and go out after reconnecting.
/// - Never publishes to a topic with a wildcard.
@CoAPActor
public final class MQTTOutbox {
    private struct Entry {
        var payload: [UInt8]
        var retain: Bool
    }

    private let client: MQTTClient
    private let logger = Logger(label: "mqtt")
    private var state: [String: Entry] = [:]
    private var events: [(message: MQTTMessage, time: ContinuousClock.Instant)] = []

    public init(client: MQTTClient) {
        self.client = client
    }

    /// Publishes `payload` on `topic` as state: deduplicated and re-published after reconnects.
    /// - Parameter force: publish even if the payload is unchanged (for `<name>/get`).
    public func publishState(_ topic: String, _ payload: JSON, retain: Bool, force: Bool = false) {
        let bytes = payload.bytes
        if !force, let current = state[topic], current.payload == bytes, current.retain == retain { return }
        state[topic] = Entry(payload: bytes, retain: retain)
        send(
            MQTTMessage(
                topic: topic, payload: bytes, qos: .atLeastOnce, retain: retain, contentType: "application/json",
                payloadIsUTF8: true))
    }

    /// Removes a state topic (an empty retained message deletes a retained one).
    public func clearState(_ topic: String) {
        guard let entry = state.removeValue(forKey: topic) else { return }
        if entry.retain {
            send(MQTTMessage(topic: topic, payload: [], qos: .atLeastOnce, retain: true))
        }
    }

    /// Stops remembering a state topic without telling the broker (its retained message stays):
    /// it is no longer republished after a reconnect.
    public func forget(_ topic: String) {
        state[topic] = nil
    }

    /// Whether the broker connection is up.
    public var isConnected: Bool { client.isConnected }

    /// Publishes a one-off message (events, responses); buffered briefly while offline.
    public func publishEvent(
        _ topic: String, _ payload: JSON, responseTopic: String? = nil, correlationData: [UInt8]? = nil,
        qos: MQTTQoS = .atMostOnce
    ) {
        let message = MQTTMessage(
            topic: responseTopic ?? topic, payload: payload.bytes, qos: qos, retain: false,
            correlationData: correlationData, contentType: "application/json", payloadIsUTF8: true)
        guard client.isConnected else {
            events.append((message, .now))
            if events.count > 100 { events.removeFirst(events.count - 100) }
            return
        }
        send(message)
    }

    /// Publishes a raw message (clearing a retained command, for example).
    public func publishRaw(_ message: MQTTMessage) {
        send(message)
    }

    /// After a (re)connection: every remembered state again, then the buffered events.
    public func republishAll(first: [String] = []) {
        let ordered = first.filter { state[$0] != nil } + state.keys.sorted().filter { !first.contains($0) }
        for topic in ordered {
            guard let entry = state[topic] else { continue }
            send(
                MQTTMessage(
                    topic: topic, payload: entry.payload, qos: .atLeastOnce, retain: entry.retain,
                    contentType: "application/json", payloadIsUTF8: true))
        }
        let cutoff = ContinuousClock.now - .seconds(300)
        let waiting = events.filter { $0.time > cutoff }
        events.removeAll()
        for item in waiting { send(item.message) }
    }

    private func send(_ message: MQTTMessage) {
        guard !message.topic.utf8.contains(where: { $0 == UInt8(ascii: "+") || $0 == UInt8(ascii: "#") }) else {
            logger.error("refusing to publish to a wildcard topic", metadata: ["mqtt.topic": "\(message.topic)"])
            return
        }
        do {
            try client.publish(message)
        } catch MQTTError.notConnected {
            // Remembered state goes out again on reconnect.
        } catch MQTTError.closed {
            // Stopping.
        } catch {
            logger.warning("publish failed", metadata: ["mqtt.topic": "\(message.topic)", "error": "\(error)"])
        }
    }
}
