import Foundation
import Logging
import MQTT
import ServiceLifecycle
import TestSupport

@testable import TradfriBridge

/// What a coordinator told its handler, and when.
struct Stamped: Sendable, CustomStringConvertible {
    let at: ContinuousClock.Instant
    let instance: String
    let event: GatewayOwnership.Event

    var description: String { "\(instance): \(event)" }

    var acquired: String? {
        if case .acquired(let gateway) = event { return gateway }
        return nil
    }

    var lost: String? {
        if case .lost(let gateway, _) = event { return gateway }
        return nil
    }

    var status: GatewayOwnership.Status? {
        if case .statusChanged(let status) = event { return status }
        return nil
    }
}

/// The test timing: the same rules, about five times faster (initial claim ≈ 2 s).
let fastOwnership: GatewayOwnership.Settings = {
    var settings = GatewayOwnership.Settings()
    settings.heartbeatInterval = .milliseconds(200)
    settings.lease = .seconds(1)
    settings.stopAllowance = .milliseconds(500)
    settings.raceWindow = .milliseconds(100)
    settings.syncHoldoff = .milliseconds(500)
    settings.deferral = .milliseconds(500)
    settings.ownerSilence = .seconds(2)
    return settings
}()

/// One coordinator running in this test process the way the bridge runs it: as a service of a
/// `ServiceGroup`, stopped by graceful shutdown (or cancelled).
final class RunningOwnership: Sendable {
    let instance: String
    let ownership: GatewayOwnership
    let events: EventRecorder<Stamped>
    private let group: ServiceGroup
    private let task: Task<Void, any Error>

    init(
        broker: MosquittoBroker, base: String, instance: String, gateways: [String],
        settings: GatewayOwnership.Settings = fastOwnership
    ) throws {
        self.instance = instance
        let (stream, continuation) = AsyncStream.makeStream(of: Stamped.self)
        ownership = try GatewayOwnership(
            mqtt: MQTTConfiguration(host: broker.host, port: broker.port, clientID: instance), baseTopic: base,
            instanceID: instance, gatewayIDs: gateways, settings: settings
        ) { event in
            continuation.yield(Stamped(at: .now, instance: instance, event: event))
        }
        events = EventRecorder(stream)
        group = ServiceGroup(
            configuration: .init(services: [.init(service: ownership)], logger: Logger(label: "test.\(instance)")))
        let group = self.group
        task = Task {
            defer { continuation.finish() }
            try await group.run()
        }
    }

    deinit {
        task.cancel()
    }

    /// Graceful shutdown (SIGTERM in the daemon); returns how long `run()` took to return.
    @discardableResult
    func stop() async throws -> Duration {
        let start = ContinuousClock.now
        await group.triggerGracefulShutdown()
        try await withDeadline(.seconds(5), "\(self.instance) to stop") { [task] in try await task.value }
        return .now - start
    }

    /// Cancels the service's task; returns how long `run()` took to return.
    @discardableResult
    func cancel() async throws -> Duration {
        let start = ContinuousClock.now
        task.cancel()
        try await withDeadline(.seconds(5), "\(self.instance) to end after cancellation") { [task] in
            _ = try? await task.value
        }
        return .now - start
    }

    /// Waits until this instance drives every gateway in `gateways` and its status says so; returns
    /// when it acquired the last.
    @discardableResult
    func waitUntilOwning(
        _ gateways: [String], within limit: Duration = .seconds(20)
    ) async throws -> ContinuousClock.Instant {
        var latest = ContinuousClock.Instant.now
        for gateway in gateways {
            let event = try await events.firstEvent(within: limit, "\(instance) to acquire \(gateway)") {
                $0.acquired == gateway
            }
            latest = event.at
        }
        // The status (`ownership.owned`) follows the `acquired` calls: wait for it too.
        try await events.firstEvent(within: limit, "\(instance) to show \(gateways) active") { stamped in
            gateways.allSatisfy { stamped.status?.gateways[$0]?.role == .active }
        }
        return latest
    }

