/// What a browser reports, in order.
public enum MDNSBrowseEvent: Sendable, Equatable {
    /// A new instance, resolved: host, port, TXT, and every address avahi had for the host at
    /// that moment.
    case found(MDNSService)
    /// A known instance changed: its addresses (the host moved to another IP, or gained or lost
    /// one), its TXT record (e.g. a firmware update changed `version`), or its port.
    case updated(MDNSService)
    /// The instance left the network (goodbye packet or expired records). Carries its last state.
    case removed(MDNSService)
    /// avahi has reported its cache and waited about a second for answers from the network.
    /// Reported once; instances that appear later are still reported.
    case allForNow
    /// An instance was seen but could not be resolved (e.g. its host never answered). Not terminal.
    case resolveFailed(name: String, error: MDNSError)
    /// Terminal: browsing failed or the daemon went away (`.disconnected`). The stream finishes
    /// right after this event.
    case failure(MDNSError)
}

/// Browses one service type and resolves every instance: `events` reports instances as they are
/// found, change and leave.
///
/// Contract:
/// - Made by `MDNSClient.browser(type:domain:protocol:)`. Keeps its client alive.
/// - Several instances, and several addresses per instance (IPv4 and IPv6, a 169.254 address
///   next to the routable one), are handled; an instance is reported once as `.found` however
///   many interfaces and IP protocols it is seen on.
/// - `events` finishes after `.failure`, after `cancel()`, when the client is closed, or when the
///   browser is released. Events are buffered until read.
/// - Browsing stops when `cancel()` is called or the browser is released; merely abandoning the
///   `events` loop does not stop it.
public final class MDNSBrowser: Sendable {
    /// The service type browsed, e.g. `_coap._udp`.
    public let type: String
    public let events: AsyncStream<MDNSBrowseEvent>
    let client: MDNSClient
    let core: BrowserCore

    init(client: MDNSClient, type: String, domain: String?, ipProtocol: MDNSIPProtocol) throws(MDNSError) {
        let (stream, sink) = AsyncStream.makeStream(of: MDNSBrowseEvent.self)
        self.type = type
        self.events = stream
        self.client = client
        self.core = BrowserCore(owner: client.core, type: type, domain: domain, ipProtocol: ipProtocol, sink: sink)
        try core.start()
    }

    deinit {
        core.cancel()
    }

    /// Stops browsing and finishes `events`. Idempotent.
    public func cancel() {
        core.cancel()
    }

    /// The instances currently known (found and not removed), sorted by name.
    public var services: [MDNSService] {
        core.loop.withLock { core.currentServices }
    }
}

extension MDNSClient {
    /// Starts browsing `type` (e.g. `_coap._udp`, `_mqtt._tcp`) in `domain` (nil: `local`).
    /// - Throws: `MDNSError.invalidArgument` for a malformed type, or the client's failure.
    public func browser(
        type: String, domain: String? = nil, protocol ipProtocol: MDNSIPProtocol = .any
    ) throws(MDNSError) -> MDNSBrowser {
        try MDNSBrowser(client: self, type: type, domain: domain, ipProtocol: ipProtocol)
    }

    /// Browses `type` once: collects instances until avahi reports "all for now" and every
    /// instance seen so far is resolved, waits `settle` for stragglers, and returns what is on
    /// the network then (sorted by name). Bounded by `timeout`: returns what was found by then,
    /// possibly nothing.
    /// - Throws: the browser's failure (e.g. `.disconnected`), or `.cancelled`.
    public func browse(
        type: String, domain: String? = nil, protocol ipProtocol: MDNSIPProtocol = .any,
        timeout: Duration = .seconds(5), settle: Duration = .milliseconds(300)
    ) async throws(MDNSError) -> [MDNSService] {
        let browser = try self.browser(type: type, domain: domain, protocol: ipProtocol)
        defer { browser.cancel() }
        let core = browser.core
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                await core.waitUntilSettled()
                try? await Task.sleep(for: settle)
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
            }
            await group.next()
            group.cancelAll()
        }
        if Task.isCancelled { throw .cancelled }
        return try core.loop.withLock { () throws(MDNSError) in
            if let failure = core.failure { throw failure }
            return core.currentServices
        }
    }
}
