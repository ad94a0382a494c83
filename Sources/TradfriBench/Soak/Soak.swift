import CoAP
import Foundation
import GatewaySimulator
import HubModel
import MQTT
import TradfriModel

/// One soak run (see `SoakCommand`): the real binaries, loss, load and faults, then a verdict
/// light by light.
final class Soak: @unchecked Sendable {
    // @unchecked: the run is driven by one task at a time; the load and fault tasks it starts share
    // only thread-safe pieces (MQTT clients, the view, `SoakApp` on the CoAP actor, `counters`).
    let options: SoakOptions
    private let directory: String
    private let keys: [String: String]
    private var broker: SoakBroker?
    private var gateway: SoakGateway?
    private var bridge: Spawned?
    private var view: MQTTView?
    private var app: SoakApp?
    private var publishers: [MQTTClient] = []
    private let counters = SoakCounters()
    private var report: SoakReport

    /// Every light of the fixture, by id, with its spectrum.
    private let lights: [Int: LightSpectrum]
    /// Lights the random load touches (all but the probe and burst lights).
    private let loadLights: [Int]
    /// The light changed at the gateway to see when changes flow again (the demo home's Hallway).
    private let probeLight = 65537
    /// The light that gets the bursts of 200 commands.
    private let burstLight: Int
    /// Device id → state topic, from `bridge/devices`.
    private var topics: [Int: String] = [:]

    init(options: SoakOptions) {
        self.options = options
        directory = options.keep ?? NSTemporaryDirectory() + "tradfri-soak-\(getpid())"
        var keys: [String: String] = [:]
        var random = SeededRandom(seed: options.seed)
        let alphabet = Array("ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789")
        for name in ["soak-bridge", "soak-app", "soak-checker"] {
            keys[name] = String((0..<16).map { _ in alphabet.randomElement(using: &random)! })
        }
        self.keys = keys
        var fixture = Fixture.demoHome()
        fixture.addGenerated(lights: options.lights, groups: 0)
        var lights: [Int: LightSpectrum] = [:]
        for (id, json) in fixture.devices {
            if let device = try? Device(payload: json.bytes), let light = device.light { lights[id] = light.spectrum }
        }
        self.lights = lights
        burstLight = lights.keys.max() ?? probeLight
        loadLights = lights.keys.sorted().filter { $0 != 65537 && $0 != (lights.keys.max() ?? 0) }
        report = SoakReport(options: options, lightCount: lights.count)
    }

    private func ready<Piece>(_ piece: Piece?, _ name: String) throws -> Piece {
        guard let piece else { throw BenchError("\(name) is not set up") }
        return piece
    }

    // MARK: Running

    func run() async throws -> SoakReport {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { if options.keep == nil { try? FileManager.default.removeItem(atPath: directory) } }
        do {
            try await setUp()
            try await load()
            try await verdict()
        } catch {
            report.failure = "\(error)"
        }
        await tearDown()
        return report
    }

    private func setUp() async throws {
        options.progress(
            "seed \(options.seed): \(lights.count) lights, \(Int(options.dropRate * 100)) % loss, logs in \(directory)")
        let broker = try SoakBroker(directory: directory)
        try await broker.start()
        self.broker = broker
        let gateway = try SoakGateway(options: options, directory: directory, identities: keys)
        try await gateway.start()
        self.gateway = gateway
        app = SoakApp(port: gateway.port, identity: "soak-app", key: keys["soak-app"] ?? "")

        let view = try MQTTView(port: broker.port, clientID: "soak-view")
        try await view.start(filters: ["tradfri/#"])
        self.view = view
        for index in 0..<options.clients {
            let client = try MQTTClient(
                MQTTConfiguration(
                    host: "127.0.0.1", port: broker.port, clientID: "soak-load-\(index)",
                    reconnect: MQTTReconnectPolicy(minimumDelay: .milliseconds(100), maximumDelay: .milliseconds(500))))
            try client.start()
            let events = client.events
            Task.detached {
                for await _ in events {}
            }
            publishers.append(client)
        }

        options.progress("starting the bridge; waiting for the first sync")
        let started = ContinuousClock.now
        bridge = try startBridge(gatewayPort: gateway.port, brokerPort: broker.port)
        let lightIDs = Array(lights.keys)
        let synced = await view.wait(within: .seconds(120)) { view in
            guard let devices = view.payload("tradfri/bridge/devices")?.arrayValue else { return false }
            var topics: [Int: String] = [:]
            for entry in devices {
                if let id = entry["id"]?.intValue, let topic = entry["topic"]?.stringValue { topics[id] = topic }
            }
            return lightIDs.allSatisfy { id in topics[id].map { view.payload($0) != nil } ?? false }
        }
        guard synced else { throw BenchError("the bridge did not publish every light within 120 s") }
        report.firstSync = (ContinuousClock.now - started).inSeconds
        for entry in view.payload("tradfri/bridge/devices")?.arrayValue ?? [] {
            if let id = entry["id"]?.intValue, let topic = entry["topic"]?.stringValue { topics[id] = topic }
        }
        options.progress(String(format: "first sync: %.2f s", report.firstSync ?? 0))
    }

