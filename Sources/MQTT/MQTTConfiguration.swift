/// How to reach and talk to one MQTT broker.
///
/// `description` never contains the password, so a configuration can be logged.
public struct MQTTConfiguration: Sendable, CustomStringConvertible {
    public var host: String
    public var port: UInt16
    /// The MQTT client identifier. Must be unique per broker: a second client with the same id
    /// makes the broker drop the first. May be empty only with `cleanSession` (the broker then
    /// assigns one).
    public var clientID: String
    public var username: String?
    /// Sent in CONNECT only; never logged.
    public var password: String?
    /// `nil` for plain TCP.
    public var tls: MQTTTLSConfiguration?
    /// Interval of PINGREQs when idle; the broker drops the connection after 1.5 times this
    /// without traffic. Also bounds a connection attempt: without a CONNACK by then, libmosquitto
    /// gives up on it (and the client retries). Whole seconds, 0 (off, no attempt timeout either)
    /// or 5 s … 65535 s.
    public var keepAlive: Duration
    public var protocolVersion: MQTTProtocolVersion
    /// MQTT 3.1.1 clean session / MQTT 5 clean start: start without any stored subscriptions or
    /// queued messages. Recommended (a persistent session replays stale commands).
    public var cleanSession: Bool
    /// Published by the broker when the connection ends without a DISCONNECT (crash, network
    /// failure, keepalive timeout); never after `MQTTClient.disconnect()`.
    public var will: MQTTMessage?
    public var reconnect: MQTTReconnectPolicy
    /// Disables Nagle's algorithm on the socket (`MOSQ_OPT_TCP_NODELAY`), so small publishes go out
    /// at once instead of waiting for the previous segment's ACK.
    public var tcpNoDelay: Bool
    /// The longest the network thread waits on the socket, or between two connection attempts,
    /// before it comes round again with nothing to do; each round is counted in
    /// `MQTTStatistics.loopTurns`, so a watchdog can tell a quiet connection from a stuck
    /// thread. nil: only as traffic, the keep-alive and the reconnect policy need (the fewest
    /// wake-ups).
    public var maximumLoopWait: Duration?

    public init(
        host: String, port: UInt16 = 1883, clientID: String, username: String? = nil, password: String? = nil,
        tls: MQTTTLSConfiguration? = nil, keepAlive: Duration = .seconds(60),
        protocolVersion: MQTTProtocolVersion = .v5, cleanSession: Bool = true, will: MQTTMessage? = nil,
        reconnect: MQTTReconnectPolicy = MQTTReconnectPolicy(), tcpNoDelay: Bool = true,
        maximumLoopWait: Duration? = nil
    ) {
        self.host = host
        self.port = port
        self.clientID = clientID
        self.username = username
        self.password = password
        self.tls = tls
        self.keepAlive = keepAlive
        self.protocolVersion = protocolVersion
        self.cleanSession = cleanSession
        self.will = will
        self.reconnect = reconnect
        self.tcpNoDelay = tcpNoDelay
        self.maximumLoopWait = maximumLoopWait
    }

    /// `mqtts://alice@broker.local:8883` (no password).
    public var description: String {
        let scheme = tls == nil ? "mqtt" : "mqtts"
        let user = username.map { "\($0)@" } ?? ""
        let host = self.host.contains(":") ? "[\(self.host)]" : self.host
        return "\(scheme)://\(user)\(host):\(port)"
    }

    /// "host:port", for error messages.
    var endpoint: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

public enum MQTTProtocolVersion: Sendable, Hashable, CustomStringConvertible {
    case v311
    case v5

    public var description: String {
        switch self {
        case .v311: "MQTT 3.1.1"
        case .v5: "MQTT 5"
        }
    }
}

/// TLS to the broker (TLS 1.2 or newer; the certificate chain is always verified).
public struct MQTTTLSConfiguration: Sendable, Hashable {
    /// PEM file of the CA that signed the broker's certificate; `nil` trusts the system's CAs.
    public var caFile: String?
    /// PEM client certificate, for brokers that authenticate clients by certificate.
    public var certificateFile: String?
    /// PEM private key of `certificateFile`. Must not be encrypted (there is nobody to ask for
    /// a passphrase).
    public var keyFile: String?
    /// Skips the check that the broker's certificate names `host`. The chain is still verified.
    /// Only for brokers reached by an address their certificate does not list.
    public var insecure: Bool

    public init(caFile: String? = nil, certificateFile: String? = nil, keyFile: String? = nil, insecure: Bool = false) {
        self.caFile = caFile
        self.certificateFile = certificateFile
        self.keyFile = keyFile
        self.insecure = insecure
    }
}
