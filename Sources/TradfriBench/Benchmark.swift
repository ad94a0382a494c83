import CoAP
import Foundation
import GatewaySimulator
import HubModel
import MQTT
import TradfriModel

/// What to run, and for how long.
struct BenchOptions: Sendable {
    var bridgePath: String
    var selfPath: String
    var lights = 100
    var groups = 10
    /// Steady change rate of the latency phases.
    var rate = 200.0
    /// Length of one steady or burst segment.
    var segmentSeconds = 3.0
    /// Rounds of (raw CoAP, raw MQTT, bridge) segments; samples of all rounds are pooled.
    var rounds = 5
    var burstSize = 20
    var burstInterval = 0.25
    /// MQTT set → gateway: commands per second, each to another device, and burst size.
    var setRate = 50.0
    var setBurst = 10
    var syncRuns = 3
    var capacityRates: [Double] = [200, 400, 600, 800, 1000, 1250, 1500, 2000, 2500, 3000, 4000, 5000]
    var capacitySeconds = 2.0
    var capacityLimit = 10_000.0  // µs
    var idleSeconds = 60.0
    var progress: @Sendable (String) -> Void = { _ in }
}

/// One benchmark run against the in-process simulator, a private mosquitto and the real bridge
/// binary, as described in README.md (Performance).
final class Benchmark: @unchecked Sendable {
    // @unchecked: used by one task at a time (the benchmark's own); shared pieces (Recorder,
    // ChangeSource, the MQTT clients, Spawned) are thread-safe themselves.
    static let mainSimulator = 0
    static let referenceSimulator = 1

    let options: BenchOptions
    let recorder = Recorder()
    private let directory: String
    private var keys: [String: String] = [:]
    private var broker: Mosquitto?
    private var simulators: [GatewaySimulator] = []
    private var apps: [CoAPClient] = []
    private var subscriber: MQTTClient?
    private var publisher: MQTTClient?
    private var observer: Spawned?
    private var bridge: Spawned?
    private var fixture = Fixture.demoHome()
    private var lightIDs: [Int] = []
    /// Friendly name → device id (the bridge's topics), and the reverse.
    private var idsByName: [String: Int] = [:]
    private var nameByID: [Int: String] = [:]
    private var mainChanges: ChangeSource?
    private var referenceChanges: ChangeSource?
    private var mqttChanges: ChangeSource?

    init(options: BenchOptions) {
        self.options = options
        directory = NSTemporaryDirectory() + "tradfri-bench-\(getpid())"
    }

    /// A piece `setUp` creates, or an error naming it when the benchmark got no further.
    private func ready<Piece>(_ piece: Piece?, _ name: String) throws -> Piece {
        guard let piece else { throw BenchError("\(name) is not set up") }
        return piece
    }

    // MARK: Running

    func run() async throws -> BenchReport {
        var report = BenchReport(options: options)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        do {
            try await setUp()
            report.bridgeBinary = options.bridgePath
            try await measureSync(into: &report)
            guard let bridge else { throw BenchError("the bridge is not running") }
            report.staticStdlib =
                !((try? String(contentsOfFile: "/proc/\(bridge.pid)/maps", encoding: .utf8))?
                .contains("libswiftCore.so") ?? true)
            report.rssAfterSyncKiB = bridge.memory().current
            try await measureLatency(into: &report)
            try await measureCommands(into: &report)
            try await measureCapacity(into: &report)
            try await measureIdle(into: &report)
            let memory = bridge.memory()
            report.peakRSSKiB = memory.peak
            report.anonymousKiB = memory.anonymous
            report.loadAfter = Machine.loadAverage()
        } catch {
            await tearDown()
            throw error
        }
        await tearDown()
        return report
    }

    // MARK: Setting up

