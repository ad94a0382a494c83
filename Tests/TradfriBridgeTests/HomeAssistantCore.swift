import Foundation
import HubModel
import TestSupport
import Testing
import TradfriModel

/// A real Home Assistant Core, installed by `scripts/ha-install.sh` (a cached venv, or a Debian sid
/// root for the newest release), configured without the UI: the owner through the onboarding REST
/// API, the MQTT broker through the config-flow REST API. Tests read it through its own websocket
/// API (`Tests/Scripts/ha-client.py` relays it, one JSON message per line).
///
/// `TRADFRI_HA_RELEASE=newest` selects the newest release (`scripts/ha-newest.sh` sets it); the
/// default is the oldest supported one, 2024.3.
final class HomeAssistantCore: @unchecked Sendable {
    // @unchecked: mutated only by the test that owns it, one step at a time.
    enum Release: String {
        case oldest, newest
    }

    static var release: Release {
        ProcessInfo.processInfo.environment["TRADFRI_HA_RELEASE"].flatMap(Release.init(rawValue:)) ?? .oldest
    }

    static var repository: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
    }

    static var client: String { repository.appendingPathComponent("Tests/Scripts/ha-client.py").path }

    let launcher: String
    let directory: URL
    let port = freePort()
    private(set) var process: ChildProcess?
    private(set) var token = ""
    var url: String { "http://127.0.0.1:\(port)" }
    var logFile: String { directory.appendingPathComponent("home-assistant.log").path }

    /// Installs the release (a no-op when cached) and writes a configuration.
    init(_ release: Release = HomeAssistantCore.release) async throws {
        let installed = try await runCommand(
            Self.repository.appendingPathComponent("scripts/ha-install.sh").path, [release.rawValue],
            within: .seconds(1500))
        launcher = String(installed.output.split(separator: "\n").last ?? "")
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("ha-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        // Only what the test needs; the log at warning (what a user's would show), plus the line
        // that says start-up is done.
        let configuration = """
            homeassistant:
              name: Test home
              latitude: 59.33
              longitude: 18.07
              elevation: 10
              unit_system: metric
              time_zone: Europe/Stockholm
              currency: SEK
              country: SE
            http:
              server_host: 127.0.0.1
              server_port: \(port)
            logger:
              default: warning
              logs:
                homeassistant.bootstrap: info

            """
        try configuration.write(
            to: directory.appendingPathComponent("configuration.yaml"), atomically: true, encoding: .utf8)
    }

    /// Starts Home Assistant and returns once it has finished starting (its HTTP API answers).
    func start() async throws {
        let process = try ChildProcess(launcher, [directory.path, "--skip-pip", "--log-no-color"], name: "hass")
        self.process = process
        try await process.waitForLine(within: .seconds(240), "Home Assistant's start-up") {
            $0.contains("Home Assistant initialized in")
        }
    }

    /// SIGTERM, as a user's `ha core stop` or systemd does; returns once it has exited.
    func stop() async throws {
        guard let process else { return }
        process.signal(SIGTERM)
        _ = try await process.waitForExit(within: .seconds(90))
        self.process = nil
        // The next start begins a new log file.
        earlierLogs += currentLog
    }

    /// Creates the owner through the onboarding API and keeps an access token.
    func onboard() async throws {
        let output = try await runCommand("/usr/bin/python3", [Self.client, "onboard", url], within: .seconds(60))
        token = String(output.output.split(separator: "\n").last ?? "")
    }

    /// Adds the MQTT integration for `broker` through the config-flow API (as the UI would).
    func addMQTT(host: String, port: UInt16) async throws {
        let answer: JSON = ["broker": .string(host), "port": .int(Int(port))]
        try await runCommand(
            "/usr/bin/python3", [Self.client, "flow", url, token, "mqtt", answer.description], within: .seconds(60))
    }

    func websocket() async throws -> HomeAssistantWebSocket {
        try await HomeAssistantWebSocket(url: url, token: token)
    }

    /// Home Assistant's log files so far, every run's.
    var log: [String] { earlierLogs + (process == nil ? [] : currentLog) }

    private var earlierLogs: [String] = []

    private var currentLog: [String] {
        ((try? String(contentsOfFile: logFile, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
    }

    func shutdown() async {
        try? await stop()
        try? FileManager.default.removeItem(at: directory)
    }
}

/// Home Assistant's websocket API: requests with ids, and the state of every entity kept from
/// `get_states` and the `state_changed` events that follow it.
final class HomeAssistantWebSocket: @unchecked Sendable {
    // @unchecked: mutable state is guarded by `lock`.
    let process: ChildProcess
    private let lock = NSLock()
    private var nextID = 0
    /// The line of the `get_states` answer: events before it are older than that snapshot.
    private var snapshotLine: Int?
    /// `states(upTo:)` so far: the lines before `upTo` applied.
    private var cache: (upTo: Int, states: [String: JSON]) = (0, [:])

    init(url: String, token: String) async throws {
        process = try ChildProcess(
            "/usr/bin/python3", [HomeAssistantCore.client, "websocket", url, token], name: "ha-websocket",
            interactive: true)
        let hello = try await process.waitForLine(within: .seconds(30), "authentication") { $0.contains("\"auth_") }
        guard hello.contains("auth_ok") else { throw ModelFailure("websocket: \(hello)") }
    }

    /// Sends a command and returns its result; throws if Home Assistant answers with an error.
    @discardableResult
    func request(_ command: [String: JSON], within limit: Duration = .seconds(30)) async throws -> JSON {
        try await answer(command, within: limit).result
    }

    /// The result, and the number of the line that carried it.
    private func answer(_ command: [String: JSON], within limit: Duration) async throws -> (result: JSON, line: Int) {
        let id: Int = lock.withLock {
            nextID += 1
            return nextID
        }
        var message = command
        message["id"] = .int(id)
        let before = process.lineCount
        process.send(JSON.object(message).description)
        let marker = "\"id\":\(id),"
        let line = try await process.waitForLine(within: limit, "the answer to \(command)", after: before) { line in
            guard line.contains(marker), let json = try? JSON(parsing: line) else { return false }
            return json["id"] == .int(id) && json["type"] == "result"
        }
        let answer = try JSON(parsing: line)
        guard answer["success"] == true else { throw ModelFailure("\(command): \(answer)") }
        let lines = process.output
        let index = lines.indices.dropFirst(before).last { lines[$0] == line } ?? before
        return (answer["result"] ?? .null, index)
    }

    /// Subscribes to `state_changed` and the registries' updates, then takes the state snapshot.
    func follow() async throws {
        for event in ["state_changed", "entity_registry_updated", "device_registry_updated"] {
            try await request(["type": "subscribe_events", "event_type": .string(event)])
        }
        let snapshot = try await answer(["type": "get_states"], within: .seconds(30)).line
        lock.withLock { snapshotLine = snapshot }
    }

    /// The states of every entity, as of the line `upTo` (default: everything received).
    func states(upTo end: Int? = nil) -> [String: JSON] {
        let lines = process.output
        let end = min(end ?? lines.count, lines.count)
        return lock.withLock {
            guard let snapshot = snapshotLine else { return [:] }
            if cache.upTo > end || cache.upTo <= snapshot {
                cache = (snapshot + 1, [:])
                for item in (try? JSON(parsing: lines[snapshot]))?["result"]?.arrayValue ?? [] {
                    if let id = item["entity_id"]?.stringValue { cache.states[id] = item }
                }
            }
            for line in lines[cache.upTo..<max(end, cache.upTo)] {
                guard line.contains("state_changed"), let event = try? JSON(parsing: line),
                    let data = event["event"]?["data"], let id = data["entity_id"]?.stringValue
                else { continue }
                cache.states[id] = data["new_state"] == .null ? nil : data["new_state"]
            }
            cache.upTo = max(end, cache.upTo)
            return cache.states
        }
    }

    func state(_ entityID: String) -> JSON? { states()[entityID] }

    /// Waits until `entityID`'s state (nil: it does not exist) satisfies `predicate`.
    @discardableResult
    func waitForState(
        _ entityID: String, within limit: Duration = .seconds(20), _ what: String = "",
        where predicate: @escaping @Sendable (JSON?) -> Bool
    ) async throws -> JSON? {
        let before = process.lineCount
        let current = states(upTo: before)[entityID]
        if predicate(current) { return current }
        let line = try await process.waitForLine(
            within: limit, "\(entityID) \(what) (last state: \(current?.description ?? "none"))", after: before
        ) { line in
            guard line.contains("state_changed"), let event = try? JSON(parsing: line),
                let data = event["event"]?["data"], data["entity_id"]?.stringValue == entityID
            else { return false }
            return predicate(data["new_state"] == .null ? nil : data["new_state"])
        }
        let data = try JSON(parsing: line)["event"]?["data"]
        return data?["new_state"] == .null ? nil : data?["new_state"]
    }

    /// Re-checks `condition` whenever Home Assistant says anything (an event or an answer), until
    /// it returns a value.
    func until<T: Sendable>(
        within limit: Duration = .seconds(30), _ what: String, _ condition: @escaping @Sendable () async throws -> T?
    ) async throws -> T {
        try await withDeadline(limit, what) {
            while true {
                let before = self.process.lineCount
                if let value = try await condition() { return value }
                try await self.process.waitForLine(within: limit, what, after: before) {
                    $0.contains("\"type\":\"event\"")
                }
            }
        }
    }

    func call(
        _ domain: String, _ service: String, _ entityID: String, _ data: [String: JSON] = [:]
    ) async throws {
        try await request([
            "type": "call_service", "domain": .string(domain), "service": .string(service),
            "service_data": .object(data), "target": ["entity_id": .string(entityID)],
        ])
    }

    func close() {
        process.signal(SIGTERM)
    }
}
