import CoAP
import Logging
import ServiceLifecycle

/// `tradfri-bridge run` as one Service: finds the broker, builds the bridge and what runs beside
/// it (device pairing, the mDNS advertiser), and runs them in a ServiceGroup of their own, which
/// shuts them down in reverse order (advertiser, pairing, bridge) on graceful shutdown.
///
/// Everything from the broker lookup on happens inside the caller's lifecycle, so SIGTERM or
/// SIGINT during start-up (browsing mDNS for the broker takes up to `discovery.timeout`) stops
/// the daemon as cleanly as later: the lookup is cancelled and nothing else starts.
public final class BridgeDaemon: Service {
    private let configuration: BridgeConfiguration
    private let gateways: [ResolvedGateway]
    private let logger: Logger

    /// - Parameter gateways: every configured gateway with its credentials, in configuration order.
    public init(configuration: BridgeConfiguration, gateways: [ResolvedGateway], logger: Logger) {
        precondition(!gateways.isEmpty, "a bridge drives at least one gateway")
        self.configuration = configuration
        self.gateways = gateways
        self.logger = logger
    }

    public func run() async throws {
        let configuration = self.configuration
        let mdns = MDNSConnection(enabled: configuration.discovery.enabled)
        let broker = await cancelWhenGracefulShutdown { await BrokerLocator.locate(configuration, mdns: mdns) }
        guard !Task.isCancelled, !Task.isShuttingDownGracefully else {
            await mdns.closeAll()
            return
        }
        var pairingTXT: [String: String] = [:]
        // One hub per gateway, each with its own session, pacing, locator and recovery.
        let gateways = self.gateways
        let makeHubs: @Sendable () async -> [any Hub] = {
            var hubs: [any Hub] = []
            for gateway in gateways {
                let locator = GatewayLocator(
                    gateway: gateway, mdns: mdns, browseTimeout: .seconds(configuration.discovery.timeout))
                let entry = gateway.entry
                let setup = HubSetup(
                    name: gateway.name, credentials: gateway.credentials, keepAlive: entry.keepAlive,
                    requestTimeout: entry.requestTimeout, commandSpacing: entry.commandSpacing,
                    reconnectMaxDelay: entry.reconnectMaxDelay, auditInterval: entry.auditInterval)
                hubs.append(await TradfriHub(setup, locator: locator))
            }
            return hubs
        }
        let brokerAddress = (host: broker.host, port: broker.port, tls: broker.tls)
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = []
        if configuration.takeover.enabled {
            // The coordinator first: the group stops services in reverse order, so the bridge has
            // stopped driving before the coordinator releases the gateways.
            let bridge = TakeoverBridge(
                hubNames: Dictionary(gateways.map { ($0.gatewayID, $0.name) }, uniquingKeysWith: { first, _ in first })
            ) {
                try await Bridge.make(configuration: configuration, hubs: await makeHubs(), broker: brokerAddress)
            }
            let ownership = try GatewayOwnership(
                configuration: configuration,
                mqtt: try Bridge.mqttConfiguration(configuration, broker: brokerAddress),
                gatewayIDs: gateways.map(\.gatewayID)
            ) { event in bridge.ownershipChanged(event) }
            services = [.init(service: ownership), .init(service: bridge)]
        } else {
            let bridge = try await Bridge.make(
                configuration: configuration, hubs: await makeHubs(), broker: brokerAddress)
            services = [.init(service: bridge)]
            if configuration.pairing.enabled {
                let pairing = try PairingService(configuration: configuration, broker: broker) { type, data in
                    Task { @CoAPActor in bridge.context.event(type, data) }
                }
                await bridge.enablePairing(pairing)
                services.append(.init(service: PairingRunner(service: pairing)))
                pairingTXT = ["fingerprint": pairing.fingerprint, "pairing_path": "/pairing/v1"]
            }
        }
        let advertiser = Advertiser(
            advertisements: Advertiser.advertisements(
                for: configuration, gatewayIDs: gateways.map(\.gatewayID), broker: broker, extraTXT: pairingTXT),
            mdns: mdns)
        services.append(.init(service: advertiser))
        // No signals here: the caller's group catches them, and its graceful shutdown reaches
        // this group through the task.
        let group = ServiceGroup(configuration: .init(services: services, logger: logger))
        try await group.run()
    }
}
