/// A DNS-SD service to advertise, e.g. the bridge's MQTT broker (`_secure-mqtt._tcp`, 8883) or
/// the gateway simulator (`gw-<mac>` of type `_coap._udp`, 5684, TXT `version`).
public struct MDNSAdvertisement: Sendable, Equatable {
    /// The instance name wanted. If another host uses it, avahi's alternative (`Name #2`) is
    /// taken instead; `MDNSPublisher.name` tells which.
    public var name: String
    /// The service type, e.g. `_coap._udp`.
    public var type: String
    public var port: UInt16
    public var txt: [String: String]
    /// nil: `local`.
    public var domain: String?
    /// The SRV target host, e.g. `TRADFRI-Gateway-a0cc2b6f6b31.local`. nil: this host's name.
    /// A host name other than the daemon's own resolves only if `addresses` are given too.
    public var hostName: String?
    /// Addresses to publish (A/AAAA, without reverse PTR records) for `hostName`. Needs `hostName`.
    public var addresses: [String]
    public var ipProtocol: MDNSIPProtocol

    public init(
        name: String, type: String, port: UInt16, txt: [String: String] = [:], domain: String? = nil,
        hostName: String? = nil, addresses: [String] = [], ipProtocol: MDNSIPProtocol = .any
    ) {
        self.name = name
        self.type = type
        self.port = port
        self.txt = txt
        self.domain = domain
        self.hostName = hostName
        self.addresses = addresses
        self.ipProtocol = ipProtocol
    }
}

/// What happens to an advertisement, in order.
public enum MDNSPublishEvent: Sendable, Equatable {
    /// Probing is over and the service is announced under `name`.
    case registered(name: String)
    /// `from` is taken on the network; publishing again as `to` (avahi's alternative name).
    case renamed(from: String, to: String)
    /// The daemon withdrew the records while re-establishing its own host name (after a host
    /// name collision or similar). They are re-published automatically once it is running.
    case withdrawn
    /// Terminal: publishing failed, or the daemon went away (`.disconnected`). The stream finishes.
    case failure(MDNSError)
}

/// One advertisement (an avahi entry group), kept on the network until `withdraw()` or release.
///
/// Contract:
/// - Made by `MDNSClient.publish(_:)`, which returns at once (argument errors throw there);
///   registration completes in the background: wait with `registeredName(within:)` or `events`.
/// - Name collisions are resolved by renaming (`Name #2`, `Name #3`, ...), reported as
///   `.renamed` and then `.registered(name:)` with the name in use.
/// - Keeps its client alive. Withdrawn (goodbye packets sent by the daemon) on `withdraw()`,
///   on release, and when the client closes.
public final class MDNSPublisher: Sendable {
    public let events: AsyncStream<MDNSPublishEvent>
    let client: MDNSClient
    let core: PublisherCore

    init(client: MDNSClient, advertisement: MDNSAdvertisement) throws(MDNSError) {
        let (stream, sink) = AsyncStream.makeStream(of: MDNSPublishEvent.self)
        self.events = stream
        self.client = client
        self.core = PublisherCore(owner: client.core, advertisement: advertisement, sink: sink)
        try core.start()
    }

    deinit {
        core.withdraw()
    }

    /// The instance name in use, or being probed (changes after a collision).
    public var name: String {
        core.loop.withLock { core.name }
    }

    /// Whether the service is currently registered on the network.
    public var isRegistered: Bool {
        core.loop.withLock { core.isRegistered }
    }

    /// Waits until the service is registered and returns the name in use (at once if it is).
    /// - Throws: `.timeout` if not registered within `timeout`; the publishing failure; the
    ///   client's failure (`.disconnected`); `.closed` after `withdraw()`; `.cancelled`.
    public func registeredName(within timeout: Duration = .seconds(10)) async throws(MDNSError) -> String {
        let core = self.core
        let timer = Task {
            try? await Task.sleep(for: timeout)
            if !Task.isCancelled { core.registrationTimedOut(after: timeout) }
        }
        defer { timer.cancel() }
        return try await core.waitForRegistration().get()
    }

    /// Replaces the TXT record (sent to the network at once if registered, else used when it is).
    public func update(txt: [String: String]) throws(MDNSError) {
        try core.update(txt: txt)
    }

    /// Withdraws the advertisement and finishes `events`. Idempotent.
    public func withdraw() {
        core.withdraw()
    }
}

extension MDNSClient {
    /// Starts advertising. Returns at once; see `MDNSPublisher`.
    /// - Throws: `.invalidArgument` (bad name, type, TXT or address), the client's failure.
    public func publish(_ advertisement: MDNSAdvertisement) throws(MDNSError) -> MDNSPublisher {
        try MDNSPublisher(client: self, advertisement: advertisement)
    }
}
