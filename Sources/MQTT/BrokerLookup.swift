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
/// - An IPv4 or IPv6 literal needs no lookup (`literal`); the caller connects to it directly.
final class BrokerLookup: @unchecked Sendable {
    // @unchecked: `outcome` is guarded by `condition`.

    enum Outcome: Sendable {
        /// The first address, as a numeric host string (IPv4 preferred, as libmosquitto's
        /// connect tries addresses in getaddrinfo's order and most brokers listen on IPv4).
        case address(String)
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
        defer { freeaddrinfo(list) }
        var first: String?
        var cursor: UnsafeMutablePointer<addrinfo>? = list
        while let entry = cursor?.pointee {
            cursor = entry.ai_next
            guard let address = entry.ai_addr, let numeric = numericHost(address, length: entry.ai_addrlen) else {
                continue
            }
            if entry.ai_family == AF_INET { return .address(numeric) }
            if first == nil { first = numeric }
        }
        return first.map(Outcome.address) ?? .failed("no address for \(host)")
    }

    private static func numericHost(_ address: UnsafeMutablePointer<sockaddr>, length: socklen_t) -> String? {
        var buffer = [CChar](repeating: 0, count: Int(NI_MAXHOST))
        guard getnameinfo(address, length, &buffer, socklen_t(buffer.count), nil, 0, NI_NUMERICHOST) == 0 else {
            return nil
        }
        let bytes = buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
        return String(decoding: bytes, as: UTF8.self)
    }
}
