import Logging
import MDNS

/// The process's connection to avahi-daemon, made when first needed and made again after the
/// daemon went away and came back. Without a reachable daemon it warns once (clearly) and
/// callers fall back to configured addresses; nothing waits for a daemon to appear.
public actor MDNSConnection {
    var current: MDNSClient?
    /// After `closeAll()` no new client is made.
    public internal(set) var isShutDown = false
    private var warned = false
    private let logger: Logger
    /// False with `discovery.enabled: false`: `client()` is then always nil.
    public nonisolated let enabled: Bool

    public init(enabled: Bool, logger: Logger = Logger(label: "discovery")) {
        self.enabled = enabled
        self.logger = logger
    }

    /// A connection that starts with `client`, one the caller made (after checking that
    /// avahi-daemon answers, say); later clients are made as usual.
    public init(client: MDNSClient, logger: Logger = Logger(label: "discovery")) {
        enabled = true
        current = client
        self.logger = logger
    }

    /// A working client, or nil (mDNS disabled or no daemon reachable).
    public func client() -> MDNSClient? {
        guard enabled, !isShutDown else { return nil }
        if let current {
            switch current.state {
            case .failed, .closed: self.current = nil
            default: return current
            }
        }
        do {
            let client = try MDNSClient()
            current = client
            if warned {
                logger.notice("mDNS is available again")
                warned = false
            }
            return client
        } catch {
            if !warned {
                logger.warning(
                    "mDNS (avahi-daemon) is not reachable; using configured addresses only",
                    metadata: ["error": "\(error)"])
                warned = true
            }
            return nil
        }
    }
}