    private func setUp() async throws {
        options.progress("starting mosquitto, two simulators and the raw CoAP observer")
        broker = try await Mosquitto()
        for name in ["bench-bridge", "bench-app", "bench-observer"] {
            keys[name] = String(
                (0..<16).map { _ in "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789".randomElement()! })
        }
        fixture.devices = [:]
        fixture.groups = [:]
        fixture.scenes = [:]
        fixture.addGenerated(lights: options.lights, groups: options.groups)
        lightIDs = fixture.devices.keys.sorted()
        let names = fixture.friendlyNames()
        for id in lightIDs {
            guard let name = names[.device(ItemID(hub: "gateway", id))] else { continue }
            idsByName[name] = id
            nameByID[id] = name
        }
        mainChanges = ChangeSource(ids: lightIDs)
        referenceChanges = ChangeSource(ids: lightIDs)
        mqttChanges = ChangeSource(ids: lightIDs)

        // Two identical gateways: the bridge's, and one only the raw observer watches, so the
        // reference hop is measured without the bridge's notifications in the same queue.
        for index in [Self.mainSimulator, Self.referenceSimulator] {
            let state = "\(directory)/simulator-\(index)"
            try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
            let identities = JSON.object(keys.mapValues { .string($0) }).description
            try identities.write(toFile: state + "/identities.json", atomically: true, encoding: .utf8)
            var configuration = GatewaySimulator.Configuration(securityCode: "BENCHMARKSECRET1", fixture: fixture)
            configuration.port = 0
            configuration.stateDirectory = state
            let simulator = try await GatewaySimulator(configuration)
            try await simulator.start()
            await Self.hook(simulator, index: index, recorder: recorder)
            simulators.append(simulator)
            // The load generator sends its PUTs one at a time, as an app does (libcoap's NSTART 1):
            // with the client's adaptive retransmission libcoap would let up to 16 go at once,
            // every change of a burst would reach the simulator in the same instant, and their
            // notifications would queue behind each other's acknowledgements.
            let app = CoAPClient(
                .init(
                    host: "127.0.0.1", port: await simulator.port, identity: "bench-app",
                    key: keys["bench-app"]!, adaptiveRetransmission: false))
            try await app.connect()
            apps.append(app)
        }

        subscriber = try await connectedClient("bench-subscriber") { [recorder] message in
            recorder.recordMessage(topic: message.topic, payload: message.payload, at: Monotonic.now())
        }
        publisher = try await connectedClient("bench-publisher") { _ in }

        let referencePort = await simulators[Self.referenceSimulator].port
        let observer = try Spawned(
            options.selfPath,
            [
                "observe", "--port", "\(referencePort)", "--identity", "bench-observer",
                "--key", keys["bench-observer"]!, "--paths", lightIDs.map { "15001/\($0)" }.joined(separator: ","),
            ]
        ) { [recorder] line in recorder.recordObserverLine(line) }
        self.observer = observer
        guard await observer.waitForLine(within: .seconds(30), { $0 == "ready" }) != nil else {
            throw BenchError("the raw CoAP observer did not start:\n\(observer.output)")
        }
    }

    @CoAPActor
    private static func hook(_ simulator: GatewaySimulator, index: Int, recorder: Recorder) {
        simulator.onRequest = { request in
            guard request.method == .put else { return }
            recorder.recordPut(simulator: index, path: request.path, payload: request.payload, at: Monotonic.now())
        }
    }

    private func connectedClient(
        _ id: String, onMessage: @escaping @Sendable (MQTTMessage) -> Void
    ) async throws -> MQTTClient {
        let client = try MQTTClient(
            MQTTConfiguration(host: "127.0.0.1", port: ready(broker, "the broker").port, clientID: id))
        try client.start()
        let events = client.events
        Task.detached {
            for await event in events {
                if case .message(let message) = event { onMessage(message) }
            }
        }
        let deadline = ContinuousClock.now + .seconds(10)
        while !client.isConnected {
            guard ContinuousClock.now < deadline else { throw BenchError("cannot connect to mosquitto as \(id)") }
            try await Task.sleep(for: .milliseconds(5))
        }
        return client
    }

    private func tearDown() async {
        if let bridge { await bridge.stop() }
        bridge = nil
        if let observer { await observer.stop() }
        observer = nil
        await subscriber?.disconnect()
        await publisher?.disconnect()
        for app in apps { await app.close() }
        for simulator in simulators { await simulator.stop() }
        await broker?.stop()
    }

    // MARK: 3. Initial sync

    private func measureSync(into report: inout BenchReport) async throws {
        for run in 1...options.syncRuns {
            let last = run == options.syncRuns
            let base = last ? "tradfri" : "benchsync\(run)"
            options.progress("initial sync \(run)/\(options.syncRuns)")
            recorder.reset()
            try await ready(subscriber, "the subscriber").subscribe(["\(base)/#"])
            let mainPort = await simulators[Self.mainSimulator].port
            let started = Monotonic.now()
            let bridge = try startBridge(base: base, gatewayPort: mainPort)
            let finished = try await waitForSync(base: base, bridge: bridge)
            report.syncMilliseconds.append(Double(finished - started) / 1e6)
            try await ready(subscriber, "the subscriber").unsubscribe(["\(base)/#"])
            if last {
                self.bridge = bridge
            } else {
                await bridge.stop()
            }
        }
        try await ready(subscriber, "the subscriber").subscribe(["tradfri/+", "bench/ref/+"])
    }

