import MQTT

@testable import TradfriBridge

/// Several instances of the ownership protocol (`OwnershipState`, the real code) against a model
/// of a broker, in simulated time: every message to or from an instance takes a random time
/// (mostly milliseconds, sometimes seconds) but keeps its order on that instance's connection, as
/// TCP does; the broker processes publishes one at a time, keeps the last retained message of each
/// topic and publishes a dead connection's will. Faults are scheduled by the test: kill -9, clean
/// stop, restart, a network partition (silence), a broker restart that loses every retained
/// message.
///
/// It records when each instance drives each gateway: from `acquired` until a random moment within
/// the stop allowance after `lost` (the bridge's promise), or until it is killed. `overlaps` lists
/// every moment two instances drove one gateway.
struct OwnershipSimulation {
    struct Interval: CustomStringConvertible {
        var gateway: String
        var instance: String
        var start: Duration
        var end: Duration?

        var description: String {
            "\(instance) drove \(gateway) \(start)…\(end.map { "\($0)" } ?? "now")"
        }
    }

    enum Fault {
        case kill(Int)
        case start(Int)
        case stopGracefully(Int)
        /// The instance's network goes silent for the duration (no FIN, no RST): what is in flight
        /// waits. The broker declares the connection dead 1.5 keepalives after the silence began,
        /// and the instance its own one to two keepalives after, even if the network came back in
        /// between (harsher than a real broker, on purpose).
        case partition(Int, Duration)
        /// The broker publishes every will, is down for the duration and comes back without its
        /// retained messages.
        case brokerRestart(Duration)
        /// The instance's process stops (SIGSTOP, a paused VM) for the duration: nothing it would
        /// do happens; the broker drops its connection after 1.5 keepalives of silence. When it
        /// resumes, its timers run before it reads what arrived meanwhile (the worst order).
        /// It drives nothing while frozen.
        case freeze(Int, Duration)
    }

    private enum Event {
        case fault(Fault)
        case connect(Int)
        case clientConnected(Int, connection: Int)
        case clientDisconnected(Int, connection: Int)
        case deliver(Int, connection: Int, MQTTMessage)
        case brokerReceives(Int, connection: Int, MQTTMessage)
        case brokerDisconnects(Int, connection: Int)
        case brokerNoticesDeath(Int, connection: Int)
        case brokerUp
        case tick(Int, generation: Int)
        case stopDriving(Int, gateway: String, epoch: Int)
        case keepaliveExpiry(Int, connection: Int)
        case libraryReconnect(Int)
        case resume(Int)
    }

    private struct Node {
        let id: String
        var state: OwnershipState?
        var incarnation = 0
        /// libmosquitto's current connection (0: none): what publishes go out on.
        var connection = 0
        /// The connection the protocol has been told about (`connected` … `disconnected`); it lags
        /// behind `connection` while events wait to be read.
        var stateConnection = 0
        var connectionCount = 0
        var partitionedUntil: Duration = .zero
        var upFree: Duration = .zero
        var downFree: Duration = .zero
        var tickGeneration = 0
        var nextTick: Duration?
        /// Gateway → index in `intervals` of the open interval, and the epoch of a pending stop.
        var driving: [String: Int] = [:]
        var stopEpoch: [String: Int] = [:]
        var frozenUntil: Duration = .zero
        var frozenDriving: [String] = []
    }

    let settings: GatewayOwnership.Settings
    let gateways: [String]
    let topics = OwnershipTopics(base: "tradfri")
    private(set) var now: Duration = .zero
    private(set) var intervals: [Interval] = []
    private(set) var acquisitions: [(instance: String, gateway: String, at: Duration)] = []
    private(set) var losses: [(instance: String, gateway: String, at: Duration, reason: String)] = []
    private(set) var claims: [(instance: String, gateway: String, at: Duration)] = []
    private var nodes: [Node]
    private var queue: [(at: Duration, order: Int, event: Event)] = []
    private var order = 0
    private var random: SplitMix
    private var brokerUp = true
    private var retained: [String: MQTTMessage] = [:]
    /// The broker's live connection per instance.
    private var live: [Int: Int] = [:]
    /// How often a message is held up for a long time (0 … 1), and for how long at most.
    var spikeProbability = 0.02
    var spikeLength: Duration = .milliseconds(500)
    /// What happened, line by line, when not nil (for finding out why a seed fails).
    var trace: [String]?

