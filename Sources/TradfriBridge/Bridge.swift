import CoAP
import Foundation
import HubModel
import Logging
import MQTT
import ServiceLifecycle

/// The daemon: the hubs (one session each), one broker connection, and the features between
/// them.
///
/// `Bridge.make(...)` builds the whole graph from the configuration (tests build the same graph
/// in-process); `run()` runs until graceful shutdown (SIGTERM/SIGINT through the ServiceGroup),
/// then closes every hub's session, publishes `bridge/state` offline and disconnects from the
/// broker.
///
/// Every hub change, connection event and MQTT message becomes a `BridgeEvent` that each
/// feature sees in order, on the libcoap actor (so a notification travels from the DTLS socket
/// to `mosquitto_publish` without a thread hop).
@CoAPActor
public final class Bridge: Service {
    public let context: BridgeContext
    public let mqtt: MQTTClient
    /// The request/response API; features added later (pairing) register their verbs here.
    public let requests: BridgeRequests
    /// `bridge/health` (the reporter service publishes it periodically).
    public let health: BridgeHealth
    /// What systemd is told (READY, STATUS, STOPPING), when it listens.
    private(set) var status: ServiceStatus?
    private var features: [any BridgeFeature] = []
    /// MQTT → hubs; the web page's controls use it too.
    private(set) var commands: CommandHandler?
    private let logger = Logger(label: "bridge")
    private var subscribed = false

    init(context: BridgeContext, mqtt: MQTTClient, requests: BridgeRequests, health: BridgeHealth) {
        self.context = context
        self.mqtt = mqtt
        self.requests = requests
        self.health = health
        context.dispatcher = { [weak self] event in self?.dispatch(event) }
    }

    /// Builds the bridge for `configuration` with its hubs.
    /// - Parameters:
    ///   - hubs: one per configured gateway, in configuration order.
    ///   - broker: the broker to use.
    ///   - systemd: systemd's notify socket, when the bridge runs under it (`Type=notify`).
    ///   - mqttLoopWait: see `MQTTConfiguration.maximumLoopWait` (for the watchdog).
    public static func make(
        configuration: BridgeConfiguration, hubs: [any Hub], broker: (host: String, port: UInt16, tls: Bool),
        systemd: SystemdChannel? = nil, mqttLoopWait: Duration? = nil
    ) throws -> Bridge {
        var mqttConfiguration = try mqttConfiguration(configuration, broker: broker)
        mqttConfiguration.maximumLoopWait = mqttLoopWait
        let client = try MQTTClient(mqttConfiguration)
        let outbox = MQTTOutbox(client: client)
        let context = BridgeContext(configuration: configuration, hubs: hubs, outbox: outbox)
        let requests = BridgeRequests(context: context)
        let health = BridgeHealth(context: context, mqtt: client)
        health.register(in: requests)
        let bridge = Bridge(context: context, mqtt: client, requests: requests, health: health)
        let states = StatePublisher(context: context)
        let commands = CommandHandler(context: context, states: states)
        bridge.commands = commands
        bridge.features = [
            BridgeTopics(context: context),
            states,
            commands,
            requests,
            health,
        ]
        if configuration.homeAssistant.enabled {
            bridge.features.append(HomeAssistantDiscovery(context: context))
        }
        if let systemd {
            // Last: it sees a gateway's first sync once every other feature has published it.
            let status = ServiceStatus(context: context, channel: systemd)
            bridge.status = status
            bridge.features.append(status)
        }
        #if DEBUG
        if ProcessInfo.processInfo.environment["TRADFRI_DEBUG_HOOKS"] == "1" {
            requests.registerDebugVerbs(mqtt: client)
        }
        #endif
        return bridge
    }

    nonisolated static func mqttConfiguration(
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
        // Takeover: every instance needs a client id of its own, also with a shared configuration.
        var clientID = mqtt.clientID
        if configuration.takeover.enabled, let instance = configuration.takeover.instanceID, instance != clientID {
            clientID += "-\(instance)"
        }
        return MQTTConfiguration(
            host: broker.host, port: broker.port, clientID: clientID, username: mqtt.user, password: password,
            tls: tls, keepAlive: .seconds(mqtt.keepAlive), protocolVersion: mqtt.version == 4 ? .v311 : .v5,
            cleanSession: true, will: will,
            reconnect: MQTTReconnectPolicy(minimumDelay: .seconds(1), maximumDelay: .seconds(60)), tcpNoDelay: true)
    }

