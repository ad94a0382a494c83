internal import CAvahiClient
import Logging

/// A connection to the local avahi-daemon (over the D-Bus system bus), from which browsers,
/// publishers and host lookups are made.
///
/// Contract:
/// - `init` connects synchronously (a few local D-Bus round trips) and throws
///   `MDNSError.daemonUnavailable` at once if there is no system bus or no avahi-daemon on it.
///   Nothing waits for a daemon to appear.
/// - avahi runs its own thread; results reach callers through `AsyncStream`s and async methods.
///   Every method may be called from any thread or task.
/// - If the daemon goes away later, `stateUpdates` yields `.failed(.disconnected)` and finishes,
///   every browser's stream yields `.failure(.disconnected)` and finishes, and every publisher
///   stops the same way. The client is then dead for good: make a new `MDNSClient` (and new
///   browsers and publishers) to retry.
/// - Browsers and publishers keep their client alive. `close()` (or dropping the last reference)
///   stops everything made from this client: streams finish, advertisements are withdrawn.
/// - Which daemon: libdbus reads `DBUS_SYSTEM_BUS_ADDRESS` once per process (default
///   `unix:path=/run/dbus/system_bus_socket`), so every client in a process talks to the same
///   daemon unless that address is a path whose target changes between connections (the test
///   lab does that; see `NetworkLab`).
public final class MDNSClient: Sendable {
    /// The avahi-daemon's server state, as this client sees it.
    public enum State: Sendable, Equatable {
        /// Connected; the daemon is still establishing its host name. Advertisements wait for
        /// `.running`; browsing already works.
        case registering
        case running
        /// The daemon's host name collided with another host's; it is choosing a new one.
        /// Advertisements are withdrawn until `.running` and then re-published automatically.
        case hostNameCollision
        /// Terminal: the connection failed (normally `.disconnected`).
        case failed(MDNSError)
        /// Terminal: `close()` was called.
        case closed
    }

    let core: ClientCore
    /// Every state change, in order. Finishes after `.failed` or `.closed`.
    public let stateUpdates: AsyncStream<State>

    /// Connects to avahi-daemon.
    /// - Throws: `MDNSError.daemonUnavailable` (no system bus, no avahi-daemon) without waiting.
    public init(logger: Logger = Logger(label: "mdns")) throws(MDNSError) {
        let (stream, sink) = AsyncStream.makeStream(of: State.self)
        stateUpdates = stream
        core = ClientCore(loop: try AvahiLoop(), logger: logger, stateSink: sink)
        try core.connect()
        logger.debug("connected to avahi-daemon", metadata: ["mdns.host": "\(hostName)"])
    }

    deinit {
        core.shutdown()
    }

    /// Stops every browser, publisher and lookup made from this client and disconnects.
    /// Idempotent; also done when the client is released.
    public func close() {
        core.shutdown()
    }

    public var state: State {
        core.loop.withLock { core.state }
    }

    /// The daemon's fully qualified host name, e.g. `bridge.local`; "" once closed or failed.
    public var hostName: String {
        core.loop.withLock {
            guard let client = try? core.usableClient() else { return "" }
            return copyString(avahi_client_get_host_name_fqdn(client))
        }
    }
}