    private func startBridge(gatewayPort: UInt16, brokerPort: UInt16) throws -> Spawned {
        let credentials = directory + "/credentials.json"
        let stored: JSON = [
            "identity": "soak-bridge", "psk": .string(keys["soak-bridge"] ?? ""),
            "gateway_id": .string(Fixture.demoHome().gateway["9081"]?.stringValue ?? ""),
            "address": "127.0.0.1", "port": .int(Int(gatewayPort)), "paired_at": "2026-01-01T00:00:00Z",
        ]
        try stored.description.write(toFile: credentials, atomically: true, encoding: .utf8)
        chmod(credentials, 0o600)
        let configuration = """
            gateway:
              address: 127.0.0.1:\(gatewayPort)
              credentials: \(credentials)
            mqtt:
              server: mqtt://127.0.0.1:\(brokerPort)
              client_id: soak-bridge
            discovery:
              enabled: false
              advertise: false
            logging:
              level: info
            """
        let file = directory + "/config.yaml"
        try configuration.write(toFile: file, atomically: true, encoding: .utf8)
        let log = directory + "/bridge.log"
        let counters = self.counters
        return try Spawned(options.bridgePath, ["run", "--config", file]) { line in
            appendLine(line, to: log)
            counters.logLine(line)
        }
    }

    // MARK: Load and faults

