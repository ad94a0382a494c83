import CoAP
import Logging
import ServiceLifecycle
import SystemdNotify

/// `tradfri-bridge run` as one Service: finds the broker, builds the bridge and what runs beside
/// it (device pairing, the web page, the mDNS advertiser), and runs them in a ServiceGroup of
/// their own, which shuts them down in reverse order (advertiser, web page, pairing, bridge) on
/// graceful shutdown.
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
        // One hub per gateway, each with its own session, pacing, locator and recovery.
        let gateways = self.gateways
        let makeHubs: @Sendable () async -> [any Hub] = {
            var hubs: [any Hub] = []
            for gateway in gateways {
                let locator = GatewayLocator(
                    gateway: gateway, mdns: mdns, browseTimeout: .seconds(configuration.discovery.timeout))
                let entry = gateway.entry
                var setup = HubSetup(
                    name: gateway.name, credentials: gateway.credentials, keepAlive: entry.keepAlive,
                    requestTimeout: entry.requestTimeout, commandSpacing: entry.commandSpacing,
                    reconnectMaxDelay: entry.reconnectMaxDelay, auditInterval: entry.auditInterval)
                setup.credentialsFile = entry.credentials
                setup.severalGateways = gateways.count > 1
                hubs.append(await TradfriHub(setup, locator: locator))
            }
            return hubs
        }
        let brokerAddress = (host: broker.host, port: broker.port, tls: broker.tls)
        // Under systemd (Type=notify): READY, STATUS and STOPPING, and the watchdog when
        // WatchdogSec= asks for it (the MQTT thread then comes round at least once a round).
        let systemd = NotifySocket().map(SystemdChannel.init)
        let watchdog = systemd == nil ? nil : NotifySocket.watchdogInterval()
        let mqttLoopWait = watchdog.map { SystemdWatchdog<ContinuousClock>.mqttLoopWait(forInterval: $0) }
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = []
        var pairingTXT: [String: String] = [:]
        let loops: any WatchedLoops
        if configuration.takeover.enabled {
            // The coordinator first: the group stops services in reverse order, so the bridge has
            // stopped driving before the coordinator releases the gateways.
            let bridge = TakeoverBridge(
                hubNames: Dictionary(gateways.map { ($0.gatewayID, $0.name) }, uniquingKeysWith: { first, _ in first }),
                systemd: systemd
            ) {
                try await Bridge.make(
                    configuration: configuration, hubs: await makeHubs(), broker: brokerAddress, systemd: systemd,
                    mqttLoopWait: mqttLoopWait)
            }
            var coordinatorMQTT = try Bridge.mqttConfiguration(configuration, broker: brokerAddress)
            coordinatorMQTT.maximumLoopWait = mqttLoopWait
            let ownership = try GatewayOwnership(
                configuration: configuration, mqtt: coordinatorMQTT, gatewayIDs: gateways.map(\.gatewayID)
            ) { event in bridge.ownershipChanged(event) }
            services = [
                .init(service: ownership), .init(service: bridge, failureTerminationBehavior: .gracefullyShutdownGroup),
            ]
            // A standby instance is running as it should: systemd may consider it started.
            systemd?.send([.ready], status: "takeover: waiting to drive the gateways")
            loops = TakeoverLoops(ownership: ownership, bridge: bridge)
            for (enabled, what) in [
                (configuration.web.enabled, "the web page"), (configuration.metrics.enabled, "/metrics"),
            ] where enabled {
                logger.notice("\(what) is not served with takeover.enabled (not yet supported)")
            }
        } else {
            let bridge = try await Bridge.make(
                configuration: configuration, hubs: await makeHubs(), broker: brokerAddress, systemd: systemd,
                mqttLoopWait: mqttLoopWait)
            services = [
                .init(service: bridge),
                .init(
                    service: HealthReporter(
                        health: bridge.health, interval: .seconds(configuration.health.interval), clock: .continuous)),
            ]
            if configuration.metrics.enabled {
                services.append(
                    .init(service: MetricsEndpoint(health: bridge.health, listen: configuration.metrics.listen)))
            }
            // One audit log for pairing and the web page's decisions.
            let audit = AuditLog(path: configuration.pairing.auditLog)
            var pairing: PairingService?
            if configuration.pairing.enabled {
                let service = try PairingService(configuration: configuration, broker: broker, audit: audit) {
                    type, data in
                    Task { @CoAPActor in bridge.context.event(type, data) }
                }
                await bridge.enablePairing(service)
                services.append(.init(service: PairingRunner(service: service)))
                pairingTXT = ["fingerprint": service.fingerprint, "pairing_path": "/pairing/v1"]
                pairing = service
            }
            if configuration.web.enabled {
                let web = await WebServer(configuration: configuration, bridge: bridge, pairing: pairing, audit: audit)
                services.append(.init(service: web))
            }
            loops = BridgeLoops(bridge: bridge)
        }
        let advertiser = Advertiser(
            advertisements: Advertiser.advertisements(
                for: configuration, gatewayIDs: gateways.map(\.gatewayID), broker: broker, extraTXT: pairingTXT),
            mdns: mdns)
        services.append(.init(service: advertiser))
        if let systemd {
            // Last, so it is the first to stop on shutdown (nothing is pinged while stopping).
            services.append(
                .init(
                    service: SystemdWatchdog(channel: systemd, loops: loops, interval: watchdog, clock: .continuous)))
        }
        // No signals here: the caller's group catches them, and its graceful shutdown reaches
        // this group through the task.
        let group = ServiceGroup(configuration: .init(services: services, logger: logger))
        try await group.run()
    }
}
