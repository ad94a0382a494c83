import CoAP
import Foundation
import GatewaySimulator
import HubModel
import MQTT
import TradfriModel

/// What the soak runs and against which limits.
struct SoakOptions: Sendable {
    struct Limits: Sendable {
        var firstSync: Double
        var brokerRecovery: Double
        var gatewayRecovery: Double
    }

    var bridgePath: String
    var simulatorPath: String
    var seed: UInt64 = 1
    var duration = 60.0
    var lights = 50
    var dropRate = 0.05
    var commandRate = 20.0
    var clients = 4
    var appRate = 5.0
    var faults: [SoakFault] = []
    var faultInterval = 60.0
    var settle = 30.0
    /// The gateway counts as left alone once nothing asked it to change anything for this long
    /// (the bridge's request timeout: a queued command waits at most that long behind one request).
    var quiet = 10.0
    /// Longest wait, after the load stops, for the gateway to be left alone.
    var drainLimit = 120.0
    var limits = Limits(firstSync: 5, brokerRecovery: 10, gatewayRecovery: 15)
    var keep: String?
    var bridgeLogLevel = "info"
    var progress: @Sendable (String) -> Void = { _ in }
}

enum SoakFault: String, Sendable, CaseIterable {
    case reboot
    case simulatorKill = "simulator-kill"
    case brokerKill = "broker-kill"
    case burst
}

/// The soak's seeded choices: the same seed chooses the same lights and commands.
typealias SeededRandom = SplitMix64

/// mosquitto on a fixed loopback port that can be killed and started again on the same port
/// (no persistence: a restart loses every retained message, as a broker without a store does).
final class SoakBroker: @unchecked Sendable {
    // @unchecked: `process` is replaced only by the soak's own task, one step at a time.
    let port: UInt16
    private let file: String
    private let log: String
    private var process: Spawned?

    init(directory: String) throws {
        port = freeTCPPort()
        file = directory + "/mosquitto.conf"
        log = directory + "/mosquitto.log"
        var lines = [
            "listener \(port) 127.0.0.1", "allow_anonymous true", "persistence false", "log_dest stderr",
            "log_type error", "log_type warning", "max_queued_messages 100000",
        ]
        if getuid() == 0 { lines.append("user root") }
        try (lines.joined(separator: "\n") + "\n").write(toFile: file, atomically: true, encoding: .utf8)
    }

    func start() async throws {
        let log = self.log
        let process = try Spawned("/usr/sbin/mosquitto", ["-c", file]) { line in appendLine(line, to: log) }
        self.process = process
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline {
            if acceptsTCP(port: port) { return }
            if process.exitStatus() != nil { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw BenchError("mosquitto did not start on port \(port):\n\(process.output)")
    }

    func kill() async {
        await process?.killNow()
        process = nil
    }

    func stop() async {
        await process?.stop()
        process = nil
    }
}

/// The gateway simulator binary on a fixed port, with its identities in a state directory so
/// they survive a `kill -9` and a start, as a real gateway's survive a power cut.
final class SoakGateway: @unchecked Sendable {
    // @unchecked: `process` and `starts` are changed only by the soak's own task.
    let port: UInt16
    let securityCode = "SOAKSECURITYCODE"
    private let options: SoakOptions
    private let directory: String
    private let log: String
    private var process: Spawned?
    private var starts: UInt64 = 0

    init(options: SoakOptions, directory: String, identities: [String: String]) throws {
        self.options = options
        self.directory = directory
        log = directory + "/simulator.log"
        port = freeUDPPort()
        let state = directory + "/simulator-state"
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
        let text = JSON.object(identities.mapValues { .string($0) }).description
        try text.write(toFile: state + "/identities.json", atomically: true, encoding: .utf8)
    }

    /// Starts the simulator and waits until it serves. Each start gets its own loss pattern,
    /// derived from the seed.
    func start() async throws {
        let log = self.log
        appendLine("--- start \(starts + 1)", to: log)
        let process = try Spawned(
            options.simulatorPath,
            [
                "--listen", "127.0.0.1:\(port)", "--security-code", securityCode, "--lights", "\(options.lights)",
                "--state-dir", directory + "/simulator-state", "--reboot-delay", "3",
                "--drop-rate", "\(options.dropRate)", "--drop-seed", "\(options.seed &* 7919 &+ starts)",
                "--log-level", "info", "--request-log", directory + "/requests.jsonl",
            ]
        ) { line in appendLine(line, to: log) }
        starts += 1
        self.process = process
        guard await process.waitForLine(within: .seconds(20), { $0.contains("listening on") }) != nil else {
            throw BenchError("the simulator did not start:\n\(process.output)")
        }
    }

    /// Waits for the simulator's "serving again after reboot" line, counting from now.
    func waitUntilServingAgain(within limit: Duration) async -> Bool {
        guard let process else { return false }
        let marker = "serving again after reboot"
        let seen = process.output.components(separatedBy: marker).count - 1
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline {
            if process.output.components(separatedBy: marker).count - 1 > seen { return true }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return false
    }

    func reboot() {
        process?.signal(SIGUSR1)
    }

    func kill() async {
        await process?.killNow()
        process = nil
    }

    func stop() async {
        await process?.stop()
        process = nil
    }
}

/// Appends a line to a log file (the soak keeps every process's output).
func appendLine(_ line: String, to path: String) {
    guard let handle = FileHandle(forWritingAtPath: path) else {
        _ = FileManager.default.createFile(atPath: path, contents: Data((line + "\n").utf8))
        return
    }
    handle.seekToEndOfFile()
    handle.write(Data((line + "\n").utf8))
    try? handle.close()
}

func acceptsTCP(port: UInt16) -> Bool {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = loopback(port)
    return withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
        }
    } == 0
}

/// A UDP port on 127.0.0.1 that was free a moment ago.
func freeUDPPort() -> UInt16 {
    let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
    defer { close(fd) }
    var address = loopback(0)
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
    }
    _ = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
    }
    return UInt16(bigEndian: address.sin_port)
}

