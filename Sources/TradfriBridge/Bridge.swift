import CoAP
import Foundation
import Logging
import MQTT
import ServiceLifecycle
import TradfriModel

/// The daemon: one gateway session, one broker connection, and the features between them.
///
/// `Bridge.make(...)` builds the whole graph from the configuration (tests build the same graph
/// in-process); `run()` runs until graceful shutdown (SIGTERM/SIGINT through the ServiceGroup),
/// then publishes `bridge/state` offline, disconnects from the broker and closes the DTLS
/// session.
///
/// Every gateway change, connection event and MQTT message becomes a `BridgeEvent` that each
/// feature sees in order, on the libcoap actor (so a notification travels from the DTLS socket
/// to `mosquitto_publish` without a thread hop).
@CoAPActor
public final class Bridge: Service {
    public let context: BridgeContext
    public let mqtt: MQTTClient
    /// The request/response API; features added later (pairing) register their verbs here.
    public let requests: BridgeRequests
    private let locator: GatewayLocator
    private var features: [any BridgeFeature] = []
    private let logger = Logger(label: "bridge")
    private var subscribed = false

    init(context: BridgeContext, mqtt: MQTTClient, locator: GatewayLocator, requests: BridgeRequests) {
        self.context = context
        self.mqtt = mqtt
        self.locator = locator
        self.requests = requests
        context.dispatcher = { [weak self] event in self?.dispatch(event) }
    }

    /// Builds the bridge for `configuration` with the stored gateway `credentials`.
    /// - Parameters:
    ///   - locator: where to find the gateway (asked before every connection attempt).
    ///   - broker: the broker to use.
    public static func make(
        configuration: BridgeConfiguration, credentials: GatewayCredentials, locator: GatewayLocator,
        broker: (host: String, port: UInt16, tls: Bool)
    ) throws -> Bridge {
        var settings = GatewayLink.Settings()
        settings.keepAlive = .seconds(configuration.gateway.keepAlive)
        settings.pingTimeout = .seconds(min(5, configuration.gateway.keepAlive))
        settings.requestTimeout = .seconds(configuration.gateway.requestTimeout)
        settings.handshakeTimeout = .seconds(max(configuration.gateway.requestTimeout, 5))
        settings.reconnectMaxDelay = .seconds(configuration.gateway.reconnectMaxDelay)
        let link = GatewayLink(identity: credentials.identity, key: credentials.psk, settings: settings) {
            try await locator.resolve()
        }
        var mirrorSettings = GatewayMirror.Settings()
        let audit = configuration.gateway.auditInterval
        mirrorSettings.auditInterval = audit > 0 ? .seconds(audit) : nil
        let mirror = GatewayMirror(link: link, settings: mirrorSettings)

        let mqttConfiguration = try mqttConfiguration(configuration, broker: broker)
        let client = try MQTTClient(mqttConfiguration)
        let outbox = MQTTOutbox(client: client)
        let queue = CommandQueue(link: link, spacing: .seconds(configuration.gateway.commandSpacing)) {
            [weak mirror] target, command in
            guard let mirror else { return (nil, nil) }
            switch target {
            case .device(let id):
                guard let device = mirror.devices[id] else { return (nil, nil) }
                return CommandPlanner.plan(command, for: device)
            case .group(let id):
                guard let group = mirror.groups[id] else { return (nil, nil) }
                // A group part (CommandPlanner.split) becomes one write; members have their own commands.
                return (CommandPlanner.plan(command, for: group, members: []).write, nil)
            }
        }
        let context = BridgeContext(
            configuration: configuration, link: link, mirror: mirror, outbox: outbox, queue: queue,
            gatewayID: credentials.gatewayID)
        let requests = BridgeRequests(context: context)
        let bridge = Bridge(context: context, mqtt: client, locator: locator, requests: requests)
        let states = StatePublisher(context: context)
        bridge.features = [
            BridgeTopics(context: context),
            states,
            CommandHandler(context: context, states: states),
            requests,
        ]
        if configuration.homeAssistant.enabled {
            bridge.features.append(HomeAssistantDiscovery(context: context))
        }
        return bridge
    }