    init(instances: Int, gateways: [String], settings: GatewayOwnership.Settings, seed: UInt64) {
        self.settings = settings
        self.gateways = gateways
        nodes = (0..<instances).map { Node(id: "bridge-\($0 + 1)") }
        random = SplitMix(seed: seed)
    }

    // MARK: Running

    mutating func schedule(_ fault: Fault, at time: Duration) {
        enqueue(.fault(fault), at: time)
    }

    /// Runs every event up to `time`.
    mutating func run(until time: Duration) {
        while let index = queue.indices.min(by: { (queue[$0].at, queue[$0].order) < (queue[$1].at, queue[$1].order) }),
            queue[index].at <= time
        {
            let next = queue.remove(at: index)
            now = next.at
            handle(next.event)
        }
        now = time
    }

    // MARK: What the test asks

    /// Pairs of intervals in which two instances drove one gateway at the same time.
    var overlaps: [(Interval, Interval)] {
        var found: [(Interval, Interval)] = []
        for (i, a) in intervals.enumerated() {
            for b in intervals[(i + 1)...] where a.gateway == b.gateway && a.instance != b.instance {
                if a.start < (b.end ?? .seconds(1_000_000)) && b.start < (a.end ?? .seconds(1_000_000)) {
                    found.append((a, b))
                }
            }
        }
        return found
    }

    /// Instance number → the gateways it drives now.
    var drivers: [String: [String]] {
        var result: [String: [String]] = [:]
        for interval in intervals where interval.end == nil {
            result[interval.gateway, default: []].append(interval.instance)
        }
        return result
    }

    func isAlive(_ node: Int) -> Bool { nodes[node].state != nil }
    func instanceID(_ node: Int) -> String { nodes[node].id }

    /// What the instance believes it owns (the protocol's own view).
    func owned(by node: Int) -> [String] { nodes[node].state?.owned ?? [] }

    // MARK: Events

    private mutating func note(_ line: String) {
        trace?.append("\(now) \(line)")
    }

    private func describe(_ event: Event) -> String {
        func short(_ message: MQTTMessage) -> String {
            let topic = message.topic.split(separator: "/").suffix(2).joined(separator: "/")
            return "\(topic) \(message.retain ? "R " : "")\(message.text)"
        }
        switch event {
        case .deliver(let n, let connection, let message): return "→\(nodes[n].id)#\(connection) \(short(message))"
        case .brokerReceives(let n, let connection, let message):
            return "broker ← \(nodes[n].id)#\(connection) \(short(message))"
        default: return "\(event)"
        }
    }

    /// The instance an event happens in, if it is one that a frozen process cannot do.
    private func target(_ event: Event) -> Int? {
        switch event {
        case .connect(let n), .clientConnected(let n, _), .clientDisconnected(let n, _), .deliver(let n, _, _),
            .tick(let n, _):
            n
        default:
            nil
        }
    }