    /// The watchdog's probe: runs on the libcoap executor, and refreshes systemd's status line.
    func probe() {
        status?.update()
    }

    /// Adds a feature (Home Assistant discovery, requests, pairing) before `run()`.
    public func add(_ feature: any BridgeFeature) {
        features.append(feature)
    }

    // MARK: Running

    /// Runs until graceful shutdown (or cancellation): connects to the broker and runs every hub.
    /// On shutdown the hubs' tasks are cancelled and awaited (their sessions are closed, so
    /// devices go offline on MQTT while the broker is still there), then `bridge/state` offline
    /// is published and the broker disconnected, which ends the MQTT event listener.
    public func run() async throws {
        try mqtt.start()
        await withDiscardingTaskGroup { group in
            group.addTask { [weak self] in
                try? await gracefulShutdown()
                await self?.stop()
            }
            await runConnected(driving: Set(context.hubs.map(\.name)))
            group.cancelAll()
        }
    }

    // MARK: Running while this instance drives (takeover)

    /// The task of each hub that runs.
    private var hubTasks: [String: Task<Void, Never>] = [:]
    /// Whether `runConnected` runs (the hubs' tasks are started as they come).
    private var running = false
    /// Takeover: a set given to `drive(_:)` before `run(driving:)` started.
    private var setBeforeRun: Set<String>?
    /// How the run ends once asked to (true: a graceful stop), and who waits for it.
    private var endRequested: Bool?
    private var waitForEnd: CheckedContinuation<Bool, Never>?

    /// Runs while this instance drives any of the hubs (`takeover.enabled`; `TakeoverBridge`
    /// calls it): connects to the broker and runs exactly the hubs named in `driving`, changed by
    /// `drive(_:)`. A hub given up stops at once and publishes nothing more (no availability, no
    /// states: its new owner publishes them); the run ends when nothing is driven any more (then
    /// without publishing `bridge/state` offline: the new owner's `online` may already be there,
    /// and the retained topics are left as they are for it) or on `stop()` (a graceful stop as
    /// `run()` does it: devices and `bridge/state` offline, before the coordinator releases the
    /// gateways).
    func run(driving: Set<String>) async {
        // Asked to end (or given everything up) before it started: nothing is connected.
        guard endRequested == nil else { return }
        let driving = setBeforeRun ?? driving
        guard !driving.isEmpty else { return }
        context.drivenHubs = driving
        try? mqtt.start()
        await runConnected(driving: driving)
    }

    /// The run of `run()` and `run(driving:)` once the broker connection is started: the MQTT
    /// event listener, a task per driven hub, until `end(shutdown:)`; then the hubs' tasks are
    /// cancelled and awaited, and the broker disconnected.
    private func runConnected(driving: Set<String>) async {
        let events = mqtt.events
        await withDiscardingTaskGroup { group in
            group.addTask { [weak self] in
                for await event in events {
                    guard let self else { return }
                    await self.mqttEvent(event)
                }
            }
            running = true
            startHubs(driving)
            // Takeover: systemd's status line says what this instance drives from now on.
            if context.drivenHubs != nil { status?.update() }
            let shutdown: Bool = await withCheckedContinuation { continuation in
                if let endRequested { continuation.resume(returning: endRequested) } else { waitForEnd = continuation }
            }
            if shutdown {
                logger.info("stopping")
                dispatch(.stopping)
            }
            let tasks = hubTasks.values
            for task in tasks { task.cancel() }
            for task in tasks { await task.value }
            hubTasks = [:]
            await disconnect(publishOffline: shutdown)
        }
    }

    /// Starts a task for each hub of `hubs` that has none.
    private func startHubs(_ hubs: Set<String>) {
        for hub in context.hubs where hubs.contains(hub.name) && hubTasks[hub.name] == nil {
            let name = hub.name
            if context.drivenHubs != nil { logger.info("driving gateway", metadata: ["gateway": "\(name)"]) }
            hub.setEventHandler { [weak self] event in self?.hubEvent(name, event) }
            hubTasks[name] = Task { await hub.run() }
        }
    }

