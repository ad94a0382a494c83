import Foundation
import Logging
import MQTT
import ServiceLifecycle
import Synchronization
import TLS

/// Decides which of its configured gateways this bridge instance drives, together with every other
/// instance configured for the same gateways on the same broker (and base topic), through retained
/// records on that broker. No instance talks to another directly.
///
/// Contract:
/// - `run()` (a `Service`) connects on its own MQTT connection (client id `<instance>-ownership`,
///   derived from the bridge's connection settings; its will deletes this instance's record), and
///   runs until graceful shutdown or cancellation; it stops within about a second either way.
/// - `onChange` is called in order, one call at a time, from `run()`'s task: `.acquired(g)` means
///   this instance may drive gateway `g` from now on; `.lost(g)` means it must stop driving it
///   (no more requests to the gateway, no more publishing for it) within `settings.stopAllowance`
///   (2 s). The handler must return promptly: start or stop the work and return, do not wait for it.
/// - At most one instance drives a gateway at any time, provided every instance keeps to that
///   allowance and the assumptions below hold. A dead owner (kill -9: the broker publishes its will
///   at once; silent: its heartbeats stop) is replaced `goneGrace + lease + stopAllowance` after
///   the will (6.5 s), or `ownerSilence + lease + stopAllowance` after it fell silent (12 s). A
///   clean stop hands over within twice the race window (0.5 s) plus a few round trips.
/// - On graceful shutdown every ownership is reported `lost`, then released (the caller must have
///   stopped driving by then: put this service before the bridge in the `ServiceGroup`, which shuts
///   services down in reverse order). On cancellation nothing is released; the others take over
///   after the full settle time.
/// - `status` tells, at any time and from any thread, who owns each configured gateway;
///   `onChange` hears `.statusChanged` whenever it changes.
///
/// ## The protocol
///
/// Topics under `<base>/bridge/takeover/` (`OwnershipTopics`; QoS 0, see there why):
/// - `instance/<instance>` (retained): present while the instance's ownership connection is up,
///   with a random `session` per connection. Deleted by that connection's will and by a clean stop.
/// - `gateway/<gateway>` (retained): the ownership record `{"state":"owned","owner","token","since"}`
///   (`token` is unique per claim), or `{"state":"released",…}` after its owner stopped cleanly.
/// - `gateway/<gateway>` (not retained): the owner's heartbeat `{"heartbeat":n,"owner","token"}`
///   every `heartbeatInterval` (1 s). It leaves the retained record alone.
///
/// Rules:
/// 1. **The last record wins.** A claim is the claimant's record, published retained. The broker
///    processes the messages of one topic in one order, delivers them to every subscriber in that
///    order, and keeps the last as the retained record; so every instance, including one that
///    connects later, agrees on which record is current. An instance whose record is followed by
///    another one stops claiming (or, if it owned the gateway, reports `lost`).
/// 2. **Settle before driving.** A claimant waits after its record came back: the full settle time
///    `lease + stopAllowance` (5 s) when someone may still be driving the gateway (its owner died or
///    went silent, the gateway was found without a live owner on connecting, or a heartbeat from
///    another instance was seen), only `raceWindow` (0.25 s) when its owner released it cleanly.
///    It then sends a heartbeat and acquires when that heartbeat comes back with no other record
///    before it.
/// 3. **Lease.** An owner keeps driving only while the broker keeps confirming: each heartbeat that
///    comes back extends its lease to `lease` (3 s) after the heartbeat was *sent*. When the lease
///    runs out (broker gone, connection stalled) it reports `lost`. Because a claimant processed by
///    the broker after the owner's last confirmed heartbeat waits at least `lease + stopAllowance`,
///    the old owner has stopped before the new one starts, whichever of them is slow.
/// 4. **Who may claim.** A gateway is claimed when its record is missing, released, names an
///    instance whose `instance/…` record is gone (its will) and that was not heard for
///    `goneGrace` (1.5 s) since, names this instance without it holding the claim (a restart), or
///    names an owner not heard for `ownerSilence` (7 s). A live owner's gateway is never claimed:
///    an instance that comes back stands by. (The grace covers mosquitto publishing every will
///    when it shuts down: the owner is heard again, or the standby's own connection ends first.)
/// 5. **Reconnecting.** Everything retained arrives before the instance's own record comes back, so
///    only then does it decide. What it finds without a live owner then, it claims only after
///    `syncHoldoff` (2 s), so that an owner whose lease still runs can put back its record (which it
///    does at once after a broker restart that lost the retained records).
/// 6. **One instance serves the whole set.** An instance holding nothing claims one gateway first
///    (the first in sorted order), and the rest once that claim survived the race window; while
///    another live instance holds part of its set, it waits `deferral` (2 s) for that instance to
///    claim the rest. If a race still splits the set, the instance that does not hold the first
///    gateway hands over the rest to the one that does (when that one is configured for them):
///    `lost`, then, `stopAllowance` later, its record `released`. So instances with the same
///    gateways end with one owning all of them.
/// 7. **Decide on a current view.** Before claiming, an instance sends a check (its instance record,
///    not retained, with a number) and claims only when the check comes back and the gateway is
///    still without a live owner: whatever the broker processed before the check (a dead owner's
///    last heartbeats, a new owner's record) has arrived by then. A process that was frozen, or a
///    connection that lags, thus never claims on what it saw before.
///
/// Assumptions: one broker (or a cluster that keeps each topic's order); mosquitto delivers a
/// client's messages in the order it processed them; the instances' monotonic clocks run at the
/// same rate. No fencing token reaches the gateway: a process frozen (SIGSTOP, a paused VM) while
/// owning may send what it had queued when it resumes, before it notices its lease ran out.
public final class GatewayOwnership: Service, Sendable {
    /// What `onChange` is told.
    public enum Event: Sendable, Equatable {
        /// This instance may drive the gateway from now on.
        case acquired(gatewayID: String)
        /// This instance must stop driving the gateway within `Settings.stopAllowance`.
        case lost(gatewayID: String, reason: String)
        /// `status` changed (an owner, an instance came or went): for `bridge/info`.
        case statusChanged(Status)
    }

