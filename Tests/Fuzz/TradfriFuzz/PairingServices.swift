import Foundation
import TradfriModel

@testable import TradfriBridge

/// A pairing service as the bridge runs it, minus its sockets and broker connection, made anew for
/// every input so rate limits and pending requests of one input do not change the next.
enum PairingServices {
    /// Holds the HTTPS certificate the first service makes (the others load it).
    static let directory: String = {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("tradfri-fuzz-\(getpid())").path
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        atexit { try? FileManager.default.removeItem(atPath: PairingServices.directory) }
        return path
    }()

    /// A service with a pairing window open (legacy EmonESP requests accepted too).
    static func make() -> PairingService {
        var configuration = BridgeConfiguration()
        configuration.pairing.enabled = true
        configuration.pairing.legacy = true
        configuration.pairing.registry = directory + "/paired-devices.json"
        configuration.pairing.auditLog = "/dev/null"
        configuration.pairing.brokerAdminUser = "tradfri-pairing"
        let broker = BrokerLocator.Choice(host: "127.0.0.1", port: 1883, tls: false, reason: "fuzz")
        do {
            let service = try PairingService(configuration: configuration, broker: broker) { _, _ in }
            _ = Fuzz.wait { await service.control(["command": "open", "minutes": 5, "legacy": true]) }
            return service
        } catch {
            fatalError("cannot make a pairing service: \(error)")
        }
    }
}