/// A light as the soak compares it: what the gateway holds, or what MQTT shows.
struct LightSnapshot: Equatable, Sendable, CustomStringConvertible {
    var on: Bool
    var brightness: Int
    /// Mireds, for white-spectrum bulbs.
    var colorTemperature: Int?
    /// CIE x and y to 4 decimals, for colour bulbs.
    var x: Double?
    var y: Double?

    /// From the gateway's JSON of the device (`15001/<id>`).
    init?(gateway device: JSON, spectrum: LightSpectrum) {
        guard let light = device["3311"]?[0], let on = light["5850"]?.intValue, let level = light["5851"]?.intValue
        else { return nil }
        self.on = on == 1
        brightness = level
        switch spectrum {
        case .white:
            break
        case .whiteSpectrum:
            colorTemperature = light["5711"]?.intValue
        case .color:
            if let gx = light["5709"]?.intValue, let gy = light["5710"]?.intValue {
                let xy = Color.xy(gatewayX: gx, gatewayY: gy)
                x = (xy.x * 10_000).rounded() / 10_000
                y = (xy.y * 10_000).rounded() / 10_000
            }
        }
    }

    /// From the bridge's state message on `<base>/<name>`.
    init?(mqtt state: JSON, spectrum: LightSpectrum) {
        guard let text = state["state"]?.stringValue, let level = state["brightness"]?.intValue else { return nil }
        on = text == "ON"
        brightness = level
        switch spectrum {
        case .white:
            break
        case .whiteSpectrum:
            colorTemperature = state["color_temp"]?.intValue
        case .color:
            x = state["color"]?["x"]?.doubleValue
            y = state["color"]?["y"]?.doubleValue
        }
    }

    var description: String {
        var parts = ["\(on ? "ON" : "OFF") \(brightness)"]
        if let colorTemperature { parts.append("\(colorTemperature) mired") }
        if let x, let y { parts.append("xy \(x),\(y)") }
        return parts.joined(separator: " ")
    }
}

/// Everything the bridge publishes under `<base>/`, as a subscriber that stays connected sees it
/// (the latest payload of each topic), plus counts. Waiters are woken on every message.
final class MQTTView: @unchecked Sendable {
    // @unchecked: every field is guarded by `lock`.
    typealias Predicate = @Sendable (MQTTView) -> Bool
    private let lock = NSLock()
    private var latest: [String: JSON] = [:]
    private var counts: [String: Int] = [:]
    private var events: [String: Int] = [:]
    private var waiters: [Int: (predicate: Predicate, continuation: CheckedContinuation<Bool, Never>)] = [:]
    private var nextWaiter = 0
    let client: MQTTClient
    private let base: String

    init(port: UInt16, clientID: String, base: String = "tradfri") throws {
        self.base = base
        client = try MQTTClient(
            MQTTConfiguration(
                host: "127.0.0.1", port: port, clientID: clientID,
                reconnect: MQTTReconnectPolicy(minimumDelay: .milliseconds(100), maximumDelay: .milliseconds(500))))
    }

    /// Connects and subscribes to `filters` (re-issued by the client after every reconnect).
    func start(filters: [String]) async throws {
        try client.start()
        let stream = client.events
        Task.detached { [self] in
            for await event in stream {
                if case .message(let message) = event { received(message) }
            }
        }
        let deadline = ContinuousClock.now + .seconds(10)
        while !client.isConnected {
            guard ContinuousClock.now < deadline else { throw BenchError("cannot connect to mosquitto") }
            try await Task.sleep(for: .milliseconds(5))
        }
        try await client.subscribe(filters)
    }

    private func received(_ message: MQTTMessage) {
        let payload = message.payload.isEmpty ? nil : try? JSON(parsing: message.payload)
        lock.withLock {
            latest[message.topic] = payload
            counts[message.topic, default: 0] += 1
            if message.topic == base + "/bridge/event", let type = payload?["type"]?.stringValue {
                events[type, default: 0] += 1
            }
        }
        wakeWaiters()
    }