    /// The timing of the protocol. The defaults meet the 15 s takeover the bridge promises; tests
    /// shorten them.
    public struct Settings: Sendable, Equatable {
        /// How often an owner sends a heartbeat per gateway.
        public var heartbeatInterval: Duration = .seconds(1)
        /// How long an owner keeps driving after its last heartbeat the broker confirmed was sent.
        public var lease: Duration = .seconds(3)
        /// How long the bridge may take to stop driving a gateway after `lost`.
        public var stopAllowance: Duration = .seconds(2)
        /// How long a claimant waits for a competing claim when the owner released the gateway.
        public var raceWindow: Duration = .milliseconds(250)
        /// How long an instance waits, after connecting, before claiming what has no live owner.
        public var syncHoldoff: Duration = .seconds(2)
        /// How long an instance holding nothing waits while another one claims part of its set.
        public var deferral: Duration = .seconds(2)
        /// An owner not heard for this long (and not known to be gone) counts as gone.
        public var ownerSilence: Duration = .seconds(7)
        /// MQTT keepalive of the ownership connection (5 s is libmosquitto's minimum): the broker
        /// publishes the will of an instance it has not heard for 1.5 times this.
        public var keepAlive: Duration = .seconds(5)
        public var reconnect = MQTTReconnectPolicy(minimumDelay: .milliseconds(250), maximumDelay: .seconds(2))

        public init() {}

        /// What a claimant waits when someone may still drive the gateway.
        public var takeoverSettle: Duration { lease + stopAllowance }

        /// How long an owner whose instance record disappeared must stay unheard before it counts
        /// as gone (one and a half heartbeats).
        public var goneGrace: Duration { heartbeatInterval * 1.5 }

        /// Why these settings cannot work, if they cannot.
        public var problem: String? {
            if heartbeatInterval <= .zero || lease <= heartbeatInterval {
                return "the lease must be longer than the heartbeat interval"
            }
            if ownerSilence <= takeoverSettle + heartbeatInterval {
                return "the owner silence must exceed lease + stop allowance + heartbeat interval"
            }
            if raceWindow < .zero || stopAllowance < .zero || syncHoldoff < .zero || deferral < .zero {
                return "no time may be negative"
            }
            return nil
        }
    }