    /// Waits until this instance, connected and synced, sees `owner` live on every gateway of `gateways`.
    func waitUntilSeeing(_ owner: String, on gateways: [String], within limit: Duration = .seconds(20)) async throws {
        try await events.firstEvent(within: limit, "\(instance) to see \(owner) own \(gateways)") { stamped in
            guard let status = stamped.status, status.synced else { return false }
            return gateways.allSatisfy {
                status.gateways[$0]?.owner == owner && status.gateways[$0]?.ownerConnected == true
            }
        }
    }

    var acquisitions: [Stamped] { events.events.filter { $0.acquired != nil } }
}

/// Every moment two instances held one gateway at once, from their handlers' point of view
/// (holding from `acquired` until `lost`).
func overlaps(_ instances: [RunningOwnership], gateways: [String]) -> [String] {
    var found: [String] = []
    let timeline = instances.flatMap(\.events.events).sorted { $0.at < $1.at }
    for gateway in gateways {
        var holders: Set<String> = []
        for stamped in timeline {
            if stamped.acquired == gateway {
                holders.insert(stamped.instance)
                if holders.count > 1 { found.append("\(gateway) held by \(holders.sorted()) at \(stamped.at)") }
            } else if stamped.lost == gateway {
                holders.remove(stamped.instance)
            }
        }
    }
    return found
}

/// The retained records under `<base>/bridge/takeover/`, by topic (read with mosquitto_sub),
/// once they satisfy `until`: each read takes what the broker sends within 1 s, which a loaded
/// machine can cut short, so reads are repeated until then (at most `limit`). The last read is
/// returned either way, for the test's own checks to report.
func retainedOwnershipRecords(
    _ broker: MosquittoBroker, base: String, within limit: Duration = .seconds(10),
    until done: ([String: String]) -> Bool
) async throws -> [String: String] {
    let deadline = ContinuousClock.now + limit
    while true {
        let result = try await runCommand(
            "mosquitto_sub",
            broker.clientArguments + ["-t", "\(base)/bridge/takeover/#", "-v", "--retained-only", "-W", "1"],
            check: false)
        var records: [String: String] = [:]
        for line in result.output.split(separator: "\n") where line.hasPrefix(base + "/") {
            let parts = line.split(separator: " ", maxSplits: 1)
            records[String(parts[0])] = parts.count > 1 ? String(parts[1]) : ""
        }
        if done(records) || ContinuousClock.now > deadline { return records }
    }
}

/// A `TakeoverProbe` process: one coordinator the test can kill with SIGKILL or freeze with SIGSTOP.
final class OwnershipProbe: Sendable {
    let instance: String
    let process: ChildProcess

    init(broker: MosquittoBroker, base: String, instance: String, gateways: [String], fast: Bool) throws {
        self.instance = instance
        var arguments = ["--port", "\(broker.port)", "--base", base, "--instance", instance]
        for gateway in gateways { arguments += ["--gateway", gateway] }
        if fast { arguments.append("--fast") }
        process = try ChildProcess("TakeoverProbe", arguments, name: instance)
    }

    /// Waits for `acquired` of every gateway (lines printed after `after`); returns when the last came.
    @discardableResult
    func waitUntilOwning(
        _ gateways: [String], after line: Int = 0, within limit: Duration
    ) async throws
        -> ContinuousClock.Instant
    {
        for gateway in gateways {
            try await process.waitForLine(within: limit, "\(instance) to acquire \(gateway)", after: line) {
                $0 == "acquired \(gateway)"
            }
        }
        return .now
    }

    /// Waits until it prints a status in which `owner` holds every gateway, connected.
    func waitUntilSeeing(
        _ owner: String, on gateways: [String], after line: Int = 0, within limit: Duration
    )
        async throws
    {
        try await process.waitForLine(within: limit, "\(instance) to see \(owner) own \(gateways)", after: line) {
            line in
            line.hasPrefix("status synced=true") && gateways.allSatisfy { line.contains("\($0)=standby:\(owner):up") }
        }
    }

    var owns: Bool { process.output.contains { $0.hasPrefix("acquired ") } }
}