    private mutating func handle(_ event: Event) {
        if let n = target(event), now < nodes[n].frozenUntil {
            // Timers first when it resumes, then everything else in order.
            if case .tick = event {
                enqueue(event, at: nodes[n].frozenUntil)
            } else {
                enqueue(event, at: nodes[n].frozenUntil + .microseconds(1))
            }
            return
        }
        switch event {
        case .tick, .stopDriving: break
        default: if trace != nil { note(describe(event)) }
        }
        switch event {
        case .fault(let fault):
            apply(fault)
        case .connect(let n):
            connect(n)
        case .clientConnected(let n, let connection):
            guard nodes[n].connection == connection, nodes[n].state != nil else { return }
            nodes[n].stateConnection = connection
            perform(n) { $0.connected(now: $1) }
        case .clientDisconnected(let n, let connection):
            guard nodes[n].state != nil else { return }
            if nodes[n].stateConnection == connection {
                nodes[n].stateConnection = 0
                perform(n) { $0.disconnected(now: $1) }
            }
            if nodes[n].connection == connection {
                nodes[n].connection = 0
                enqueue(.connect(n), at: now + uniform(.milliseconds(250), .seconds(2)))
            }
        case .libraryReconnect(let n):
            // libmosquitto's own thread resumes too, finds the connection closed and reconnects
            // before the protocol has read about it.
            nodes[n].connection = 0
            connect(n)
        case .deliver(let n, let connection, let message):
            guard nodes[n].stateConnection == connection, nodes[n].state != nil else { return }
            perform(n) { $0.received(topic: message.topic, payload: message.payload, now: $1) }
        case .brokerReceives(let n, let connection, let message):
            guard brokerUp, live[n] == connection else { return }
            process(message)
        case .brokerDisconnects(let n, let connection):
            if live[n] == connection { live[n] = nil }  // a clean DISCONNECT: no will
        case .brokerNoticesDeath(let n, let connection):
            guard brokerUp, live[n] == connection else { return }
            live[n] = nil
            process(InstanceRecord.deletion(topics, instance: nodes[n].id))
        case .brokerUp:
            brokerUp = true
        case .tick(let n, let generation):
            guard nodes[n].tickGeneration == generation, nodes[n].state != nil else { return }
            nodes[n].nextTick = nil
            perform(n) { $0.tick(now: $1) }
        case .keepaliveExpiry(let n, let connection):
            guard now < nodes[n].frozenUntil, brokerUp, live[n] == connection else { return }
            live[n] = nil
            process(InstanceRecord.deletion(topics, instance: nodes[n].id))
            // It learns of it when it resumes: libmosquitto reconnects at once, the protocol reads
            // about it after its timers ran.
            enqueue(.libraryReconnect(n), at: nodes[n].frozenUntil - .nanoseconds(1))
            enqueue(.clientDisconnected(n, connection: connection), at: nodes[n].frozenUntil + .microseconds(1))
        case .resume(let n):
            // What it still owns after its first timers ran, it drives again.
            guard let state = nodes[n].state else { return }
            for gateway in nodes[n].frozenDriving
            where state.owned.contains(gateway) && nodes[n].driving[gateway] == nil {
                intervals.append(Interval(gateway: gateway, instance: nodes[n].id, start: now))
                nodes[n].driving[gateway] = intervals.count - 1
            }
            nodes[n].frozenDriving = []
        case .stopDriving(let n, let gateway, let epoch):
            guard nodes[n].stopEpoch[gateway, default: 0] == epoch, let index = nodes[n].driving[gateway] else {
                return
            }
            intervals[index].end = now
            nodes[n].driving[gateway] = nil
        }
    }