    /// The client of the current run, for the watchdog.
    private let runningClient = Mutex<MQTTClient?>(nil)

    /// How often the coordinator's MQTT network thread has come round (the watchdog's sign of
    /// life for it; 0 before `run()`).
    public var mqttLoopTurns: Int { runningClient.withLock { $0?.statistics.loopTurns ?? 0 } }

    /// Who holds what, as this instance last saw it.
    public struct Status: Sendable, Equatable {
        public var instanceID: String
        /// The ownership connection is up and has read every record.
        public var synced: Bool
        /// Instances whose ownership connection is up (this one included once synced).
        public var instances: [String]
        public var gateways: [String: GatewayStatus]
    }

    public struct GatewayStatus: Sendable, Equatable {
        public enum Role: String, Sendable {
            /// This instance drives the gateway.
            case active
            /// This instance has claimed it and waits to be sure.
            case claiming
            case standby
        }

        public var role: Role
        /// The instance named by the current record (nil: none, or released).
        public var owner: String?
        /// Whether that instance is connected.
        public var ownerConnected: Bool
        /// When its claim was made (ISO 8601).
        public var since: String?
    }

    public let instanceID: String
    public let gatewayIDs: [String]
    public let baseTopic: String
    public let settings: Settings
    /// The ownership connection's settings (client id, will, keepalive, reconnect derived from the
    /// bridge's).
    public let connection: MQTTConfiguration
    private let onChange: @Sendable (Event) async -> Void
    private let clock: OwnershipClock
    private let logger: Logger
    private let current: Mutex<Status>

    /// - Parameters:
    ///   - mqtt: the bridge's own broker settings (host, port, credentials, TLS, protocol version);
    ///     the client id, will, keepalive and reconnect policy are replaced.
    ///   - baseTopic: `mqtt.base_topic`.
    ///   - instanceID: this instance's name, unique among the instances sharing the base topic, stable
    ///     across restarts (`takeover.instance_id`, by default the MQTT client id).
    ///   - gatewayIDs: the gateways this instance is configured for.
    ///   - onChange: see the type's contract.
    /// - Throws: `ConfigurationError`-style `GatewayOwnershipError` for an unusable id or settings.
    public init(
        mqtt: MQTTConfiguration, baseTopic: String, instanceID: String, gatewayIDs: [String],
        settings: Settings = Settings(), clock: some Clock<Duration> = ContinuousClock(),
        logger: Logger = Logger(label: "takeover"), onChange: @escaping @Sendable (Event) async -> Void
    ) throws(GatewayOwnershipError) {
        guard OwnershipTopics.isValidLevel(instanceID) else {
            throw GatewayOwnershipError(
                "instance id '\(instanceID)' cannot be a topic level (no '/', '+', '#', spaces)")
        }
        for id in gatewayIDs where !OwnershipTopics.isValidLevel(id) {
            throw GatewayOwnershipError("gateway id '\(id)' cannot be a topic level")
        }
        if let problem = settings.problem { throw GatewayOwnershipError(problem) }
        self.instanceID = instanceID
        self.gatewayIDs = Array(Set(gatewayIDs)).sorted()
        self.baseTopic = baseTopic
        self.settings = settings
        self.onChange = onChange
        self.clock = OwnershipClock(clock)
        var logger = logger
        logger[metadataKey: "takeover.instance"] = "\(instanceID)"
        self.logger = logger
        var connection = mqtt
        connection.clientID = "\(instanceID)-ownership"
        connection.will = InstanceRecord.deletion(OwnershipTopics(base: baseTopic), instance: instanceID)
        connection.keepAlive = settings.keepAlive
        connection.reconnect = settings.reconnect
        connection.cleanSession = true
        self.connection = connection
        current = Mutex(
            Status(
                instanceID: instanceID, synced: false, instances: [],
                gateways: Dictionary(
                    uniqueKeysWithValues: self.gatewayIDs.map {
                        ($0, GatewayStatus(role: .standby, owner: nil, ownerConnected: false, since: nil))
                    })))
    }

