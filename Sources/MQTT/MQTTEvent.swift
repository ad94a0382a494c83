/// What happens to an `MQTTClient`, in order. See `MQTTClient.events`.
public enum MQTTEvent: Sendable, Equatable {
    /// The broker accepted the connection (CONNACK 0). Remembered subscriptions have been
    /// re-issued already. `sessionPresent`: the broker kept a session from before (only without
    /// clean session).
    case connected(sessionPresent: Bool)
    /// The broker answered CONNECT with a refusal. The client tries again after the backoff.
    case connectionRefused(MQTTConnectionRefusal)
    /// An attempt failed before the broker answered (DNS, TCP, TLS). The client tries again
    /// after the backoff.
    case connectionFailed(MQTTError)
    /// An established connection ended. Follows `.connected` only.
    case disconnected(MQTTDisconnectReason)
    /// A message arrived on a subscription.
    case message(MQTTMessage)
}

/// Why an established connection ended.
public enum MQTTDisconnectReason: Sendable, Equatable, CustomStringConvertible {
    /// `disconnect()` was called: the client sent DISCONNECT, so the broker drops the will.
    case requested
    /// The network connection failed or timed out; the broker publishes the will. The client
    /// reconnects by itself.
    case connectionLost(MQTTError)
    /// The broker sent an MQTT 5 DISCONNECT (session taken over, server shutting down, …).
    /// The client reconnects by itself.
    case disconnectedByBroker(MQTTReasonCode)

    /// Not asked for by this program.
    public var isUnexpected: Bool { self != .requested }

    public var description: String {
        switch self {
        case .requested: "disconnected as requested"
        case .connectionLost(let error): "connection lost: \(error)"
        case .disconnectedByBroker(let reason): "disconnected by the broker: \(reason)"
        }
    }
}

/// Why the broker refused a connection (its CONNACK code, MQTT 3.1.1 or 5).
public enum MQTTConnectionRefusal: Sendable, Hashable, CustomStringConvertible {
    /// The broker does not speak the requested protocol version.
    case unsupportedProtocolVersion
    /// The broker rejected the client identifier (too long, bad characters, or empty without
    /// clean session).
    case clientIdentifierRejected
    /// The broker is up but not accepting connections (unavailable or busy).
    case serverUnavailable
    /// The user name or password is wrong.
    case badCredentials
    /// The broker does not allow this client. Mosquitto also answers this to a wrong password and
    /// to anonymous clients when `allow_anonymous` is false.
    case notAuthorized
    /// This client is banned.
    case banned
    /// Another MQTT 5 reason code.
    case other(MQTTReasonCode)

    /// Interprets a CONNACK return code (3.1.1: 1 … 5) or reason code (5: 0x80 …).
    init(connackCode code: Int32, protocolVersion: MQTTProtocolVersion) {
        switch (protocolVersion, code) {
        case (.v311, 1), (_, 0x84): self = .unsupportedProtocolVersion
        case (.v311, 2), (_, 0x85): self = .clientIdentifierRejected
        case (.v311, 3), (_, 0x88), (_, 0x89): self = .serverUnavailable
        case (.v311, 4), (_, 0x86): self = .badCredentials
        case (.v311, 5), (_, 0x87): self = .notAuthorized
        case (_, 0x8A): self = .banned
        default: self = .other(MQTTReasonCode(rawValue: UInt8(clamping: code)))
        }
    }

    public var description: String {
        switch self {
        case .unsupportedProtocolVersion:
            "the broker does not support this MQTT protocol version"
        case .clientIdentifierRejected:
            "the broker rejected the client identifier"
        case .serverUnavailable:
            "the broker is unavailable or busy"
        case .badCredentials:
            "bad user name or password"
        case .notAuthorized:
            "not authorized (check the user name and password, and whether the broker allows this client)"
        case .banned:
            "this client is banned by the broker"
        case .other(let reason):
            "refused by the broker: \(reason)"
        }
    }
}
