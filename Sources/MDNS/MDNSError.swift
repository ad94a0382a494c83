internal import CAvahiClient

/// Why an mDNS operation failed. Each case's description is written for the person running the
/// program; avahi's own error text (`avahi_strerror`) is kept where there is one.
public enum MDNSError: Error, Sendable, Equatable, CustomStringConvertible {
    /// avahi-daemon, or the D-Bus system bus it is reached through, is not running or not
    /// reachable. Raised by `MDNSClient.init` right away; nothing waits for the daemon to appear.
    case daemonUnavailable(String)
    /// The connection to avahi-daemon was lost after it had been established (the daemon or the
    /// system bus stopped or restarted). Make a new `MDNSClient` to retry.
    case disconnected
    /// The client was closed, or the browser or publisher stopped, while the operation was pending.
    case closed
    /// avahi rejected a name, service type, domain, TXT entry or address.
    case invalidArgument(String)
    /// Nothing answered in time: the host name or service is not on the network.
    case notFound(String)
    /// A name collision that renaming could not resolve.
    case collision(String)
    /// Something we wait for with a deadline did not happen in time.
    case timeout(String)
    /// The task waiting for the result was cancelled.
    case cancelled
    /// Any other avahi failure: what we were doing, avahi's error code and its text.
    case avahi(operation: String, code: Int32, message: String)

    public var description: String {
        switch self {
        case .daemonUnavailable(let reason):
            return "avahi-daemon is not reachable over the D-Bus system bus (\(reason)); "
                + "is avahi-daemon running?"
        case .disconnected:
            return "lost the connection to avahi-daemon (the daemon or the system bus stopped)"
        case .closed:
            return "the mDNS client was closed"
        case .invalidArgument(let what):
            return "invalid mDNS argument: \(what)"
        case .notFound(let what):
            return "not found on the local network: \(what)"
        case .collision(let name):
            return "the name '\(name)' is already in use on the local network"
        case .timeout(let what):
            return "timed out: \(what)"
        case .cancelled:
            return "the mDNS operation was cancelled"
        case .avahi(let operation, let code, let message):
            return "\(operation) failed: \(message) (avahi error \(code))"
        }
    }

    /// Maps an avahi error code (`AVAHI_ERR_*`, negative) from `operation` to a typed error.
    init(avahiCode code: Int32, operation: String) {
        let message = String(cString: avahi_strerror(code))
        switch Int(code) {
        case AVAHI_ERR_NO_DAEMON:
            self = .daemonUnavailable(message)
        case AVAHI_ERR_DISCONNECTED:
            self = .disconnected
        case AVAHI_ERR_INVALID_HOST_NAME, AVAHI_ERR_INVALID_DOMAIN_NAME, AVAHI_ERR_INVALID_SERVICE_NAME,
            AVAHI_ERR_INVALID_SERVICE_TYPE, AVAHI_ERR_INVALID_SERVICE_SUBTYPE, AVAHI_ERR_INVALID_ADDRESS,
            AVAHI_ERR_INVALID_PORT, AVAHI_ERR_INVALID_RECORD, AVAHI_ERR_INVALID_KEY, AVAHI_ERR_INVALID_INTERFACE,
            AVAHI_ERR_INVALID_PROTOCOL, AVAHI_ERR_INVALID_FLAGS, AVAHI_ERR_INVALID_ARGUMENT,
            AVAHI_ERR_INVALID_TTL, AVAHI_ERR_INVALID_DNS_TYPE, AVAHI_ERR_INVALID_DNS_CLASS:
            self = .invalidArgument("\(operation): \(message)")
        case AVAHI_ERR_COLLISION:
            self = .collision(operation)
        case AVAHI_ERR_TIMEOUT, AVAHI_ERR_NOT_FOUND:
            self = .notFound("\(operation): \(message)")
        default:
            self = .avahi(operation: operation, code: code, message: message)
        }
    }
}

/// Throws the typed error for a negative avahi return code; returns non-negative codes unchanged.
@discardableResult
func check(_ result: Int32, _ operation: @autoclosure () -> String) throws(MDNSError) -> Int32 {
    guard result < 0 else { return result }
    throw MDNSError(avahiCode: result, operation: operation())
}

/// The error avahi recorded on `client` (for calls that return NULL instead of a code).
func lastError(of client: OpaquePointer, _ operation: String) -> MDNSError {
    MDNSError(avahiCode: avahi_client_errno(client), operation: operation)
}
