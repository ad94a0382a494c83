/// MQTT quality of service.
public enum MQTTQoS: Int, Sendable, Hashable, Comparable, CaseIterable, CustomStringConvertible {
    /// Fire and forget.
    case atMostOnce = 0
    /// Acknowledged with PUBACK; may arrive more than once.
    case atLeastOnce = 1
    /// Four-way handshake (PUBREC/PUBREL/PUBCOMP); arrives exactly once.
    case exactlyOnce = 2

    public static func < (lhs: MQTTQoS, rhs: MQTTQoS) -> Bool { lhs.rawValue < rhs.rawValue }

    public var description: String { "QoS \(rawValue)" }
}

/// One MQTT 5 user property: a name/value pair. Names may repeat and order is kept.
public struct MQTTUserProperty: Sendable, Hashable, CustomStringConvertible {
    public var name: String
    public var value: String

    public init(_ name: String, _ value: String) {
        self.name = name
        self.value = value
    }

    public var description: String { "\(name)=\(value)" }
}

/// A message to publish, a will, or a message received from the broker.
///
/// The MQTT 5 properties (`responseTopic` … `userProperties`) are sent only over an MQTT 5
/// connection; over MQTT 3.1.1 they are left out and the message is published without them. On a
/// received message they hold what the publisher sent (`messageExpiryInterval` is the remaining
/// lifetime the broker reports).
public struct MQTTMessage: Sendable, Equatable, CustomStringConvertible {
    public var topic: String
    public var payload: [UInt8]
    public var qos: MQTTQoS
    /// On publish: the broker keeps this message for future subscribers (an empty retained payload
    /// deletes the retained message). On receipt: the message came from the broker's retained store.
    public var retain: Bool

    // MARK: MQTT 5 properties

    /// Where the receiver should send its answer (request/response).
    public var responseTopic: String?
    /// Opaque bytes the responder copies into its answer, so the requester can match it.
    public var correlationData: [UInt8]?
    /// Seconds after which the broker drops the message if it has not been delivered yet.
    public var messageExpiryInterval: UInt32?
    /// MIME type of the payload, e.g. `application/json`.
    public var contentType: String?
    /// Payload format indicator: the payload is UTF-8 text.
    public var payloadIsUTF8: Bool
    public var userProperties: [MQTTUserProperty]

    public init(
        topic: String, payload: [UInt8], qos: MQTTQoS = .atMostOnce, retain: Bool = false,
        responseTopic: String? = nil, correlationData: [UInt8]? = nil, messageExpiryInterval: UInt32? = nil,
        contentType: String? = nil, payloadIsUTF8: Bool = false, userProperties: [MQTTUserProperty] = []
    ) {
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.retain = retain
        self.responseTopic = responseTopic
        self.correlationData = correlationData
        self.messageExpiryInterval = messageExpiryInterval
        self.contentType = contentType
        self.payloadIsUTF8 = payloadIsUTF8
        self.userProperties = userProperties
    }

    /// A message whose payload is `text` encoded as UTF-8.
    public init(
        topic: String, text: String, qos: MQTTQoS = .atMostOnce, retain: Bool = false,
        responseTopic: String? = nil, correlationData: [UInt8]? = nil, messageExpiryInterval: UInt32? = nil,
        contentType: String? = nil, payloadIsUTF8: Bool = false, userProperties: [MQTTUserProperty] = []
    ) {
        self.init(
            topic: topic, payload: Array(text.utf8), qos: qos, retain: retain, responseTopic: responseTopic,
            correlationData: correlationData, messageExpiryInterval: messageExpiryInterval,
            contentType: contentType, payloadIsUTF8: payloadIsUTF8, userProperties: userProperties)
    }

    /// The payload decoded as UTF-8 (invalid sequences become U+FFFD).
    public var text: String { String(decoding: payload, as: UTF8.self) }

    /// True if any MQTT 5 property is set.
    var hasProperties: Bool {
        responseTopic != nil || correlationData != nil || messageExpiryInterval != nil || contentType != nil
            || payloadIsUTF8 || !userProperties.isEmpty
    }

    public var description: String {
        var flags = "\(qos)"
        if retain { flags += ", retained" }
        return "'\(topic)' (\(flags), \(payload.count) bytes)"
    }
}

/// MQTT 5 subscription options. Over MQTT 3.1.1 only the empty set is accepted.
public struct MQTTSubscribeOptions: OptionSet, Sendable, Hashable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// The broker does not send this client its own publishes back (MQTT 5 No Local).
    public static let noLocal = MQTTSubscribeOptions(rawValue: 0x04)
    /// Forwarded messages keep the retain flag the publisher set.
    public static let retainAsPublished = MQTTSubscribeOptions(rawValue: 0x08)
    /// Retained messages are sent only if the subscription did not exist before.
    public static let retainedOnlyIfNew = MQTTSubscribeOptions(rawValue: 0x10)
    /// Retained messages are never sent for this subscription.
    public static let noRetained = MQTTSubscribeOptions(rawValue: 0x20)
}