    private func startBridge(base: String, gatewayPort: UInt16) throws -> Spawned {
        let credentials = "\(directory)/credentials.json"
        let gatewayID = fixture.gateway["9081"]?.stringValue ?? ""
        let stored: JSON = [
            "identity": "bench-bridge", "psk": .string(keys["bench-bridge"]!), "gateway_id": .string(gatewayID),
            "address": "127.0.0.1", "port": .int(Int(gatewayPort)), "paired_at": "2026-01-01T00:00:00Z",
        ]
        try stored.description.write(toFile: credentials, atomically: true, encoding: .utf8)
        chmod(credentials, 0o600)
        let brokerPort = try ready(broker, "the broker").port
        let configuration = """
            gateway:
              address: 127.0.0.1:\(gatewayPort)
              credentials: \(credentials)
            mqtt:
              server: mqtt://127.0.0.1:\(brokerPort)
              base_topic: \(base)
              client_id: tradfri-bench-bridge
            discovery:
              enabled: false
              advertise: false
            """
        let file = "\(directory)/config.yaml"
        try configuration.write(toFile: file, atomically: true, encoding: .utf8)
        return try Spawned(options.bridgePath, ["run", "--config", file])
    }

    /// Waits until every light and group state, bridge/devices (all devices) and bridge/groups
    /// (all scenes) arrived; returns the arrival time of the last of them.
    private func waitForSync(base: String, bridge: Spawned) async throws -> UInt64 {
        let sceneCount = fixture.scenes.values.reduce(0) { $0 + $1.count }
        let names = fixture.friendlyNames()
        let stateTopics = Set(names.names.values.map { "\(base)/\($0)" })
        let deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(10))
            var last: UInt64 = 0
            var complete = true
            let arrivals = recorder.arrivals(prefix: base + "/")
            for topic in stateTopics {
                guard let first = arrivals[topic]?.first else {
                    complete = false
                    break
                }
                last = max(last, first.time)
            }
            guard complete else { continue }
            let groupsDone = arrivals["\(base)/bridge/groups"]?.first { entry in
                let list = (try? JSON(parsing: entry.payload))?.arrayValue ?? []
                return list.reduce(0) { $0 + ($1["scenes"]?.arrayValue?.count ?? 0) } == sceneCount
            }
            let devicesDone = arrivals["\(base)/bridge/devices"]?.first { entry in
                ((try? JSON(parsing: entry.payload))?.arrayValue?.count ?? 0) == fixture.devices.count
            }
            guard let groupsDone, let devicesDone else { continue }
            return max(last, groupsDone.time, devicesDone.time)
        }
        throw BenchError("the bridge did not publish every state within 60 s:\n\(bridge.output)")
    }

    // MARK: 1 and 6. Latency of changes, and the raw hops

    enum Path: Sendable {
        case rawCoAP, rawMQTT, bridge
    }

    private func measureLatency(into report: inout BenchReport) async throws {
        for round in 1...options.rounds {
            for path in [Path.rawCoAP, .rawMQTT, .bridge] {
                options.progress("latency round \(round)/\(options.rounds): \(path) at \(Int(options.rate))/s")
                let cpuBefore = bridge?.cpuMilliseconds() ?? 0
                let observerBefore = observer?.cpuMilliseconds() ?? 0
                let steady = try await segment(path, rate: options.rate, seconds: options.segmentSeconds, burst: 1)
                if path == .bridge {
                    report.bridgeCPUMilliseconds += (bridge?.cpuMilliseconds() ?? 0) - cpuBefore
                    report.bridgeChanges += steady.expected
                } else if path == .rawCoAP {
                    report.observerCPUMilliseconds += (observer?.cpuMilliseconds() ?? 0) - observerBefore
                    report.observerChanges += steady.expected
                }
                options.progress("latency round \(round)/\(options.rounds): \(path) in bursts of \(options.burstSize)")
                let bursts = try await segment(
                    path, rate: Double(options.burstSize) / options.burstInterval, seconds: options.segmentSeconds,
                    burst: options.burstSize)
                switch path {
                case .rawCoAP:
                    report.rawCoAP = report.rawCoAP + steady
                    report.rawCoAPBursts = report.rawCoAPBursts + bursts
                case .rawMQTT:
                    report.rawMQTT = report.rawMQTT + steady
                    report.rawMQTTBursts = report.rawMQTTBursts + bursts
                case .bridge:
                    report.bridge = report.bridge + steady
                    report.bridgeBursts = report.bridgeBursts + bursts
                }
            }
        }
    }

    /// Drives changes along `path` and returns their latencies.
    private func segment(_ path: Path, rate: Double, seconds: Double, burst: Int) async throws -> Latency {
        recorder.reset()
        let action: @Sendable () -> Void
        switch path {
        case .rawCoAP:
            action = try change(
                simulator: Self.referenceSimulator, source: ready(referenceChanges, "the reference changes"))
        case .bridge:
            action = try change(simulator: Self.mainSimulator, source: ready(mainChanges, "the bridge changes"))
        case .rawMQTT:
            let (publisher, source, recorder) = (
                try ready(self.publisher, "the publisher"), try ready(mqttChanges, "the MQTT changes"), recorder
            )
            action = {
                let (id, level) = source.next()
                let message = MQTTMessage(
                    topic: "bench/ref/\(id)", payload: Array(Self.lightStatePayload(level: level).utf8),
                    qos: .atLeastOnce,
                    retain: true, contentType: "application/json", payloadIsUTF8: true)
                recorder.recordStart(Stamp(device: id, value: level, time: Monotonic.now()))
                try? publisher.publish(message)
            }
        }
        let started = await Self.drive(rate: rate, seconds: seconds, burst: burst, action)
        try await settle(expected: started)
        switch path {
        case .rawCoAP:
            return match(
                starts: recorder.lightPuts(simulator: Self.referenceSimulator),
                deliveries: recorder.observerNotifications())
        case .bridge:
            return match(
                starts: recorder.lightPuts(simulator: Self.mainSimulator),
                deliveries: recorder.lightStates(prefix: "tradfri/", ids: idsByName))
        case .rawMQTT:
            let ids = Dictionary(uniqueKeysWithValues: lightIDs.map { (String($0), $0) })
            return match(
                starts: recorder.recordedStarts, deliveries: recorder.lightStates(prefix: "bench/ref/", ids: ids))
        }
    }

    /// A light PUT through the "IKEA app" client of a simulator.
    private func change(simulator index: Int, source: ChangeSource) -> @Sendable () -> Void {
        let app = apps[index]
        return {
            let (id, level) = source.next()
            Task { @CoAPActor in
                _ = try? await app.put("15001/\(id)", json: #"{"3311":[{"5851":\#(level)}]}"#)
            }
        }
    }

    /// What a white-spectrum bulb publishes, so the raw MQTT hop carries a payload of the same size.
    static func lightStatePayload(level: Int) -> String {
        ##"{"brightness":\##(level),"color":{"hex":"#ffad59","x":0.4599,"y":0.4106},"color_mode":"color_temp","color_temp":370,"color_temp_kelvin":2703,"last_seen":"2026-01-01T00:00:00Z","power_on_behavior":"on","state":"ON"}"##
    }

    /// Calls `action` `rate` times a second for `seconds`, `burst` at a time, on schedule (late
    /// ticks catch up). Returns how many actions ran.
    static func drive(rate: Double, seconds: Double, burst: Int, _ action: @Sendable () -> Void) async -> Int {
        let ticks = max(Int(rate * seconds) / burst, 1)
        let interval = Duration.nanoseconds(Int64(Double(burst) / rate * 1e9))
        let clock = ContinuousClock()
        let start = clock.now + .milliseconds(2)
        var done = 0
        while done < ticks {
            let due = start + interval * done
            if clock.now < due { try? await clock.sleep(until: due, tolerance: .microseconds(50)) }
            let now = clock.now
            while done < ticks, start + interval * done <= now {
                for _ in 0..<burst { action() }
                done += 1
            }
        }
        return ticks * burst
    }

    /// Waits for the last deliveries of a segment: until nothing arrived for 200 ms (1 s at most).
    private func settle(expected: Int) async throws {
        var count = recorder.messageCount
        let deadline = ContinuousClock.now + .seconds(1)
        try await Task.sleep(for: .milliseconds(100))
        while ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(200))
            let now = recorder.messageCount
            if now == count { break }
            count = now
        }
    }

    // MARK: 2. MQTT set → gateway

    private func measureCommands(into report: inout BenchReport) async throws {
        options.progress("MQTT set → gateway: \(Int(options.setRate))/s to distinct devices")
        report.commands = try await commandSegment(rate: options.setRate, burst: 1)
        options.progress("MQTT set → gateway: bursts of \(options.setBurst) distinct devices")
        report.commandBursts = try await commandSegment(rate: Double(options.setBurst), burst: options.setBurst)
    }

    private func commandSegment(rate: Double, burst: Int) async throws -> Latency {
        recorder.reset()
        let (publisher, source, recorder, nameByID) = (
            try ready(self.publisher, "the publisher"), try ready(mainChanges, "the bridge changes"), recorder, nameByID
        )
        _ = await Self.drive(rate: rate, seconds: max(options.segmentSeconds * 2, 4), burst: burst) {
            let (id, level) = source.next()
            let message = MQTTMessage(
                topic: "tradfri/\(nameByID[id] ?? String(id))/set", text: #"{"brightness":\#(level)}"#)
            recorder.recordStart(Stamp(device: id, value: level, time: Monotonic.now()))
            try? publisher.publish(message)
        }
        try await Task.sleep(for: .milliseconds(500))
        return match(starts: recorder.recordedStarts, deliveries: recorder.lightPuts(simulator: Self.mainSimulator))
    }

    // MARK: 4. Capacity

    private func measureCapacity(into report: inout BenchReport) async throws {
        for rate in options.capacityRates {
            options.progress("capacity: \(Int(rate)) changes/s")
            let result = try await segment(.bridge, rate: rate, seconds: options.capacitySeconds, burst: 1)
            let lostShare = Double(result.missing) / Double(max(result.expected, 1))
            report.capacitySteps.append(.init(rate: rate, latency: result))
            if result.p99 > options.capacityLimit || lostShare > 0.01 || result.count == 0 {
                // The same rate on the raw CoAP path tells whether the load generator or the
                // simulator (one libcoap thread) is what gives up first.
                options.progress("capacity: raw CoAP hop at \(Int(rate)) changes/s, for comparison")
                report.capacityRawCoAP = .init(
                    rate: rate,
                    latency: try await segment(
                        .rawCoAP, rate: rate, seconds: options.capacitySeconds, burst: 1))
                break
            }
            report.capacity = rate
            try await Task.sleep(for: .milliseconds(300))
        }
    }

    // MARK: 5. Idle

    private func measureIdle(into report: inout BenchReport) async throws {
        guard let bridge else { return }
        try await Task.sleep(for: .seconds(2))
        options.progress("idle for \(Int(options.idleSeconds)) s")
        // Threads come and go (dispatch workers), so the per-thread counters are sampled every
        // half second: a thread that ends loses at most its last half second, which for an idle
        // process is nothing.
        // The raw observer is idle too: a Swift process with one DTLS session and no keep-alive,
        // measured in the same window as a floor.
        let processes = [bridge] + (observer.map { [$0] } ?? [])
        let before = processes.map { $0.threadCounters() }
        var latest = before
        let cpuBefore = bridge.cpuMilliseconds()
        let end = ContinuousClock.now + .seconds(options.idleSeconds)
        while ContinuousClock.now < end {
            try await Task.sleep(for: min(.milliseconds(500), end - .now))
            for (index, process) in processes.enumerated() {
                for (tid, counters) in process.threadCounters() { latest[index][tid] = counters }
            }
        }
        var cpu: [UInt64] = processes.map { _ in 0 }
        var switches: [Int] = processes.map { _ in 0 }
        for index in processes.indices {
            for (tid, counters) in latest[index] {
                let start = before[index][tid] ?? (0, 0)
                cpu[index] += counters.cpuNanoseconds - start.cpuNanoseconds
                switches[index] += counters.switches - start.switches
            }
        }
        report.idleSeconds = options.idleSeconds
        report.idleCPUMilliseconds = bridge.cpuMilliseconds() - cpuBefore
        report.idleThreadCPUMilliseconds = Double(cpu[0]) / 1e6
        report.idleWakeups = switches[0]
        if processes.count > 1 {
            report.observerIdleCPUMilliseconds = Double(cpu[1]) / 1e6
            report.observerIdleWakeups = switches[1]
        }
        report.threads = bridge.threadCounters().count
    }
}

extension Fixture {
    /// The friendly names the bridge gives this gateway's devices and groups (one gateway, plain names).
    func friendlyNames() -> FriendlyNames {
        FriendlyNames([
            FriendlyNames.Inventory(
                hub: "gateway", prefix: nil,
                devices: devices.map { (ItemID(hub: "gateway", $0.key), $0.value["9001"]?.stringValue ?? "", "light") },
                groups: groups.map { (ItemID(hub: "gateway", $0.key), $0.value["9001"]?.stringValue ?? "") })
        ])
    }
}
