import CoAP
import Foundation
import GatewaySimulator
import HubModel
import MQTT
import TradfriModel

/// What `tradfri-bench fleet` runs.
struct FleetOptions: Sendable {
    var bridgePath: String
    var gateways = 10
    /// Generated lights on each gateway.
    var lights = 100
    /// Generated groups (rooms) on each gateway, each with two scenes.
    var groups = 10
    /// Changes per second over all gateways together, spread round robin.
    var rate = 200.0
    var seconds = 30.0
    var syncRuns = 3
    /// Where to write every change (gateway, device, start, latency) as CSV, if anywhere.
    var samplesFile: String?
    var progress: @Sendable (String) -> Void = { _ in }
}

/// One bridge serving a fleet of gateways: `gateways` simulators in this process (distinct gateway
/// ids, identities seeded in their state directories, `lights` generated bulbs each), a private
/// mosquitto and the real bridge binary started from a `gateways:` configuration. Measures the
/// initial sync of all of them, gateway change → MQTT latency while every gateway is changing at
/// once, and the bridge's memory and CPU.
final class FleetBenchmark: @unchecked Sendable {
    // @unchecked: used by one task at a time (the benchmark's own); shared pieces (Recorder,
    // ChangeSource, the MQTT client, Spawned) are thread-safe themselves.

    /// One simulated gateway of the fleet.
    struct Member {
        var name: String
        var id: String
        var port: UInt16
        var bridgeKey: String
        var simulator: GatewaySimulator
        var app: CoAPClient
        /// Friendly name with the gateway prefix ("g01/light_1") → light id.
        var lightIDs: [String: Int]
        /// Friendly names of the rooms ("g01/room_1").
        var roomNames: [String]
        var changes: ChangeSource
    }

    let options: FleetOptions
    let recorder = Recorder()
    private let directory: String
    private var broker: Mosquitto?
    private var members: [Member] = []
    private var subscriber: MQTTClient?
    private var bridge: Spawned?
    private var fixture = Fixture.demoHome()

    init(options: FleetOptions) {
        self.options = options
        directory = NSTemporaryDirectory() + "tradfri-bench-fleet-\(getpid())"
    }

    /// The gateway names: g01, g02, … (as wide as the count needs).
    static func name(_ index: Int, of count: Int) -> String {
        let width = max(String(count).count, 2)
        let number = String(index + 1)
        return "g" + String(repeating: "0", count: width - number.count) + number
    }

    /// Distinct 16-hex-digit gateway ids (key 9081).
    static func gatewayID(_ index: Int) -> String {
        let hex = String(index + 1, radix: 16)
        return "f1ee7" + String(repeating: "0", count: 11 - hex.count) + hex
    }

    static func randomKey() -> String {
        String((0..<16).map { _ in "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789".randomElement()! })
    }

    // MARK: Running

