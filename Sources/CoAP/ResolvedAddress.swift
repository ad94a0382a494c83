internal import CCoap
import Dispatch
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A resolved socket address, kept as bytes so it can cross from the resolver thread.
struct ResolvedAddress: Sendable, CustomStringConvertible {
    let family: Int32
    let bytes: [UInt8]
    let description: String

    /// Resolves `host` (an IPv4/IPv6 literal or a name) to the first UDP address. Name lookups
    /// block in getaddrinfo, so they run on a global queue, never on the libcoap queue. A
    /// cancelled task stops waiting at once (`CoAPError.sessionClosed`); the lookup, which
    /// cannot be interrupted (a name server that never answers holds it for timeout × attempts),
    /// finishes on its own and is dropped.
    static func resolve(host: String, port: UInt16) async throws(CoAPError) -> ResolvedAddress {
        if let literal = literal(host: host, port: port) { return literal }
        let waiter = LookupWaiter()
        let result: LookupWaiter.Outcome = await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                // Not started at all for a task cancelled already: an abandoned lookup holds a
                // worker thread for the resolver's whole timeout.
                guard waiter.wait(continuation) else { return }
                DispatchQueue.global().async {
                    waiter.finish(.found(lookup(host: host, port: port)))
                }
            }
        } onCancel: {
            waiter.finish(.cancelled)
        }
        switch result {
        case .cancelled: throw .sessionClosed
        case .found(nil): throw .unresolvableHost(host)
        case .found(let address?): return address
        }
    }

    static func literal(host: String, port: UInt16) -> ResolvedAddress? {
        let bare = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        var v4 = sockaddr_in()
        if inet_pton(AF_INET, bare, &v4.sin_addr) == 1 {
            v4.sin_family = sa_family_t(AF_INET)
            v4.sin_port = port.bigEndian
            return ResolvedAddress(family: AF_INET, bytes: bytes(of: v4), description: "\(bare):\(port)")
        }
        var v6 = sockaddr_in6()
        if inet_pton(AF_INET6, bare, &v6.sin6_addr) == 1 {
            v6.sin6_family = sa_family_t(AF_INET6)
            v6.sin6_port = port.bigEndian
            return ResolvedAddress(family: AF_INET6, bytes: bytes(of: v6), description: "[\(bare)]:\(port)")
        }
        return nil
    }

    private static func lookup(host: String, port: UInt16) -> ResolvedAddress? {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_DGRAM.rawValue)
        hints.ai_family = AF_UNSPEC
        var list: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(port), &hints, &list) == 0, let list else { return nil }
        defer { freeaddrinfo(list) }
        var cursor: UnsafeMutablePointer<addrinfo>? = list
        var fallback: ResolvedAddress?
        while let entry = cursor?.pointee {
            cursor = entry.ai_next
            guard let address = entry.ai_addr else { continue }
            let raw = Array(UnsafeRawBufferPointer(start: address, count: Int(entry.ai_addrlen)))
            let resolved = ResolvedAddress(family: entry.ai_family, bytes: raw, description: "\(host):\(port)")
            if entry.ai_family == AF_INET { return resolved }  // prefer IPv4, as the gateway's app does
            if fallback == nil { fallback = resolved }
        }
        return fallback
    }

    private static func bytes<T>(of value: T) -> [UInt8] {
        withUnsafeBytes(of: value) { Array($0) }
    }

    func coapAddress() -> coap_address_t {
        var address = coap_address_t()
        coap_address_init(&address)
        withUnsafeMutableBytes(of: &address.addr) { target in
            target.copyBytes(from: bytes.prefix(target.count))
        }
        address.size = socklen_t(bytes.count)
        return address
    }
}

/// One lookup's waiter: resumed once, by the lookup's result or by a cancellation, whichever
/// comes first (a cancellation may even come before the wait has begun).
private final class LookupWaiter: Sendable {
    enum Outcome: Sendable {
        case found(ResolvedAddress?)
        case cancelled
    }

    private struct State {
        var continuation: CheckedContinuation<Outcome, Never>?
        var outcome: Outcome?
    }

    private let state = Mutex(State())

    /// Waits with `continuation`; false when there is an outcome already (it is resumed at once).
    func wait(_ continuation: CheckedContinuation<Outcome, Never>) -> Bool {
        let ready: Outcome? = state.withLock { state in
            if let outcome = state.outcome { return outcome }
            state.continuation = continuation
            return nil
        }
        guard let ready else { return true }
        continuation.resume(returning: ready)
        return false
    }

    func finish(_ outcome: Outcome) {
        let waiting: CheckedContinuation<Outcome, Never>? = state.withLock { state in
            guard state.outcome == nil else { return nil }
            state.outcome = outcome
            defer { state.continuation = nil }
            return state.continuation
        }
        waiting?.resume(returning: outcome)
    }
}
