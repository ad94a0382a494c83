import CoAP
import Foundation
import GatewaySimulator
import HubModel
import TestSupport
import TradfriModel

/// An in-process simulator on a free port plus helpers to pair and talk to it with our CoAP client.
@CoAPActor
final class SimulatorHarness {
    static let securityCode = "SIMULATORCODE123"
    let simulator: GatewaySimulator
    let stateDirectory: String

    init(
        fixture: Fixture = .demoHome(), stateDirectory: String? = nil,
        configure: (inout GatewaySimulator.Configuration) -> Void = { _ in }
    ) throws {
        self.stateDirectory =
            stateDirectory
            ?? FileManager.default.temporaryDirectory
            .appendingPathComponent("sim-\(UUID().uuidString)").path
        var configuration = GatewaySimulator.Configuration(securityCode: Self.securityCode, fixture: fixture)
        configuration.port = 0
        configuration.stateDirectory = self.stateDirectory
        configuration.rebootDelay = .milliseconds(500)
        configuration.blindSpeed = 100
        configure(&configuration)
        simulator = try GatewaySimulator(configuration)
        try simulator.start()
    }

    var port: UInt16 { simulator.port }

    func client(identity: String, key: String, timeout: Duration = .seconds(5)) -> CoAPClient {
        CoAPClient(
            .init(
                host: "127.0.0.1", port: port, identity: identity, key: key,
                handshakeTimeout: timeout, requestTimeout: timeout))
    }

    /// Creates `identity` through the bootstrap and returns a connected client using it.
    func pairedClient(
        identity: String = "tester-\(UUID().uuidString.prefix(8))", timeout: Duration = .seconds(5)
    ) async throws -> CoAPClient {
        let bootstrap = client(identity: bootstrapIdentity, key: Self.securityCode, timeout: timeout)
        try await bootstrap.connect()
        let response = try await bootstrap.post(GatewayPath.authenticate, json: #"{"9090":"\#(identity)"}"#)
        bootstrap.close()
        guard response.code == .created, let key = try JSON(parsing: response.payload)["9091"]?.stringValue else {
            throw CoAPError.setup("pairing failed: \(response.code) \(response.text)")
        }
        let paired = client(identity: identity, key: key, timeout: timeout)
        try await paired.connect()
        return paired
    }

    func shutdown() {
        simulator.stop()
        try? FileManager.default.removeItem(atPath: stateDirectory)
    }
}

extension CoAPResponse {
    var json: JSON { (try? JSON(parsing: payload)) ?? .null }
}

/// Reads the next element of an observation stream with a deadline.
func nextNotification(
    _ observation: CoAPObservation, within limit: Duration = .seconds(5),
    where predicate: @escaping @Sendable (JSON) -> Bool = { _ in true }
) async throws -> JSON {
    try await withDeadline(limit, "a notification on \(observation.path)") {
        for try await notification in observation.notifications {
            let json = (try? JSON(parsing: notification.payload)) ?? .null
            if predicate(json) { return json }
        }
        throw CoAPError.sessionClosed
    }
}
