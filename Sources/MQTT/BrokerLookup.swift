import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The broker's host name looked up on a thread of its own, so the network thread keeps turning
/// (the watchdog sees it alive) and notices a stop while a name server takes its time: glibc's
/// getaddrinfo cannot be interrupted and waits out `timeout × attempts` per name server when
/// queries go unanswered, which libmosquitto's own lookup did inside the network thread.
///
/// Contract:
/// - `start` returns at once; the lookup thread owns its own copy of the name and ends when
///   getaddrinfo returns. An abandoned lookup (a stop meanwhile) just finishes unread.
/// - `wait(atMost:)` returns the outcome once there is one, or nil after `atMost`.
/// - An IPv4 or IPv6 literal needs no lookup (`literal`).
final class BrokerLookup: @unchecked Sendable {
    // @unchecked: `outcome` is guarded by `condition`.

    enum Outcome: Sendable {
        /// The name has at least one address.
        case resolved
        /// getaddrinfo's error, as gai_strerror words it.
        case failed(String)
    }

    private let condition = NSCondition()
    private var outcome: Outcome?

    /// Whether `host` is an IP address literal (no lookup needed).
    static func literal(_ host: String) -> Bool {
        var v4 = in_addr()
        var v6 = in6_addr()
        return inet_pton(AF_INET, host, &v4) == 1 || inet_pton(AF_INET6, host, &v6) == 1
    }

    /// Starts looking `host` up on a new thread.
    static func start(_ host: String) -> BrokerLookup {
        let lookup = BrokerLookup()
        let thread = Thread {
            let result = resolve(host)
            lookup.condition.lock()
            lookup.outcome = result
            lookup.condition.broadcast()
            lookup.condition.unlock()
        }
        thread.start()
        return lookup
    }

    /// The outcome, waiting at most `limit` for it.
    func wait(atMost limit: Duration) -> Outcome? {
        let deadline = Date(
            timeIntervalSinceNow: Double(limit.components.seconds)
                + Double(limit.components.attoseconds) / 1e18)
        condition.lock()
        defer { condition.unlock() }
        while outcome == nil {
            if !condition.wait(until: deadline) { break }
        }
        return outcome
    }

    private static func resolve(_ host: String) -> Outcome {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_family = AF_UNSPEC
        var list: UnsafeMutablePointer<addrinfo>?
        let code = getaddrinfo(host, nil, &hints, &list)
        guard code == 0, let list else { return .failed(String(cString: gai_strerror(code))) }
        freeaddrinfo(list)
        return .resolved
    }
}