    func run() async throws -> FleetReport {
        var report = FleetReport(options: options)
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
            report.threadsAfterSync = bridge.threadCounters().count
            try await Task.sleep(for: .seconds(2))
            try await measureChanges(into: &report)
            let memory = bridge.memory()
            report.peakRSSKiB = memory.peak
            report.rssAtEndKiB = memory.current
            report.anonymousKiB = memory.anonymous
            report.threads = bridge.threadCounters().count
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
        options.progress("starting mosquitto and \(options.gateways) simulators of \(options.lights) lights each")
        broker = try await Mosquitto()
        fixture.devices = [:]
        fixture.groups = [:]
        fixture.scenes = [:]
        fixture.addGenerated(lights: options.lights, groups: options.groups)

        for index in 0..<options.gateways {
            let name = Self.name(index, of: options.gateways)
            let id = Self.gatewayID(index)
            let (bridgeKey, appKey) = (Self.randomKey(), Self.randomKey())
            let state = "\(directory)/\(name)"
            try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
            let identities: JSON = ["bench-bridge": .string(bridgeKey), "bench-app": .string(appKey)]
            try identities.description.write(toFile: state + "/identities.json", atomically: true, encoding: .utf8)
            var content = fixture
            content.gateway["9081"] = .string(id)
            var configuration = GatewaySimulator.Configuration(securityCode: "BENCHMARKSECRET1", fixture: content)
            configuration.port = 0
            configuration.stateDirectory = state
            let simulator = try await GatewaySimulator(configuration)
            try await simulator.start()
            await Self.hook(simulator, index: index, recorder: recorder)
            let port = await simulator.port
            // One PUT at a time per app, as in the main benchmark (libcoap's NSTART 1).
            let app = CoAPClient(
                .init(
                    host: "127.0.0.1", port: port, identity: "bench-app", key: appKey,
                    adaptiveRetransmission: false))
            try await app.connect()

            let names = FriendlyNames([
                // With one gateway the bridge keeps plain names (no "<gateway>/").
                FriendlyNames.Inventory(
                    hub: name, prefix: options.gateways > 1 ? name : nil,
                    devices: content.devices.map {
                        (ItemID(hub: name, $0.key), $0.value["9001"]?.stringValue ?? "", "light")
                    },
                    groups: content.groups.map { (ItemID(hub: name, $0.key), $0.value["9001"]?.stringValue ?? "") })
            ])
            var lightIDs: [String: Int] = [:]
            for light in content.devices.keys {
                guard let friendly = names.names[.device(ItemID(hub: name, light))] else { continue }
                lightIDs[friendly] = light
            }
            let roomNames = content.groups.keys.compactMap { names.names[.group(ItemID(hub: name, $0))] }
            members.append(
                Member(
                    name: name, id: id, port: port, bridgeKey: bridgeKey, simulator: simulator, app: app,
                    lightIDs: lightIDs, roomNames: roomNames, changes: ChangeSource(ids: content.devices.keys.sorted())
                ))
        }

        let client = try MQTTClient(
            MQTTConfiguration(
                host: "127.0.0.1", port: try ready(broker, "the broker").port, clientID: "bench-fleet-subscriber"))
        try client.start()
        let events = client.events
        Task.detached { [recorder] in
            for await event in events {
                if case .message(let message) = event {
                    recorder.recordMessage(topic: message.topic, payload: message.payload, at: Monotonic.now())
                }
            }
        }
        let deadline = ContinuousClock.now + .seconds(10)
        while !client.isConnected {
            guard ContinuousClock.now < deadline else { throw BenchError("cannot connect to mosquitto") }
            try await Task.sleep(for: .milliseconds(5))
        }
        subscriber = client
    }

    private func ready<Piece>(_ piece: Piece?, _ name: String) throws -> Piece {
        guard let piece else { throw BenchError("\(name) is not set up") }
        return piece
    }

    @CoAPActor
    private static func hook(_ simulator: GatewaySimulator, index: Int, recorder: Recorder) {
        simulator.onRequest = { request in
            guard request.method == .put else { return }
            recorder.recordPut(simulator: index, path: request.path, payload: request.payload, at: Monotonic.now())
        }
    }

    private func tearDown() async {
        if let bridge { await bridge.stop() }
        bridge = nil
        await subscriber?.disconnect()
        for member in members {
            await member.app.close()
            await member.simulator.stop()
        }
        await broker?.stop()
    }

    /// Writes the credentials store (every gateway, by name) and the `gateways:` configuration,
    /// and starts the bridge.
    private func startBridge(base: String, discoveryPrefix: String) throws -> Spawned {
        let credentials = "\(directory)/credentials.json"
        let entries: [JSON] = members.map { member in
            [
                "identity": "bench-bridge", "psk": .string(member.bridgeKey), "gateway_id": .string(member.id),
                "address": "127.0.0.1", "port": .int(Int(member.port)), "paired_at": "2026-01-01T00:00:00Z",
                "name": .string(member.name),
            ]
        }
        let store: JSON = ["gateways": .array(entries)]
        try store.description.write(toFile: credentials, atomically: true, encoding: .utf8)
        chmod(credentials, 0o600)
        let gateways = members.map { member in
            """
              - name: \(member.name)
                id: \(member.id)
                address: 127.0.0.1:\(member.port)
                credentials: \(credentials)
            """
        }
        let configuration = """
            gateways:
            \(gateways.joined(separator: "\n"))
            mqtt:
              server: mqtt://127.0.0.1:\(try ready(broker, "the broker").port)
              base_topic: \(base)
              client_id: tradfri-bench-fleet-bridge
            homeassistant:
              discovery_prefix: \(discoveryPrefix)
            discovery:
              enabled: false
              advertise: false
            """
        let file = "\(directory)/config.yaml"
        try configuration.write(toFile: file, atomically: true, encoding: .utf8)
        return try Spawned(options.bridgePath, ["run", "--config", file])
    }

    // MARK: 1. Initial sync