    static func mqttConfiguration(
        _ configuration: BridgeConfiguration, broker: (host: String, port: UInt16, tls: Bool)
    ) throws -> MQTTConfiguration {
        let mqtt = configuration.mqtt
        var password = mqtt.password
        if let file = mqtt.passwordFile {
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
                throw ConfigurationError(file: file, line: nil, key: "mqtt.password_file", message: "cannot be read")
            }
            password = text.split(whereSeparator: \.isNewline).first.map(String.init) ?? ""
        }
        let tls =
            broker.tls
            ? MQTTTLSConfiguration(
                caFile: mqtt.caFile, certificateFile: mqtt.certFile, keyFile: mqtt.keyFile,
                insecure: mqtt.insecure)
            : nil
        let will = MQTTMessage(
            topic: "\(mqtt.baseTopic)/bridge/state", text: #"{"state":"offline"}"#, qos: .atLeastOnce,
            retain: true)
        return MQTTConfiguration(
            host: broker.host, port: broker.port, clientID: mqtt.clientID, username: mqtt.user, password: password,
            tls: tls, keepAlive: .seconds(mqtt.keepAlive), protocolVersion: mqtt.version == 4 ? .v311 : .v5,
            cleanSession: true, will: will,
            reconnect: MQTTReconnectPolicy(minimumDelay: .seconds(1), maximumDelay: .seconds(60)), tcpNoDelay: true)
    }

    /// Adds a feature (Home Assistant discovery, requests, pairing) before `run()`.
    public func add(_ feature: any BridgeFeature) {
        features.append(feature)
    }

    // MARK: Running

    /// Runs until graceful shutdown: the gateway link and the MQTT event listener are child
    /// tasks of this one. On shutdown the link's task is cancelled and awaited (the DTLS session
    /// is closed, so devices go offline on MQTT while the broker is still there), then
    /// `bridge/state` offline is published and the broker disconnected, which ends the listener.
    public func run() async throws {
        context.mirror.onChange { [weak self] change in self?.gatewayChanged(change) }
        try mqtt.start()
        let events = mqtt.events
        let link = context.link
        await withDiscardingTaskGroup { group in
            group.addTask { [weak self] in
                for await event in events {
                    guard let self else { return }
                    await self.mqttEvent(event)
                }
            }
            await withDiscardingTaskGroup { gateway in
                gateway.addTask {
                    await link.run(
                        { [weak self] event in self?.linkEvent(event) },
                        // While each session lasts: observe everything afresh and keep it equal.
                        whileConnected: { [weak self] in await self?.context.mirror.serve() })
                }
                try? await gracefulShutdown()
                logger.info("stopping")
                dispatch(.stopping)
                gateway.cancelAll()
            }
            await disconnect()
        }
    }

    /// Publishes `bridge/state` offline (if connected) and disconnects from the broker.
    private func disconnect() async {
        let offline = MQTTMessage(
            topic: context.topic("bridge/state"), text: #"{"state":"offline"}"#, qos: .atLeastOnce,
            retain: true)
        if mqtt.isConnected {
            do {
                // A broker that is there acknowledges in milliseconds; the wait is bounded so a
                // stop stays well within systemd's and the user's patience (2 s in the tests).
                try await mqtt.publish(offline, acknowledgedWithin: .seconds(1))
            } catch {
                logger.warning("could not publish offline before stopping", metadata: ["error": "\(error)"])
            }
        }
        await mqtt.disconnect()
        logger.info("stopped")
    }

    // MARK: Events

    func dispatch(_ event: BridgeEvent) {
        for feature in features { feature.handle(event) }
    }

    private func linkEvent(_ event: GatewayLink.Event) {
        switch event {
        case .connected(let host, let port):
            context.gatewayAddress = "\(host):\(port)"
            Task { [locator] in await locator.connected(host: host, port: port) }
            dispatch(.gatewayConnected(address: "\(host):\(port)"))
        case .disconnected(let reason):
            dispatch(.gatewayDisconnected(reason: reason.map { "\($0)" } ?? "closed"))
        case .connectFailed(let error):
            if case .unknownIdentity = error {
                logger.error(
                    "the gateway no longer knows our identity; pair again with 'tradfri-bridge auth'",
                    metadata: ["gateway.id": "\(context.gatewayIDFromCredentials)"])
            }
        }
    }

    private func gatewayChanged(_ change: GatewayMirror.Change) {
        switch change {
        case .rebootAnnounced:
            context.link.reset(reason: "the gateway is rebooting")
            return
        case .details(let details) where details.id != context.gatewayIDFromCredentials:
            logger.error(
                "this gateway is not the one the credentials belong to",
                metadata: ["gateway.id": "\(details.id)", "expected": "\(context.gatewayIDFromCredentials)"])
        default:
            break
        }
        let previous = context.names
        let renamed: Bool
        switch change {
        case .deviceAdded, .deviceRemoved, .groupAdded, .groupRemoved:
            renamed = true
        case .deviceChanged(let device, let old):
            renamed = device.name != old.name
        case .groupChanged(let group, let old):
            renamed = group.name != old.name
        default:
            renamed = false
        }
        if renamed { recomputeNames() }
        dispatch(.gateway(change))
        // Comparing every name costs more than the rest of a state change: only after a recompute.
        if renamed, context.names != previous { dispatch(.namesChanged(previous: previous)) }
    }

    private func recomputeNames() {
        context.names = FriendlyNames(
            devices: context.mirror.devices.values.map { ($0.id, $0.name, $0.kind.description) },
            groups: context.mirror.groups.values.map { ($0.id, $0.name) })
    }

    private func mqttEvent(_ event: MQTTEvent) async {
        switch event {
        case .connected:
            logger.info("connected to the broker", metadata: ["mqtt.server": "\(mqtt.configuration)"])
            dispatch(.brokerConnected)
            context.outbox.republishAll(first: [context.topic("bridge/state")])
            if !subscribed {
                // The client re-issues granted subscriptions after every reconnect.
                let filters = features.flatMap(\.subscriptions)
                do {
                    // With MQTT 5, retain-as-published lets the bridge see (and refuse) a retained
                    // command as soon as it is published, not only at the next restart.
                    let options: MQTTSubscribeOptions =
                        mqtt.configuration.protocolVersion == .v5 ? [.retainAsPublished] : []
                    try await mqtt.subscribe(filters, qos: .atLeastOnce, options: options)
                    subscribed = true
                } catch {
                    logger.error("subscribing failed", metadata: ["error": "\(error)", "filters": "\(filters)"])
                }
            }
        case .disconnected(.requested):
            logger.info("disconnected from the broker")
            dispatch(.brokerDisconnected)
        case .disconnected(let reason):
            logger.warning("lost the broker", metadata: ["reason": "\(reason)"])
            dispatch(.brokerDisconnected)
        case .connectionRefused(let refusal):
            logger.error("the broker refused the connection", metadata: ["reason": "\(refusal)"])
        case .connectionFailed(let error):
            logger.warning("cannot reach the broker", metadata: ["error": "\(error)"])
        case .message(let message):
            dispatch(.message(message))
        }
    }
}