    /// Who holds what, as this instance last saw it.
    public var status: Status { current.withLock { $0 } }

    /// The gateways this instance drives now.
    public var owned: [String] {
        current.withLock { status in status.gateways.filter { $0.value.role == .active }.keys.sorted() }
    }

    private enum Input: Sendable {
        case mqtt(MQTTEvent)
        case timer(Duration)
        case retrySubscribe
        case shutdown
    }

    public func run() async throws {
        let client = try MQTTClient(connection, logger: logger)
        runningClient.withLock { $0 = client }
        let topics = OwnershipTopics(base: baseTopic)
        var state = OwnershipState(
            instance: instanceID, gateways: gatewayIDs, topics: topics, settings: settings,
            makeToken: { Crypto.hex(Crypto.randomBytes(8)) }, wallClock: { Date().formatted(.iso8601) })
        // Bounded in practice: MQTT events of the two subscriptions (a few per second per gateway),
        // one timer per deadline that moved earlier, and one shutdown.
        let (inputs, feed) = AsyncStream.makeStream(of: Input.self)
        let events = client.events
        let clock = self.clock
        try client.start()
        logger.info(
            "standing by for gateways", metadata: ["gateway.ids": "\(gatewayIDs)", "mqtt.server": "\(connection)"])

        var graceful = false
        await withDiscardingTaskGroup { group in
            group.addTask {
                for await event in events { feed.yield(.mqtt(event)) }
            }
            // Deadlines a sleeping child task will report. A new one is added only when the next
            // deadline moved earlier; one that fired late just causes an extra `tick`.
            var armed: [Duration] = []
            func wake(at time: Duration, with input: Input) {
                group.addTask {
                    guard (try? await clock.sleep(time)) != nil else { return }
                    feed.yield(input)
                }
            }
            var subscribed = false
            await withGracefulShutdownHandler {
                for await input in inputs {
                    var outputs: [OwnershipState.Output] = []
                    switch input {
                    case .shutdown:
                        graceful = true
                    case .timer(let time):
                        armed.removeAll { $0 == time }
                        outputs = state.tick(now: clock.now())
                    case .retrySubscribe where subscribed || !client.isConnected:
                        break  // subscribed meanwhile, or the next connection will try
                    case .retrySubscribe, .mqtt(.connected):
                        // Subscribed once, later connections re-subscribe by themselves (MQTTClient).
                        if !subscribed { subscribed = await subscribe(client, topics) }
                        if subscribed {
                            outputs = state.connected(now: clock.now())
                        } else {
                            wake(at: clock.now() + .seconds(5), with: .retrySubscribe)
                        }
                    case .mqtt(.disconnected(let reason)):
                        if reason == .disconnectedByBroker(.sessionTakenOver) {
                            logger.error(
                                "another client took this client id: give each bridge its own takeover.instance_id",
                                metadata: ["mqtt.client_id": "\(connection.clientID)"])
                        }
                        outputs = state.disconnected(now: clock.now())
                    case .mqtt(.message(let message)):
                        outputs = state.received(topic: message.topic, payload: message.payload, now: clock.now())
                    case .mqtt(.connectionRefused), .mqtt(.connectionFailed):
                        break  // the client logs these and tries again
                    }
                    if graceful { break }
                    await perform(outputs, client)
                    await publishStatus(state)
                    if let next = state.nextDeadline(after: clock.now()), armed.allSatisfy({ next < $0 }) {
                        armed.append(next)
                        wake(at: next, with: .timer(next))
                    }
                }
            } onGracefulShutdown: {
                feed.yield(.shutdown)
            }
            // Graceful shutdown: release what we hold. Cancellation: only say we are gone.
            var last: MQTTMessage?
            var outputs = state.stop(graceful: graceful, now: clock.now())
            if case .publish(let message) = outputs.last {
                last = message
                outputs.removeLast()
            }
            await perform(outputs, client)
            if let last {
                // The instance record's deletion goes last; once the broker acknowledged it, it has
                // processed the releases before it. (Messages published without waiting just
                // before `disconnect()` can be lost: libmosquitto 2.0.11 then writes DISCONNECT
                // into the middle of them and the broker drops the connection, publishing the
                // will, which deletes the instance record all the same.) A cancelled task cannot
                // wait: then the deletion goes without waiting.
                do {
                    try await client.publish(last, acknowledgedWithin: .seconds(1))
                } catch {
                    try? client.publish(last)
                }
            }
            await publishStatus(state)
            await client.disconnect()
            feed.finish()
            group.cancelAll()
        }
        logger.info("ownership stopped", metadata: ["released": "\(graceful)"])
    }