    private func load() async throws {
        options.progress("load for \(Int(options.duration)) s, faults: \(options.faults.map(\.rawValue))")
        let end = ContinuousClock.now + .seconds(options.duration)
        let view = try ready(self.view, "the view")
        let countBefore = stateMessages(view)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await self.commandLoad(until: end) }
            group.addTask { await self.appLoad(until: end) }
            group.addTask { try await self.faultLoop(until: end) }
            try await group.waitForAll()
        }
        report.stateMessages = stateMessages(view) - countBefore
        report.commandsSent = counters.commands
        report.appChanges = counters.appChanges
        report.appChangesFailed = counters.appFailures
        report.commandErrors = view.eventCount("command_error")
        if let status = bridge?.exitStatus() {
            throw BenchError("the bridge exited during the load (status \(status))")
        }
    }

    private func stateMessages(_ view: MQTTView) -> Int {
        lights.keys.reduce(0) { sum, id in sum + (topics[id].map { view.count($0) } ?? 0) }
    }

    /// `commandRate` valid commands a second, round robin over the clients, to random lights.
    private func commandLoad(until end: ContinuousClock.Instant) async {
        guard options.commandRate > 0 else { return }
        var random = SeededRandom(seed: options.seed &+ 1)
        let interval = Duration.seconds(1 / options.commandRate)
        var due = ContinuousClock.now
        var tick = 0
        while due < end {
            try? await Task.sleep(until: due, clock: .continuous)
            due += interval
            guard let id = loadLights.randomElement(using: &random), let spectrum = lights[id] else { continue }
            let (suffix, payload) = SoakCommands.random(for: spectrum, using: &random)
            let client = publishers[tick % publishers.count]
            tick += 1
            do {
                try client.publish(MQTTMessage(topic: "tradfri/\(id)/set\(suffix)", text: payload, qos: .atLeastOnce))
                counters.commandSent()
            } catch {
                counters.commandSkipped()
            }
        }
    }

    /// `appRate` changes a second at the gateway, made by the app's identity.
    private func appLoad(until end: ContinuousClock.Instant) async {
        guard options.appRate > 0, let app else { return }
        var random = SeededRandom(seed: options.seed &+ 2)
        let interval = Duration.seconds(1 / options.appRate)
        var due = ContinuousClock.now
        while due < end {
            try? await Task.sleep(until: due, clock: .continuous)
            due += interval
            guard let id = loadLights.randomElement(using: &random), let spectrum = lights[id] else { continue }
            let body = SoakCommands.randomGatewayChange(for: spectrum, using: &random)
            // One change at a time, like a person with the app: a late answer skips ticks.
            if let response = await app.request(.put, "15001/\(id)", json: body), response.code.isSuccess {
                counters.appChanged()
            } else {
                counters.appFailed()
            }
            if ContinuousClock.now > due { due = ContinuousClock.now }
        }
    }

    private func faultLoop(until end: ContinuousClock.Instant) async throws {
        guard !options.faults.isEmpty else { return }
        var next = ContinuousClock.now + .seconds(options.faultInterval)
        var index = 0
        while next < end {
            try await Task.sleep(until: next, clock: .continuous)
            let fault = options.faults[index % options.faults.count]
            index += 1
            options.progress("fault \(index): \(fault.rawValue)")
            let outcome = try await inject(fault)
            report.faults.append(outcome)
            options.progress("fault \(index): \(outcome.summary)")
            next = max(next + .seconds(options.faultInterval), ContinuousClock.now + .seconds(5))
        }
    }

    private func inject(_ fault: SoakFault) async throws -> SoakReport.Fault {
        let gateway = try ready(self.gateway, "the simulator")
        let broker = try ready(self.broker, "the broker")
        let view = try ready(self.view, "the view")
        let app = try ready(self.app, "the app")
        switch fault {
        case .reboot, .simulatorKill:
            if fault == .reboot {
                gateway.reboot()
                guard await gateway.waitUntilServingAgain(within: .seconds(30)) else {
                    return .init(kind: fault, seconds: nil, limit: options.limits.gatewayRecovery, note: "no restart")
                }
            } else {
                await gateway.kill()
                try await gateway.start()
            }
            let back = ContinuousClock.now
            guard await app.waitUntilReachable(within: .seconds(30)) else {
                return .init(kind: fault, seconds: nil, limit: options.limits.gatewayRecovery, note: "unreachable")
            }
            // A change at the gateway: how long until MQTT shows it?
            let level = counters.nextProbeLevel()
            let topic = topics[probeLight] ?? "tradfri/hallway"
            var changed = false
            while !changed, ContinuousClock.now - back < .seconds(30) {
                let body = #"{"3311":[{"5850":1,"5851":\#(level)}]}"#
                changed = await app.request(.put, "15001/\(probeLight)", json: body)?.code.isSuccess == true
            }
            let seen = await view.wait(within: .seconds(60)) { view in
                view.payload(topic)?["brightness"]?.intValue == level && view.payload(topic)?["state"] == "ON"
            }
            return .init(
                kind: fault, seconds: seen ? (ContinuousClock.now - back).inSeconds : nil,
                limit: options.limits.gatewayRecovery, note: "change at the gateway → MQTT")
        case .brokerKill:
            await broker.kill()
            try await broker.start()
            let back = ContinuousClock.now
            let expected = Set(lights.keys.compactMap { topics[$0] })
            let fresh = try MQTTView(port: broker.port, clientID: "soak-fresh-\(counters.nextProbeLevel())")
            try await fresh.start(filters: ["tradfri/+"])
            let all = await fresh.wait(within: .seconds(60)) { view in expected.allSatisfy { view.payload($0) != nil } }
            await fresh.stop()
            return .init(
                kind: fault, seconds: all ? (ContinuousClock.now - back).inSeconds : nil,
                limit: options.limits.brokerRecovery, note: "every retained light state back")
        case .burst:
            let client = publishers[0]
            let final = 100 + counters.nextProbeLevel() % 100
            let started = ContinuousClock.now
            for step in 0..<200 {
                let level = step == 199 ? final : 1 + (step * 37) % 254
                try? client.publish(
                    MQTTMessage(
                        topic: "tradfri/\(burstLight)/set", text: #"{"brightness":\#(level)}"#, qos: .atLeastOnce))
            }
            counters.burstSent(final: final)
            let topic = topics[burstLight] ?? ""
            let seen = await view.wait(within: .seconds(60)) { view in
                view.payload(topic)?["brightness"]?.intValue == final
            }
            return .init(
                kind: fault, seconds: seen ? (ContinuousClock.now - started).inSeconds : nil, limit: nil,
                note: "last of 200 commands on MQTT")
        }
    }

    // MARK: Verdict

    private func verdict() async throws {
        let view = try ready(self.view, "the view")
        let app = try ready(self.app, "the app")
        options.progress("load stopped; waiting up to \(Int(options.settle)) s for MQTT to equal the gateway")
        let stopped = ContinuousClock.now
        let deadline = stopped + .seconds(options.settle)
        var mismatches: [SoakReport.Mismatch] = []
        repeat {
            mismatches = await compare(gateway: { id in await app.request(.get, "15001/\(id)") }, mqtt: view.payload)
            if mismatches.isEmpty { break }
            _ = await view.wait(within: .seconds(1)) { _ in false }
        } while ContinuousClock.now < deadline
        report.converged = mismatches.isEmpty ? (ContinuousClock.now - stopped).inSeconds : nil

        // The verdict: the gateway as coap-client-openssl reads it, MQTT as a new subscriber sees it.
        options.progress("final comparison: coap-client-openssl against a fresh subscriber's retained states")
        let gatewayStates = try await readWithCoapClient()
        let broker = try ready(self.broker, "the broker")
        let fresh = try MQTTView(port: broker.port, clientID: "soak-verdict")
        try await fresh.start(filters: ["tradfri/+"])
        let expected = Set(lights.keys.compactMap { topics[$0] })
        _ = await fresh.wait(within: .seconds(10)) { view in expected.allSatisfy { view.payload($0) != nil } }
        report.mismatches = await compare(
            gateway: { id in gatewayStates[id].map { CoAPResponse(code: .content, payload: Array($0.utf8)) } },
            mqtt: fresh.payload)
        await fresh.stop()
        report.unreadable = lights.keys.filter { gatewayStates[$0] == nil }.sorted()

        // resync must re-read everything and leave MQTT equal, also under loss.
        options.progress("bridge/request/resync")
        let started = ContinuousClock.now
        let before = view.count("tradfri/bridge/response/resync")
        try view.client.publish(MQTTMessage(topic: "tradfri/bridge/request/resync", text: #"{"transaction":1}"#))
        if await view.wait(within: .seconds(60), until: { $0.count("tradfri/bridge/response/resync") > before }) {
            report.resyncSeconds = (ContinuousClock.now - started).inSeconds
            report.resyncStatus = view.payload("tradfri/bridge/response/resync")?["status"]?.stringValue
        }
        report.afterResync = await compare(
            gateway: { id in await app.request(.get, "15001/\(id)") }, mqtt: view.payload)
    }

    private func compare(
        gateway read: (Int) async -> CoAPResponse?, mqtt: (String) -> JSON?
    ) async -> [SoakReport.Mismatch] {
        var mismatches: [SoakReport.Mismatch] = []
        for id in lights.keys.sorted() {
            guard let spectrum = lights[id] else { continue }
            let topic = topics[id] ?? "?"
            var gatewayState: LightSnapshot?
            for _ in 0..<3 where gatewayState == nil {
                if let response = await read(id), response.code == .content,
                    let json = try? JSON(parsing: response.payload)
                {
                    gatewayState = LightSnapshot(gateway: json, spectrum: spectrum)
                }
            }
            let mqttState = mqtt(topic).flatMap { LightSnapshot(mqtt: $0, spectrum: spectrum) }
            if gatewayState == nil || gatewayState != mqttState {
                mismatches.append(.init(id: id, topic: topic, gateway: gatewayState, mqtt: mqttState))
            }
        }
        return mismatches
    }

    /// Every light read with `coap-client-openssl` (its own identity), a few at a time.
    private func readWithCoapClient() async throws -> [Int: String] {
        let gateway = try ready(self.gateway, "the simulator")
        let key = keys["soak-checker"] ?? ""
        var results: [Int: String] = [:]
        let ids = lights.keys.sorted()
        for chunk in stride(from: 0, to: ids.count, by: 8).map({ Array(ids[$0..<min($0 + 8, ids.count)]) }) {
            await withTaskGroup(of: (Int, String?).self) { group in
                for id in chunk {
                    group.addTask {
                        for _ in 0..<3 {
                            if let text = await Self.coapClientGet(port: gateway.port, key: key, path: "15001/\(id)") {
                                return (id, text)
                            }
                        }
                        return (id, nil)
                    }
                }
                for await (id, text) in group { results[id] = text }
            }
        }
        return results
    }

    private static func coapClientGet(port: UInt16, key: String, path: String) async -> String? {
        guard
            let process = try? Spawned(
                "/usr/bin/coap-client-openssl",
                ["-m", "get", "-B", "20", "-u", "soak-checker", "-k", key, "coaps://127.0.0.1:\(port)/\(path)"])
        else { return nil }
        guard await process.waitForExit(within: .seconds(25)) == 0 else {
            await process.killNow()
            return nil
        }
        _ = await process.waitForLine(within: .seconds(2)) { _ in false }
        return process.output.split(separator: "\n").last { $0.hasPrefix("{") }.map(String.init)
    }

    private func tearDown() async {
        if let bridge {
            let started = ContinuousClock.now
            let status = await bridge.stop(within: .seconds(10))
            report.bridgeStop = (ContinuousClock.now - started).inSeconds
            report.bridgeExit = status
            report.bridgeWarnings = counters.warnings
            report.bridgeErrors = counters.errors
        }
        await view?.stop()
        for client in publishers { await client.disconnect() }
        await app?.close()
        await gateway?.stop()
        await broker?.stop()
    }
}

/// Counts shared by the load tasks and the bridge's log reader.
final class SoakCounters: @unchecked Sendable {
    // @unchecked: every field is guarded by `lock`.
    private let lock = NSLock()
    private var values: [String: Int] = [:]
    private var probe = 0

    private func bump(_ key: String) { lock.withLock { values[key, default: 0] += 1 } }
    private func value(_ key: String) -> Int { lock.withLock { values[key] ?? 0 } }

    func commandSent() { bump("commands") }
    func commandSkipped() { bump("skipped") }
    func appChanged() { bump("app") }
    func appFailed() { bump("appFailed") }
    func burstSent(final: Int) { bump("bursts") }
    func logLine(_ line: String) {
        if line.contains(" warning ") { bump("warnings") }
        if line.contains(" error ") || line.contains(" critical ") { bump("errors") }
    }
    func nextProbeLevel() -> Int {
        lock.withLock {
            probe += 1
            return 10 + probe % 240
        }
    }

    var commands: Int { value("commands") }
    var appChanges: Int { value("app") }
    var appFailures: Int { value("appFailed") }
    var warnings: Int { value("warnings") }
    var errors: Int { value("errors") }
}

/// The commands the load sends: valid for the light's kind, each a thing a person or an
/// automation does.
enum SoakCommands {
    static let hexColours = ["#ff0000", "#00ff00", "#0000ff", "#ffad59", "#e78834", "#4a418a", "#dcf0f8"]

    /// A `/set` topic suffix ("" or "/<attribute>") and its payload.
    static func random(for spectrum: LightSpectrum, using random: inout SeededRandom) -> (String, String) {
        let level = Int.random(in: 1...254, using: &random)
        let mireds = Int.random(in: 250...454, using: &random)
        var choices = 6
        if spectrum != .white { choices = 9 }
        switch Int.random(in: 0..<choices, using: &random) {
        case 0: return ("", #"{"state":"ON"}"#)
        case 1: return ("", #"{"state":"OFF"}"#)
        case 2: return ("", "TOGGLE")
        case 3: return ("", #"{"brightness":\#(level)}"#)
        case 4:
            let step = Int.random(in: 10...60, using: &random) * (Bool.random(using: &random) ? 1 : -1)
            return ("", #"{"brightness_step":\#(step)}"#)
        case 5:
            let transition = [0.5, 1, 2][Int.random(in: 0..<3, using: &random)]
            return ("", #"{"brightness":\#(level),"transition":\#(transition)}"#)
        case 6: return ("/color_temp", "\(mireds)")
        case 7:
            let hex = hexColours[Int.random(in: 0..<hexColours.count, using: &random)]
            return ("", #"{"color":{"hex":"\#(hex)"}}"#)
        default: return ("", #"{"state":"ON","brightness":\#(level),"color_temp":\#(mireds)}"#)
        }
    }

    /// A PUT body the IKEA app might send for a light of this kind.
    static func randomGatewayChange(for spectrum: LightSpectrum, using random: inout SeededRandom) -> String {
        let level = Int.random(in: 1...254, using: &random)
        switch (spectrum, Int.random(in: 0..<4, using: &random)) {
        case (_, 0): return #"{"3311":[{"5850":\#(Bool.random(using: &random) ? 1 : 0)}]}"#
        case (_, 1): return #"{"3311":[{"5850":1,"5851":\#(level)}]}"#
        case (.whiteSpectrum, _):
            return #"{"3311":[{"5711":\#(Int.random(in: 250...454, using: &random))}]}"#
        case (.color, _):
            let x = Int.random(in: 10_000...45_000, using: &random)
            let y = Int.random(in: 10_000...40_000, using: &random)
            return #"{"3311":[{"5709":\#(x),"5710":\#(y)}]}"#
        default: return #"{"3311":[{"5851":\#(level)}]}"#
        }
    }
}

extension Duration {
    /// The duration in seconds, as a floating-point number.
    var inSeconds: Double {
        let (whole, fraction) = components
        return Double(whole) + Double(fraction) / 1e18
    }
}