    /// Takeover: drive exactly the hubs named in `hubs` from now on (see `run(driving:)`).
    func drive(_ hubs: Set<String>) {
        guard endRequested == nil else { return }
        guard running else {
            // `run(driving:)` has not started yet: it starts with this set, or not at all.
            setBeforeRun = hubs
            if hubs.isEmpty { end(shutdown: false) }
            return
        }
        context.drivenHubs = hubs
        for (name, task) in hubTasks where !hubs.contains(name) {
            logger.info("gateway given up: nothing more is published for it", metadata: ["gateway": "\(name)"])
            context.hub(named: name)?.setEventHandler { _ in }
            task.cancel()
            hubTasks[name] = nil
            dispatch(.hubReleased(hub: name))
        }
        guard !hubs.isEmpty else { return end(shutdown: false) }
        startHubs(hubs)
        status?.update()
    }

    /// Takeover: who drives which gateway now (for `bridge/info`).
    func takeoverChanged(_ status: JSON) {
        guard context.takeover != status else { return }
        context.takeover = status
        if mqtt.isConnected { dispatch(.takeoverChanged) }
    }

    /// Ends `run()` or `run(driving:)` with a graceful stop.
    func stop() {
        end(shutdown: true)
    }

    private func end(shutdown: Bool) {
        guard endRequested == nil else { return }
        endRequested = shutdown
        waitForEnd?.resume(returning: shutdown)
        waitForEnd = nil
    }

    /// Publishes `bridge/state` offline (if connected and asked to) and disconnects from the broker.
    private func disconnect(publishOffline: Bool = true) async {
        let offline = MQTTMessage(
            topic: context.topic("bridge/state"), text: #"{"state":"offline"}"#, qos: .atLeastOnce,
            retain: true)
        if publishOffline, mqtt.isConnected {
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

    private func hubEvent(_ hub: String, _ event: HubEvent) {
        // Takeover: a hub given up is silenced (its handler replaced); events already on their
        // way are dropped here, so nothing more is published for it (the new owner publishes).
        guard context.drives(hub) else { return }
        switch event {
        case .connected(let address):
            dispatch(.hubConnected(hub: hub, address: address))
        case .disconnected(let reason):
            dispatch(.hubDisconnected(hub: hub, reason: reason))
        case .connectFailed(let reason):
            dispatch(.hubConnectFailed(hub: hub, reason: reason))
        case .change(let change):
            hubChanged(hub, change)
        case .commandFinished(let topic, let error, let description):
            dispatch(.commandFinished(hub: hub, topic: topic, error: error, description: description))
        }
    }

    private func hubChanged(_ hub: String, _ change: HubChange) {
        let previous = context.names
        // Names are made once a hub's first sync is complete (one computation instead of one per
        // item found: that was quadratic, seconds for a thousand lights), then on every change of
        // what they are made from.
        let named = namedHubs.contains(hub)
        let renamed: Bool
        switch change {
        case .synced:
            renamed = namedHubs.insert(hub).inserted
        case .deviceAdded, .deviceRemoved, .groupAdded, .groupRemoved:
            renamed = named
        case .deviceChanged(let device, let old):
            renamed = named && device.name != old.name
        case .groupChanged(let group, let old):
            renamed = named && group.name != old.name
        default:
            renamed = false
        }
        if renamed { recomputeNames() }
        dispatch(.hub(hub, change))
        // Only when a name that existed moved or went away: an item that only appeared is
        // announced by its own event (comparing every name costs more than the rest of a state
        // change, so only after a recompute).
        if renamed, previous.names.contains(where: { context.names[$0.key] != $0.value }) {
            dispatch(.namesChanged(previous: previous))
        }
    }

    /// Hubs whose first full sync is done: their items have friendly names.
    private var namedHubs: Set<String> = []

    private func recomputeNames() {
        context.names = FriendlyNames(
            context.hubs.map { hub in
                FriendlyNames.Inventory(
                    hub: hub.name, prefix: context.prefix(of: hub),
                    devices: hub.devices.values.map { ($0.id, $0.name, $0.type.description) },
                    groups: hub.groups.values.map { ($0.id, $0.name) })
            })
    }

    private func mqttEvent(_ event: MQTTEvent) async {
        switch event {
        case .connected:
            logger.info("connected to the broker", metadata: ["mqtt.server": "\(mqtt.configuration)"])
            context.figures.brokerConnected()
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
            dispatch(.brokerConnectFailed(reason: "\(refusal)"))
        case .connectionFailed(let error):
            logger.warning("cannot reach the broker", metadata: ["error": "\(error)"])
            dispatch(.brokerConnectFailed(reason: "\(error)"))
        case .message(let message):
            dispatch(.message(message))
        }
    }
}
