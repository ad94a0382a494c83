/// Why a DTLS session could not be set up or was lost. Each case's description is written for the
/// person running the program.
public enum CoAPError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The host name did not resolve.
    case unresolvableHost(String)
    /// Nothing answered the DTLS handshake: wrong address, gateway off, or a firewall.
    case noAnswer(host: String, port: UInt16)
    /// The peer refused the connection outright (ICMP port unreachable, host unreachable).
    case unreachable(host: String, port: UInt16, reason: String)
    /// The peer answered, then rejected the PSK identity (DTLS alert unknown_psk_identity).
    case unknownIdentity(String)
    /// The peer answered but the handshake never completed after our Finished message, or it sent
    /// a fatal alert such as bad_record_mac / decrypt_error: the key does not match.
    case keyRejected(alert: String?)
    /// Another fatal DTLS alert.
    case dtlsAlert(String)
    /// The session closed or failed while requests were outstanding.
    case sessionClosed
    /// The request was not answered in time (CoAP retransmissions exhausted or our deadline hit).
    case timeout(String)
    /// libcoap refused to send the request (it reported why in its log).
    case sendFailed(String)
    /// The peer answered the request with a reset (RST).
    case reset
    /// libcoap could not be set up (context, endpoint, session).
    case setup(String)

    public var description: String {
        switch self {
        case .unresolvableHost(let host):
            return "cannot resolve host '\(host)'"
        case .noAnswer(let host, let port):
            return "no answer from \(host):\(port) (is the address right and the gateway powered?)"
        case .unreachable(let host, let port, let reason):
            return "\(host):\(port) is unreachable (\(reason))"
        case .unknownIdentity(let identity):
            return "the gateway does not know the identity '\(identity)' (DTLS alert unknown_psk_identity)"
        case .keyRejected(let alert):
            if let alert { return "the gateway rejected the key (DTLS alert \(alert))" }
            return
                "the gateway did not finish the handshake after the key exchange: the key (security code or PSK) is probably wrong"
        case .dtlsAlert(let alert):
            return "DTLS alert: \(alert)"
        case .sessionClosed:
            return "the DTLS session was closed"
        case .timeout(let what):
            return "timed out: \(what)"
        case .sendFailed(let what):
            return "could not send: \(what)"
        case .reset:
            return "the peer answered with a CoAP reset"
        case .setup(let what):
            return "CoAP setup failed: \(what)"
        }
    }
}

/// What happens to a client session over its life.
public enum CoAPSessionEvent: Sendable, Equatable {
    case connected
    /// The session ended: `nil` for an orderly close by us, otherwise why it failed.
    case closed(CoAPError?)
}