    private func measureSync(into report: inout FleetReport) async throws {
        let subscriber = try ready(self.subscriber, "the subscriber")
        for run in 1...options.syncRuns {
            let last = run == options.syncRuns
            // A base topic of its own per run: no retained message of an earlier run counts.
            let base = last ? "tradfri" : "benchfleet\(run)"
            // Home Assistant discovery is on (the default), under a prefix of its own per run too:
            // every run is a first start, without the configs an earlier run left retained.
            let discoveryPrefix = last ? "homeassistant" : "benchfleet\(run)-homeassistant"
            options.progress("initial sync \(run)/\(options.syncRuns)")
            recorder.reset()
            try await subscriber.subscribe(["\(base)/#"])
            let started = Monotonic.now()
            let bridge = try startBridge(base: base, discoveryPrefix: discoveryPrefix)
            let sync = try await waitForSync(base: base, bridge: bridge)
            report.syncMilliseconds.append(Double(sync.lightsAndDevices - started) / 1e6)
            report.completeSyncMilliseconds.append(Double(sync.complete - started) / 1e6)
            report.devicesByGateway = sync.devicesByGateway
            report.syncTraffic = sync.traffic
            try await subscriber.unsubscribe(["\(base)/#"])
            if last {
                self.bridge = bridge
            } else {
                await bridge.stop()
            }
        }
    }

    struct SyncTimes {
        /// Every light state of every gateway and a complete bridge/devices were on the broker.
        var lightsAndDevices: UInt64
        /// And every room state and bridge/groups with every scene (the one-gateway definition).
        var complete: UInt64
        /// Devices per gateway in that bridge/devices.
        var devicesByGateway: [String: Int]
        var traffic: FleetReport.SyncTraffic
    }

    /// Occurrences of `needle` in `bytes` (a plain scan, no parsing).
    static func occurrences(of needle: String, in bytes: [UInt8]) -> Int {
        let pattern = Array(needle.utf8)
        guard let first = pattern.first, bytes.count >= pattern.count else { return 0 }
        var count = 0
        var index = 0
        let last = bytes.count - pattern.count
        while index <= last {
            if bytes[index] == first, bytes[index..<index + pattern.count].elementsEqual(pattern) {
                count += 1
                index += pattern.count
            } else {
                index += 1
            }
        }
        return count
    }

    /// Reads the arrivals as they come (each message once, bridge/devices parsed once per
    /// message, so the check takes little from the two cores the bridge is syncing on).
    private func waitForSync(base: String, bridge: Spawned) async throws -> SyncTimes {
        var pendingLights = Set(members.flatMap { $0.lightIDs.keys.map { "\(base)/\($0)" } })
        var pendingRooms = Set(members.flatMap { $0.roomNames.map { "\(base)/\($0)" } })
        let devicesTopic = "\(base)/bridge/devices"
        let groupsTopic = "\(base)/bridge/groups"
        let expectedDevices = members.count * options.lights
        let expectedGroups = members.count * options.groups
        let expectedScenes = members.count * options.groups * 2
        var traffic = FleetReport.SyncTraffic()
        var lastLight: UInt64 = 0
        var lastRoom: UInt64 = 0
        var devices: (time: UInt64, byGateway: [String: Int])?
        var groupsTime: UInt64?
        var cursor = 0
        let deadline = ContinuousClock.now + .seconds(180)
        while ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(10))
            let (batch, next) = recorder.messages(from: cursor)
            cursor = next
            for message in batch {
                traffic.messages += 1
                traffic.bytes += message.payload.count
                if pendingLights.remove(message.topic) != nil {
                    lastLight = max(lastLight, message.time)
                } else if pendingRooms.remove(message.topic) != nil {
                    lastRoom = max(lastRoom, message.time)
                } else if message.topic == devicesTopic {
                    traffic.devicesListings += 1
                    traffic.devicesListingBytes += message.payload.count
                    // A cheap count first (one "gateway" key per device entry): a listing is
                    // parsed only when it can be the complete one.
                    guard devices == nil, Self.occurrences(of: #""gateway":"#, in: message.payload) == expectedDevices,
                        let list = (try? JSON(parsing: message.payload))?.arrayValue, list.count == expectedDevices
                    else { continue }
                    var byGateway: [String: Int] = [:]
                    for entry in list { byGateway[entry["gateway"]?.stringValue ?? "?", default: 0] += 1 }
                    devices = (message.time, byGateway)
                } else if message.topic == groupsTopic {
                    traffic.groupsListings += 1
                    traffic.groupsListingBytes += message.payload.count
                    // One "name" per group and per scene (members have none).
                    guard groupsTime == nil,
                        Self.occurrences(of: #""name":"#, in: message.payload) == expectedGroups + expectedScenes,
                        let list = (try? JSON(parsing: message.payload))?.arrayValue,
                        list.reduce(0, { $0 + ($1["scenes"]?.arrayValue?.count ?? 0) }) == expectedScenes
                    else { continue }
                    groupsTime = message.time
                }
            }
            if pendingLights.isEmpty, pendingRooms.isEmpty, let devices, let groupsTime {
                let lightsAndDevices = max(lastLight, devices.time)
                return SyncTimes(
                    lightsAndDevices: lightsAndDevices, complete: max(lightsAndDevices, lastRoom, groupsTime),
                    devicesByGateway: devices.byGateway, traffic: traffic)
            }
        }
        var missing: [String: Int] = [:]
        for topic in pendingLights {
            missing[String(topic.dropFirst(base.count + 1).prefix { $0 != "/" }), default: 0] += 1
        }
        throw BenchError(
            """
            the bridge did not publish every state within 180 s: light states missing by gateway \
            \(missing.sorted { $0.key < $1.key }), rooms missing \(pendingRooms.count), bridge/devices \
            \(devices == nil ? "incomplete" : "complete"), bridge/groups \(groupsTime == nil ? "incomplete" : "complete")
            \(bridge.output)
            """)
    }

