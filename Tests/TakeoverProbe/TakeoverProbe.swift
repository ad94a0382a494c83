import Foundation
import Logging
import MQTT
import ServiceLifecycle
import TradfriBridge

/// A test helper: one `GatewayOwnership` coordinator as a process of its own, so a test can kill
/// it with SIGKILL (the broker then sees the TCP connection close, as with a crashed bridge),
/// freeze it with SIGSTOP, or stop it with SIGTERM (graceful shutdown through a `ServiceGroup`).
///
///     TakeoverProbe --port 1883 --base tradfri --instance bridge-a --gateway 7e11… [--gateway …] [--fast]
///
/// Prints one line per event on standard output (flushed at once):
/// `acquired <gateway>`, `lost <gateway> <reason>`, and `status synced=<bool> <gateway>=<role>:<owner>:<up|down> …`
/// whenever the coordinator's view changes. `--fast` uses the short timing of the tests.
@main
enum TakeoverProbe {
    static func main() async throws {
        var port: UInt16 = 1883
        var base = "tradfri"
        var instance = "probe"
        var gateways: [String] = []
        var fast = false
        var arguments = CommandLine.arguments.dropFirst().makeIterator()
        while let argument = arguments.next() {
            switch argument {
            case "--port": port = UInt16(arguments.next() ?? "") ?? port
            case "--base": base = arguments.next() ?? base
            case "--instance": instance = arguments.next() ?? instance
            case "--gateway": gateways.append(arguments.next() ?? "")
            case "--fast": fast = true
            default:
                FileHandle.standardError.write(Data("unknown argument \(argument)\n".utf8))
                exit(2)
            }
        }
        LoggingSystem.bootstrap { StreamLogHandler.standardError(label: $0) }
        let settings = fast ? Self.fastSettings : GatewayOwnership.Settings()
        let ownership = try GatewayOwnership(
            mqtt: MQTTConfiguration(host: "127.0.0.1", port: port, clientID: instance), baseTopic: base,
            instanceID: instance, gatewayIDs: gateways, settings: settings
        ) { event in
            switch event {
            case .acquired(let gateway): say("acquired \(gateway)")
            case .lost(let gateway, let reason): say("lost \(gateway) \(reason)")
            case .statusChanged(let status):
                let gateways = status.gateways.keys.sorted().map { id in
                    let gateway = status.gateways[id]!
                    return
                        "\(id)=\(gateway.role.rawValue):\(gateway.owner ?? "-"):\(gateway.ownerConnected ? "up" : "down")"
                }
                say("status synced=\(status.synced) \(gateways.joined(separator: " "))")
            }
        }
        let group = ServiceGroup(
            configuration: .init(
                services: [.init(service: ownership)], gracefulShutdownSignals: [.sigterm, .sigint],
                logger: Logger(label: "probe")))
        try await group.run()
        say("stopped")
    }

    /// The timing the in-process tests use too (`GatewayOwnershipTests.fast`).
    static var fastSettings: GatewayOwnership.Settings {
        var settings = GatewayOwnership.Settings()
        settings.heartbeatInterval = .milliseconds(200)
        settings.lease = .seconds(1)
        settings.stopAllowance = .milliseconds(500)
        settings.raceWindow = .milliseconds(100)
        settings.syncHoldoff = .milliseconds(500)
        settings.deferral = .milliseconds(500)
        settings.ownerSilence = .seconds(2)
        return settings
    }

    static func say(_ line: String) {
        FileHandle.standardOutput.write(Data((line + "\n").utf8))
    }
}
