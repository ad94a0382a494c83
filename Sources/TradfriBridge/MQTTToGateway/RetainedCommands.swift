import CoAP
import MQTT

/// Commands and requests must never be retained: a retained one would be replayed at every
/// restart of the bridge or the broker. One that arrives retained is removed from the broker (an
/// empty retained message) and refused; the empty message the removal echoes back is ignored.
/// Used by the `/set` commands and the `bridge/request` verbs.
@CoAPActor
struct RetainedCommands {
    enum Verdict {
        /// An ordinary message: handle it.
        case handle
        /// It was retained: it has been removed from the broker; refuse it.
        case refuse
        /// The echo of a removal: nothing to do.
        case ignore
    }

    /// Topics whose retained message was just removed, and when.
    private var removed: [String: ContinuousClock.Instant] = [:]

    mutating func check(_ message: MQTTMessage, outbox: MQTTOutbox) -> Verdict {
        if message.payload.isEmpty, let when = removed[message.topic], ContinuousClock.now - when < .seconds(10) {
            removed[message.topic] = nil
            return .ignore
        }
        guard message.retain else { return .handle }
        removed[message.topic] = .now
        outbox.publishRaw(MQTTMessage(topic: message.topic, payload: [], qos: .atLeastOnce, retain: true))
        return .refuse
    }
}
