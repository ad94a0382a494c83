import Dispatch
import Foundation
import Synchronization

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
/// - `wait(atMost:)` returns the outcome once there is one, or nil after `atMost` (measured on
///   the monotonic clock: a wall clock set back does not stretch it).
/// - An IPv4 or IPv6 literal needs no lookup (`literal`).
final class BrokerLookup: Sendable {
    enum Outcome: Sendable {
        /// Every address of the name as a numeric host, in getaddrinfo's order (the order
        /// libmosquitto would have tried them in), without repeats.
        case addresses([String])
        /// getaddrinfo's error, as gai_strerror words it.
        case failed(String)
    }

    private let outcome = Mutex<Outcome?>(nil)
    private let done = DispatchSemaphore(value: 0)

    /// Whether `host` is an IP address literal (no lookup needed).
    static func literal(_ host: String) -> Bool {
        var v4 = in_addr()
        var v6 = in6_addr()
        return inet_pton(AF_INET, host, &v4) == 1 || inet_pton(AF_INET6, host, &v6) == 1
    }

    /// Starts looking `host` up on a new thread.
    static func start(_ host: String) -> BrokerLookup {
        let lookup = BrokerLookup()
        Thread {
            let result = resolve(host)
            lookup.outcome.withLock { $0 = result }
            lookup.done.signal()
        }.start()
        return lookup
    }

    /// The outcome, waiting at most `limit` for it.
    func wait(atMost limit: Duration) -> Outcome? {
        if let known = outcome.withLock({ $0 }) { return known }
        let (seconds, attoseconds) = limit.components
        let nanoseconds = Int(seconds) * 1_000_000_000 + Int(attoseconds / 1_000_000_000)
        guard done.wait(timeout: .now() + .nanoseconds(nanoseconds)) == .success else { return nil }
        return outcome.withLock { $0 }
    }

    private static func resolve(_ host: String) -> Outcome {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_family = AF_UNSPEC
        var list: UnsafeMutablePointer<addrinfo>?
        let code = getaddrinfo(host, nil, &hints, &list)
        guard code == 0, let list else { return .failed(String(cString: gai_strerror(code))) }
        defer { freeaddrinfo(list) }
        var addresses: [String] = []
        var cursor: UnsafeMutablePointer<addrinfo>? = list
        while let entry = cursor?.pointee {
            cursor = entry.ai_next
            guard let address = entry.ai_addr, let numeric = numericHost(address, length: entry.ai_addrlen),
                !addresses.contains(numeric)
            else { continue }
            addresses.append(numeric)
        }
        return addresses.isEmpty ? .failed("no address for \(host)") : .addresses(addresses)
    }

    private static func numericHost(_ address: UnsafeMutablePointer<sockaddr>, length: socklen_t) -> String? {
        var buffer = [CChar](repeating: 0, count: Int(NI_MAXHOST))
        guard getnameinfo(address, length, &buffer, socklen_t(buffer.count), nil, 0, NI_NUMERICHOST) == 0 else {
            return nil
        }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