    private mutating func apply(_ fault: Fault) {
        switch fault {
        case .start(let n):
            guard nodes[n].state == nil else { return }
            nodes[n].incarnation += 1
            let id = nodes[n].id
            let incarnation = nodes[n].incarnation
            var tokens = 0
            nodes[n].state = OwnershipState(
                instance: id, gateways: gateways, topics: topics, settings: settings,
                makeToken: {
                    tokens += 1
                    return "\(id).\(incarnation).\(tokens)"
                }, wallClock: { "2026-01-01T00:00:00Z" })
            enqueue(.connect(n), at: now + uniform(.zero, .milliseconds(300)))
        case .kill(let n):
            guard nodes[n].state != nil else { return }
            endDriving(n)
            nodes[n].state = nil
            nodes[n].stateConnection = 0
            if let connection = live[n] {
                // The kernel closes the socket; the broker reads EOF at once.
                enqueue(.brokerNoticesDeath(n, connection: connection), at: now + uniform(.zero, .milliseconds(50)))
            }
            nodes[n].connection = 0
        case .stopGracefully(let n):
            guard var state = nodes[n].state else { return }
            // The bridge stops its hubs first (the ServiceGroup's reverse order).
            endDriving(n)
            let outputs = state.stop(graceful: true, now: now)
            nodes[n].state = state
            apply(outputs, from: n)
            if nodes[n].connection != 0 {
                sendUp(n, connection: nodes[n].connection, .brokerDisconnects(n, connection: nodes[n].connection))
            }
            nodes[n].state = nil
            nodes[n].connection = 0
            nodes[n].stateConnection = 0
        case .partition(let n, let duration):
            // TCP holds what is in flight until the network is back (or the connection is declared
            // dead): everything on this instance's links moves on by the partition, in order.
            nodes[n].partitionedUntil = now + duration
            for index in queue.indices where isLink(queue[index].event, of: n) { queue[index].at += duration }
            nodes[n].upFree = max(nodes[n].upFree, now) + duration
            nodes[n].downFree = max(nodes[n].downFree, now) + duration
            if let connection = live[n] {
                // 1.5 × keepalive without a packet, checked once a second.
                let silence = settings.keepAlive * 1.5 + uniform(.zero, .seconds(1))
                enqueue(.brokerNoticesDeath(n, connection: connection), at: now + silence)
            }
            if nodes[n].connection != 0 {
                // libmosquitto: a PINGREQ after a keepalive of silence, unanswered for another.
                let noticed = now + uniform(settings.keepAlive, settings.keepAlive * 2)
                enqueue(.clientDisconnected(n, connection: nodes[n].connection), at: noticed)
            }
        case .freeze(let n, let duration):
            guard nodes[n].state != nil else { return }
            nodes[n].frozenUntil = now + duration
            nodes[n].frozenDriving = Array(nodes[n].driving.keys)
            endDriving(n)
            if let connection = live[n] {
                enqueue(
                    .keepaliveExpiry(n, connection: connection),
                    at: now + settings.keepAlive * 1.5 + uniform(.zero, .seconds(1)))
            }
            // After its timers (at frozenUntil) and before what arrived meanwhile.
            enqueue(.resume(n), at: now + duration + .nanoseconds(500))
        case .brokerRestart(let duration):
            // Mosquitto publishes every client's will as it shuts down, to the clients still there.
            for (n, _) in live.sorted(by: { $0.key < $1.key }) {
                process(InstanceRecord.deletion(topics, instance: nodes[n].id))
            }
            brokerUp = false
            retained = [:]
            for (n, connection) in live.sorted(by: { $0.key < $1.key }) {
                enqueue(.clientDisconnected(n, connection: connection), at: now + uniform(.zero, .milliseconds(200)))
            }
            live = [:]
            enqueue(.brokerUp, at: now + duration)
        }
    }

    private mutating func connect(_ n: Int) {
        guard nodes[n].state != nil, nodes[n].connection == 0 else { return }
        guard brokerUp, now >= nodes[n].partitionedUntil else {
            enqueue(.connect(n), at: now + uniform(.milliseconds(250), .seconds(2)))
            return
        }
        nodes[n].connectionCount += 1
        let connection = nodes[n].connectionCount
        nodes[n].connection = connection
        if let old = live[n], old != connection {
            // Same client id: the broker ends the old connection and publishes its will first.
            live[n] = nil
            process(InstanceRecord.deletion(topics, instance: nodes[n].id))
        }
        live[n] = connection
        // CONNACK, then (after SUBACK) the retained messages, in the order of one TCP stream.
        sendDown(n, .clientConnected(n, connection: connection))
        for topic in retained.keys.sorted() {
            if let message = retained[topic] {
                sendDown(n, .deliver(n, connection: connection, message))
            }
        }
    }

    /// The broker processes one publish: retained store, then every subscriber in order.
    private mutating func process(_ message: MQTTMessage) {
        if message.retain {
            if message.payload.isEmpty { retained[message.topic] = nil } else { retained[message.topic] = message }
        }
        var delivered = message
        delivered.retain = false
        for (n, connection) in live.sorted(by: { $0.key < $1.key }) {
            sendDown(n, .deliver(n, connection: connection, delivered))
        }
    }

