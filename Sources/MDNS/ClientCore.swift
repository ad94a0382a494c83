internal import CAvahiClient
import Logging

/// Something made from a client (a browser, a publisher, a host lookup) that must hear about the
/// client's fate. Both methods are called with the poll mutex held.
protocol ClientChild: AnyObject {
    /// The daemon's server state changed (registering, running, host name collision).
    func serverStateChanged(_ state: MDNSClient.State)
    /// The client failed (the daemon went away) or was closed. With `handlesFreed`, the child's C
    /// objects are about to be freed by `avahi_client_free` and must be forgotten, never freed.
    /// Without it they stay valid (the client still exists) and must not be freed from here: this
    /// runs inside avahi's client callback.
    func clientEnded(_ error: MDNSError, handlesFreed: Bool)
}

/// The state behind one `MDNSClient`: the `AvahiClient` handle, its server state, and every
/// child made from it. This object (not `MDNSClient`) is the C callbacks' userdata, so a
/// callback never holds the last reference to a public object: `MDNSClient.deinit`, which stops
/// the poll thread, can only ever run on a caller's thread.
final class ClientCore: @unchecked Sendable {
    // @unchecked: every `var` is guarded by `loop`'s mutex (see AvahiLoop); `let`s are Sendable.
    let loop: AvahiLoop
    let logger: Logger
    let stateSink: AsyncStream<MDNSClient.State>.Continuation
    /// Nil before `avahi_client_new` returned and after shutdown.
    private(set) var client: OpaquePointer?
    private(set) var state: MDNSClient.State = .registering
    /// Strong: a child's C objects use the child as userdata, so it must live as long as they do.
    private var children: [ObjectIdentifier: any ClientChild] = [:]

    init(loop: AvahiLoop, logger: Logger, stateSink: AsyncStream<MDNSClient.State>.Continuation) {
        self.loop = loop
        self.logger = logger
        self.stateSink = stateSink
    }

    /// Connects to avahi-daemon over the system bus and starts the poll thread.
    func connect() throws(MDNSError) {
        try loop.withLock { () throws(MDNSError) in
            var error: Int32 = 0
            // The state callback runs synchronously inside avahi_client_new (with its own client
            // pointer), then on the poll thread.
            let userdata = Unmanaged.passUnretained(self).toOpaque()
            guard let client = avahi_client_new(loop.api, AvahiClientFlags(0), clientStateCallback, userdata, &error)
            else {
                // Whatever the code (NO_DAEMON, a D-Bus error, access denied), the daemon is not
                // usable; keep avahi's text for the details.
                let reason = String(cString: avahi_strerror(error))
                logger.debug("avahi client could not connect", metadata: ["mdns.error": "\(reason)"])
                state = .failed(.daemonUnavailable(reason))
                stateSink.finish()
                throw .daemonUnavailable(reason)
            }
            self.client = client
        }
        do throws(MDNSError) {
            try loop.start()
        } catch {
            shutdown()
            throw error
        }
    }

    /// Called with the poll mutex held (or inside avahi_client_new, under `connect`'s lock).
    func stateChanged(client: OpaquePointer?, to avahiState: AvahiClientState) {
        let newState: MDNSClient.State
        switch avahiState {
        case AVAHI_CLIENT_S_RUNNING:
            newState = .running
        case AVAHI_CLIENT_S_COLLISION:
            newState = .hostNameCollision
        case AVAHI_CLIENT_FAILURE:
            let error = client.map { lastError(of: $0, "avahi client") } ?? .disconnected
            // A lost connection reports AVAHI_ERR_DISCONNECTED; that is what callers retry on.
            newState = .failed(error)
        default:  // S_REGISTERING, CONNECTING
            newState = .registering
        }
        guard newState != state else { return }
        if case .closed = state { return }
        if case .failed = state { return }
        state = newState
        stateSink.yield(newState)
        if case .failed(let error) = newState {
            logger.warning("avahi client failed", metadata: ["mdns.error": "\(error)"])
            stateSink.finish()
            for child in children.values { child.clientEnded(error, handlesFreed: false) }
        } else {
            logger.debug("avahi server state", metadata: ["mdns.state": "\(newState)"])
            for child in children.values { child.serverStateChanged(newState) }
        }
    }

    // MARK: Children (call with the poll mutex held)

    /// The live client handle, or the error that explains why there is none.
    func usableClient() throws(MDNSError) -> OpaquePointer {
        if case .failed(let error) = state { throw error }
        guard let client else { throw .closed }
        return client
    }

    func register(_ child: any ClientChild) {
        children[ObjectIdentifier(child)] = child
    }

    func unregister(_ child: any ClientChild) {
        children[ObjectIdentifier(child)] = nil
    }

    // MARK: Teardown

    /// Ends every child, stops the poll thread and frees the client (which frees every browser,
    /// resolver and entry group made from it). Idempotent. Not on the poll thread.
    func shutdown() {
        let (client, ended) = loop.withLock { () -> (OpaquePointer?, [any ClientChild]) in
            guard let client = self.client else { return (nil, []) }
            self.client = nil
            let ended = Array(children.values)
            children.removeAll()
            for child in ended { child.clientEnded(.closed, handlesFreed: true) }
            if case .failed = state {
            } else {
                state = .closed
                stateSink.yield(.closed)
            }
            stateSink.finish()
            return (client, ended)
        }
        loop.stop()
        if let client { avahi_client_free(client) }
        // The children were the userdata of C objects freed just now; they may go only after that.
        withExtendedLifetime(ended) {}
    }
}

/// `AvahiClientCallback`: runs on the poll thread with the mutex held, and once synchronously
/// inside `avahi_client_new` (under `connect`'s lock).
private let clientStateCallback: AvahiClientCallback = { client, state, userdata in
    guard let userdata else { return }
    // Unretained: the ClientCore is owned by MDNSClient, which frees the C client before letting
    // go of the core, so the core outlives every callback.
    let core = Unmanaged<ClientCore>.fromOpaque(userdata).takeUnretainedValue()
    core.stateChanged(client: client, to: state)
}