    // MARK: 2. Changes on every gateway at once

    private func measureChanges(into report: inout FleetReport) async throws {
        guard let bridge else { throw BenchError("the bridge is not running") }
        let subscriber = try ready(self.subscriber, "the subscriber")
        try await subscriber.subscribe(members.count > 1 ? members.map { "tradfri/\($0.name)/+" } : ["tradfri/+"])
        // The broker sends every retained state at once: the changes start after that flood.
        try await settle()
        let perGateway = options.rate / Double(members.count)
        options.progress(
            "changes: \(Int(options.rate))/s in all (\(String(format: "%.3g", perGateway))/s on each of "
                + "\(members.count) gateways) for \(Int(options.seconds)) s")
        recorder.reset()
        let actions = members.map { change($0) }
        let turn = ChangeSource(ids: Array(actions.indices))
        let cpuBefore = bridge.cpuMilliseconds()
        let brokerBefore = broker?.process.cpuMilliseconds() ?? 0
        let selfBefore = Self.ownCPUMilliseconds()
        report.driven = await Benchmark.drive(rate: options.rate, seconds: options.seconds, burst: 1) {
            actions[turn.next().id]()
        }
        try await settle()
        report.bridgeCPUMilliseconds = bridge.cpuMilliseconds() - cpuBefore
        report.brokerCPUMilliseconds = (broker?.process.cpuMilliseconds() ?? 0) - brokerBefore
        report.benchCPUMilliseconds = Self.ownCPUMilliseconds() - selfBefore
        var rows: [String] = []
        let origin = recorder.lightPuts(simulator: 0).first?.time ?? 0
        for (index, member) in members.enumerated() {
            // Every gateway has the same device ids: its PUTs are matched to its own topics only.
            let starts = recorder.lightPuts(simulator: index)
            let latencies = matchEach(
                starts: starts, deliveries: recorder.lightStates(prefix: "tradfri/", ids: member.lightIDs))
            report.gateways.append(
                .init(
                    name: member.name,
                    latency: Latency(samples: latencies.compactMap { $0 }, expected: starts.count)))
            for (start, latency) in zip(starts, latencies) where options.samplesFile != nil {
                let at = Double(Int64(bitPattern: start.time &- origin)) / 1e6
                rows.append(
                    "\(member.name),\(start.device),\(String(format: "%.3f", at)),"
                        + (latency.map { String(format: "%.0f", $0) } ?? ""))
            }
        }
        if let file = options.samplesFile {
            let text = "gateway,device,start_ms,latency_us\n" + rows.joined(separator: "\n") + "\n"
            try text.write(toFile: file, atomically: true, encoding: .utf8)
        }
    }

    /// A light PUT through the app client of one gateway.
    private func change(_ member: Member) -> @Sendable () -> Void {
        let (app, source) = (member.app, member.changes)
        return {
            let (id, level) = source.next()
            Task { @CoAPActor in
                _ = try? await app.put("15001/\(id)", json: #"{"3311":[{"5851":\#(level)}]}"#)
            }
        }
    }

    /// Waits for the last deliveries: until nothing arrived for a second (30 s at most), so a
    /// backlog still draining is waited for rather than counted as lost.
    private func settle() async throws {
        var count = recorder.messageCount
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            try await Task.sleep(for: .seconds(1))
            let now = recorder.messageCount
            if now == count { break }
            count = now
        }
    }

    /// User plus system CPU of this process (the simulators, the app clients, the subscriber).
    static func ownCPUMilliseconds() -> Double {
        var usage = rusage()
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
        let seconds =
            Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec)
            + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
        return seconds * 1000
    }
}