    private mutating func perform(_ n: Int, _ step: (inout OwnershipState, Duration) -> [OwnershipState.Output]) {
        guard var state = nodes[n].state else { return }
        let outputs = step(&state, now)
        nodes[n].state = state
        apply(outputs, from: n)
        guard let deadline = nodes[n].state?.nextDeadline(after: now) else { return }
        if let armed = nodes[n].nextTick, armed <= deadline, armed > now { return }
        nodes[n].tickGeneration += 1
        nodes[n].nextTick = deadline
        enqueue(.tick(n, generation: nodes[n].tickGeneration), at: deadline)
    }

    private mutating func apply(_ outputs: [OwnershipState.Output], from n: Int) {
        for output in outputs {
            switch output {
            case .publish(let message):
                let connection = nodes[n].connection
                guard connection != 0 else { continue }
                sendUp(n, connection: connection, .brokerReceives(n, connection: connection, message))
            case .acquired(let gateway):
                acquisitions.append((nodes[n].id, gateway, now))
                nodes[n].stopEpoch[gateway, default: 0] += 1  // a pending stop no longer applies
                if nodes[n].driving[gateway] == nil {
                    intervals.append(Interval(gateway: gateway, instance: nodes[n].id, start: now))
                    nodes[n].driving[gateway] = intervals.count - 1
                }
            case .lost(let gateway, let reason):
                losses.append((nodes[n].id, gateway, now, reason))
                let stop = now + uniform(.zero, settings.stopAllowance)
                enqueue(.stopDriving(n, gateway: gateway, epoch: nodes[n].stopEpoch[gateway, default: 0]), at: stop)
            case .log(_, let message, let metadata):
                if message == "claiming gateway" { claims.append((nodes[n].id, metadata["gateway.id"] ?? "", now)) }
                if trace != nil {
                    let line = "\(nodes[n].id): \(message) \(metadata.sorted { $0.key < $1.key })"
                    note(line)
                }
            }
            if trace != nil {
                switch output {
                case .log: break
                case .publish(let message):
                    let line = "\(nodes[n].id) publishes \(describe(.deliver(n, connection: 0, message)))"
                    note(line)
                default:
                    let line = "\(nodes[n].id) → \(output)"
                    note(line)
                }
            }
        }
    }

    private mutating func endDriving(_ n: Int) {
        for (_, index) in nodes[n].driving { intervals[index].end = now }
        nodes[n].driving = [:]
        for gateway in gateways { nodes[n].stopEpoch[gateway, default: 0] += 1 }
    }

    // MARK: The links

    private mutating func sendUp(_ n: Int, connection: Int, _ event: Event) {
        let at = max(max(now, nodes[n].partitionedUntil) + delay(), nodes[n].upFree)
        nodes[n].upFree = at
        enqueue(event, at: at)
    }

    private mutating func sendDown(_ n: Int, _ event: Event) {
        let at = max(max(now, nodes[n].partitionedUntil) + delay(), nodes[n].downFree)
        nodes[n].downFree = at
        enqueue(event, at: at)
    }

    private func isLink(_ event: Event, of n: Int) -> Bool {
        switch event {
        case .clientConnected(let m, _), .deliver(let m, _, _), .brokerReceives(let m, _, _),
            .brokerDisconnects(let m, _):
            m == n
        default:
            false
        }
    }

    private mutating func delay() -> Duration {
        var delay = uniform(.microseconds(200), .milliseconds(20))
        if random.nextDouble() < spikeProbability { delay += uniform(.zero, spikeLength) }
        return delay
    }

    private mutating func enqueue(_ event: Event, at time: Duration) {
        order += 1
        queue.append((time, order, event))
    }

    mutating func uniform(_ low: Duration, _ high: Duration) -> Duration {
        low + (high - low) * random.nextDouble()
    }
}

/// A small seeded generator, so a failing seed can be run again.
struct SplitMix: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    mutating func nextDouble() -> Double { Double(next() >> 11) / Double(1 << 53) }
}