    /// Subscribes to the ownership topics; false (logged) if the broker refused or did not answer.
    private func subscribe(_ client: MQTTClient, _ topics: OwnershipTopics) async -> Bool {
        do {
            try await cancelWhenGracefulShutdown {
                _ = try await client.subscribe(topics.filters, qos: .atLeastOnce, timeout: .seconds(5))
            }
            return true
        } catch {
            guard !Task.isCancelled, !Task.isShuttingDownGracefully else { return false }
            logger.error(
                "cannot subscribe to the ownership topics; trying again in 5 s",
                metadata: ["error": "\(error)", "mqtt.topic": "\(topics.filters)"])
            return false
        }
    }

    private func perform(_ outputs: [OwnershipState.Output], _ client: MQTTClient) async {
        for output in outputs {
            switch output {
            case .publish(let message):
                do {
                    try client.publish(message)
                } catch MQTTError.notConnected, MQTTError.closed {
                    // The protocol starts again from the records on the next connection.
                } catch {
                    logger.warning("publish failed", metadata: ["mqtt.topic": "\(message.topic)", "error": "\(error)"])
                }
            case .acquired(let id):
                logger.info("acquired gateway: this instance drives it now", metadata: ["gateway.id": "\(id)"])
                await onChange(.acquired(gatewayID: id))
            case .lost(let id, let reason):
                logger.notice(
                    "lost gateway: this instance stops driving it",
                    metadata: ["gateway.id": "\(id)", "reason": "\(reason)"])
                await onChange(.lost(gatewayID: id, reason: reason))
            case .log(let level, let message, let metadata):
                logger.log(level: level, "\(message)", metadata: metadata.mapValues { .string($0) })
            }
        }
    }

    /// Updates `status`, and tells `onChange` if it changed.
    private func publishStatus(_ state: OwnershipState) async {
        let synced = state.syncedAt != nil
        var gateways: [String: GatewayStatus] = [:]
        for id in gatewayIDs {
            guard let seat = state.seats[id] else { continue }
            let role: GatewayStatus.Role =
                switch seat.role {
                case .owner: .active
                case .claiming: .claiming
                case .standby, .yielding: .standby
                }
            let record = seat.record.flatMap { $0.state == .owned && !$0.owner.isEmpty ? $0 : nil }
            gateways[id] = GatewayStatus(
                role: role, owner: record?.owner,
                ownerConnected: record.map { state.instances[$0.owner] != nil } ?? false, since: record?.since)
        }
        let status = Status(
            instanceID: instanceID, synced: synced, instances: state.instances.keys.sorted(), gateways: gateways)
        let changed = current.withLock { current in
            defer { current = status }
            return current != status
        }
        if changed { await onChange(.statusChanged(status)) }
    }
}

/// The coordinator cannot be set up as asked.
public struct GatewayOwnershipError: Error, Sendable, Equatable, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}

/// Monotonic time for the protocol, read from the injected clock: durations since the coordinator
/// was made.
struct OwnershipClock: Sendable {
    let now: @Sendable () -> Duration
    /// Sleeps until the given time; throws when cancelled.
    let sleep: @Sendable (Duration) async throws -> Void

    init<C: Clock>(_ clock: C) where C.Duration == Duration {
        let origin = clock.now
        now = { origin.duration(to: clock.now) }
        sleep = { time in try await clock.sleep(until: origin.advanced(by: time), tolerance: nil) }
    }
}