    private func wakeWaiters() {
        let waiting = lock.withLock { waiters }
        let ready = waiting.filter { $0.value.predicate(self) }.map(\.key)
        guard !ready.isEmpty else { return }
        let resumed = lock.withLock { ready.compactMap { waiters.removeValue(forKey: $0)?.continuation } }
        for continuation in resumed { continuation.resume(returning: true) }
    }

    func payload(_ topic: String) -> JSON? {
        lock.withLock { latest[topic] }
    }

    func count(_ topic: String) -> Int {
        lock.withLock { counts[topic] ?? 0 }
    }

    func eventCount(_ type: String) -> Int {
        lock.withLock { events[type] ?? 0 }
    }

    /// Waits until `predicate` holds (checked now and after every message); false after `limit`.
    func wait(within limit: Duration, until predicate: @escaping Predicate) async -> Bool {
        if predicate(self) { return true }
        let id = lock.withLock {
            nextWaiter += 1
            return nextWaiter
        }
        let watchdog = Task { [weak self] in
            try? await Task.sleep(for: limit)
            self?.expire(id)
        }
        defer { watchdog.cancel() }
        let result = await withCheckedContinuation { continuation in
            lock.withLock { waiters[id] = (predicate, continuation) }
            // A message may have arrived between the first check and the registration.
            wakeWaiters()
        }
        return result || predicate(self)
    }

    private func expire(_ id: Int) {
        lock.withLock { waiters.removeValue(forKey: id) }?.continuation.resume(returning: false)
    }

    func stop() async {
        await client.disconnect()
        let waiting = lock.withLock {
            defer { waiters.removeAll() }
            return waiters.values.map(\.continuation)
        }
        for continuation in waiting { continuation.resume(returning: false) }
    }
}

/// The other identity at the gateway (the IKEA app): changes lights and reads them, reconnecting
/// whenever its session died (gateway reboot or restart).
@CoAPActor
final class SoakApp {
    private let port: UInt16
    private let identity: String
    private let key: String
    private var client: CoAPClient?

    nonisolated init(port: UInt16, identity: String, key: String) {
        self.port = port
        self.identity = identity
        self.key = key
    }

    private func connected() async throws -> CoAPClient {
        if let client, client.isConnected { return client }
        client?.close()
        let fresh = CoAPClient(
            .init(
                host: "127.0.0.1", port: port, identity: identity, key: key, handshakeTimeout: .seconds(5),
                requestTimeout: .seconds(8)))
        client = fresh
        try await fresh.connect()
        return fresh
    }

    /// Sends a request; on any failure the session is dropped, so the next call reconnects.
    func request(_ method: CoAPMethod, _ path: String, json: String? = nil) async -> CoAPResponse? {
        do {
            let client = try await connected()
            return try await client.request(method, path, payload: json.map { Array($0.utf8) })
        } catch {
            client?.close()
            client = nil
            return nil
        }
    }

    /// Reconnects until a request succeeds or `limit` passed.
    func waitUntilReachable(within limit: Duration) async -> Bool {
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline {
            if let response = await request(.get, "15011/15012"), response.code.isSuccess { return true }
            try? await Task.sleep(for: .milliseconds(100))
        }
        return false
    }

    func close() {
        client?.close()
        client = nil
    }
}

/// What the gateway was asked to change, from the simulator's request log (every request it
/// handled, one JSON line each, `--request-log`): how the soak knows the gateway is no longer
/// being changed. After the load stops the bridge may still be working through the commands it
/// queued, and a CoAP retransmission of an earlier PUT can still arrive and be carried out again
/// (libcoap 4.3.1's server hands a retransmitted PUT to the handler again).
struct GatewayChanges {
    private let path: String
    private var offset: UInt64 = 0
    /// PUTs and POSTs handled so far.
    private(set) var count = 0
    /// When the latest of them was handled (Unix seconds).
    private(set) var latest: Double?

    init(path: String) {
        self.path = path
    }

    /// Reads what the simulator logged since the last call (complete lines only).
    mutating func poll() {
        guard let handle = FileHandle(forReadingAtPath: path) else { return }
        defer { try? handle.close() }
        handle.seek(toFileOffset: offset)
        let data = handle.readDataToEndOfFile()
        guard let end = data.lastIndex(of: UInt8(ascii: "\n")) else { return }
        offset += UInt64(end - data.startIndex + 1)
        for line in data[data.startIndex..<end].split(separator: UInt8(ascii: "\n")) {
            guard let entry = try? JSON(parsing: Array(line)), let method = entry["method"]?.stringValue,
                method != "GET"
            else { continue }
            count += 1
            if let time = entry["time"]?.doubleValue { latest = max(latest ?? time, time) }
        }
    }

    /// Seconds since the gateway was last asked to change something (nil: never).
    var quietFor: Double? {
        latest.map { Date().timeIntervalSince1970 - $0 }
    }
}
