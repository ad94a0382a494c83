import CoAP
import HubModel
import Logging
import MDNS
import TradfriModel

/// Where one gateway is; the bridge makes one locator per gateway it runs.
///
/// With a configured address that is the answer. With `address: auto` the locator
/// browses `_coap._udp` (instances `gw-<mac>`) and picks the gateway the stored credentials
/// belong to: the one whose mDNS name was recorded at pairing, or else the one that accepts our
/// identity and reports our gateway id (9081) — several gateways on one LAN are normal.
/// Routable addresses are preferred over 169.254.x.x. After a successful connection the address
/// is remembered and tried first; when that fails (the gateway got a new address from DHCP) the
/// next attempt browses again. Local only: there is no cloud fallback.
public actor GatewayLocator {
    public struct Candidate: Sendable, Equatable {
        public var name: String
        public var host: String
        public var port: UInt16
        public var firmware: String?
        public var addresses: [String]
    }

    private let configuredAddress: BridgeConfiguration.GatewayAddress
    private let credentials: GatewayCredentials
    private let mdns: MDNSConnection
    private let browseTimeout: Duration
    private let logger: Logger
    private var lastGood: (host: String, port: UInt16)?
    private var knownName: String?
    private var attemptsSinceSuccess = 0

    /// - Parameters:
    ///   - address: the entry's `address` (`auto`: browse mDNS).
    ///   - credentials: the gateway's stored credentials (its id, identity, last address, and the
    ///     mDNS name recorded at pairing).
    ///   - name: the gateway's name in the configuration, for log lines.
    ///   - browseTimeout: how long one mDNS browse lasts (`discovery.timeout`).
    public init(
        address: BridgeConfiguration.GatewayAddress, credentials: GatewayCredentials, name: String? = nil,
        mdns: MDNSConnection, browseTimeout: Duration
    ) {
        configuredAddress = address
        self.credentials = credentials
        self.mdns = mdns
        self.browseTimeout = browseTimeout
        knownName = credentials.mdnsName
        var logger = Logger(label: "discovery")
        if let name { logger[metadataKey: "gateway"] = "\(name)" }
        self.logger = logger
    }

    /// The locator of a resolved gateway.
    public init(gateway: ResolvedGateway, mdns: MDNSConnection, browseTimeout: Duration) {
        self.init(
            address: gateway.entry.address, credentials: gateway.credentials, name: gateway.name, mdns: mdns,
            browseTimeout: browseTimeout)
    }

    /// The address for the next connection attempt.
    public func resolve() async throws -> (host: String, port: UInt16) {
        if case .host(let host, let port) = configuredAddress { return (host, port) }
        attemptsSinceSuccess += 1
        if attemptsSinceSuccess == 1, let lastGood { return lastGood }
        if let found = await discover() {
            return (found.host, found.port)
        }
        let fallback = lastGood ?? (credentials.address, credentials.port)
        logger.warning(
            "gateway not found by mDNS; trying its last known address",
            metadata: [
                "gateway.id": "\(credentials.gatewayID)", "gateway.address": "\(fallback.host):\(fallback.port)",
            ])
        return fallback
    }

    /// Records a working address (the link connected to it).
    public func connected(host: String, port: UInt16) {
        lastGood = (host, port)
        attemptsSinceSuccess = 0
    }

    private func discover() async -> Candidate? {
        guard let client = await mdns.client() else { return nil }
        let candidates = await Self.browse(client, timeout: browseTimeout)
        guard !candidates.isEmpty else { return nil }
        if let knownName, let match = candidates.first(where: { $0.name == knownName }) {
            logger.info(
                "found the gateway by mDNS",
                metadata: [
                    "gateway.mdns_name": "\(match.name)", "gateway.address": "\(match.host):\(match.port)",
                ])
            return match
        }
        for candidate in candidates {
            if await Self.identify(candidate, credentials: credentials) {
                knownName = candidate.name
                logger.info(
                    "found the gateway by mDNS and identified it by its id",
                    metadata: [
                        "gateway.mdns_name": "\(candidate.name)", "gateway.id": "\(credentials.gatewayID)",
                        "gateway.address": "\(candidate.host):\(candidate.port)",
                    ])
                return candidate
            }
        }
        logger.warning(
            "mDNS shows gateways, but none is the paired one",
            metadata: [
                "gateway.id": "\(credentials.gatewayID)", "seen": "\(candidates.map(\.name))",
            ])
        return nil
    }

    /// All gateways advertised on the LAN, best address first.
    public static func browse(_ client: MDNSClient, timeout: Duration) async -> [Candidate] {
        let services = (try? await client.browse(type: "_coap._udp", protocol: .any, timeout: timeout)) ?? []
        return services.compactMap { service in
            guard let host = preferredAddress(service.addresses) else { return nil }
            return Candidate(
                name: service.name, host: host, port: service.port, firmware: service.txt["version"],
                addresses: service.addresses)
        }.sorted { ($0.name.hasPrefix("gw-") ? 0 : 1, $0.name) < ($1.name.hasPrefix("gw-") ? 0 : 1, $1.name) }
    }

    /// A routable IPv4 address first, then any other IPv4 but 169.254.x.x, then IPv6, and
    /// 169.254.x.x only when there is nothing else (a gateway that booted without DHCP keeps
    /// advertising its self-assigned address next to the real one).
    public static func preferredAddress(_ addresses: [String]) -> String? {
        let v4 = addresses.filter { !$0.contains(":") }
        if let routable = v4.first(where: { !$0.hasPrefix("169.254.") && !$0.hasPrefix("127.") }) { return routable }
        if let v6 = addresses.first(where: { $0.contains(":") && !$0.lowercased().hasPrefix("fe80") && $0 != "::1" }) {
            return v6
        }
        return v4.first { $0.hasPrefix("169.254.") } ?? addresses.first
    }

    /// Whether `candidate` is the gateway the credentials belong to.
    static func identify(_ candidate: Candidate, credentials: GatewayCredentials) async -> Bool {
        let id = await GatewayPairing.gatewayID(at: candidate.host, port: candidate.port, using: credentials)
        return id?.lowercased() == credentials.gatewayID.lowercased()
    }
}
