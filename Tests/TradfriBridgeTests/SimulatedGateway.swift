import Foundation
import HubModel
import TestSupport
import Testing
import TradfriModel

/// One gateway simulator binary (`tradfri-gateway-sim`) on loopback, with its own state
/// directory and request log, and `coap-client-openssl` as the IKEA app beside the bridge.
final class SimulatedGateway: @unchecked Sendable {
    // @unchecked: mutated only by the test that owns it, one step at a time.
    static let securityCode = "BRIDGETESTCODE12"
    let directory: URL
    private(set) var simulator: ChildProcess
    private(set) var port: UInt16
    private var appIdentity: (identity: String, key: String)?

    var address: String { "127.0.0.1:\(port)" }
    var requestLog: String { directory.appendingPathComponent("requests.log").path }

    /// Starts the simulator on a free port.
    init(directory: URL, extra: [String] = []) async throws {
        self.directory = directory
        (simulator, port) = try await Self.launch(directory: directory, port: 0, extra: extra)
    }

    private static func launch(directory: URL, port: UInt16, extra: [String]) async throws -> (ChildProcess, UInt16) {
        let simulator = try ChildProcess(
            "tradfri-gateway-sim",
            [
                "--listen", "127.0.0.1:\(port)", "--security-code", securityCode,
                "--state-dir", directory.appendingPathComponent("simulator").path,
                "--request-log", directory.appendingPathComponent("requests.log").path,
                "--reboot-delay", "1", "--blind-speed", "100",
            ] + extra, interactive: true)
        let ready = try await simulator.waitForLine(containing: "listening on")
        let address = ready.split(separator: " ").first { $0.hasPrefix("127.0.0.1:") }
        guard let port = address?.split(separator: ":").last.flatMap({ UInt16($0) }) else {
            throw ChildProcessError.failed(command: "tradfri-gateway-sim", status: -1, output: simulator.outputText)
        }
        return (simulator, port)
    }

    /// Stops the simulator (killed outright unless `signal` says otherwise) and starts it again
    /// on the same port and state directory (identities survive; devices start as in the fixture).
    func restart(signal: Int32 = SIGKILL, extra: [String] = []) async throws {
        simulator.signal(signal)
        _ = try? await simulator.waitForExit()
        (simulator, port) = try await Self.launch(directory: directory, port: port, extra: extra)
    }

    /// A control command to the simulator (as the IKEA app or a remote would change things).
    func control(_ command: String) async throws {
        let before = simulator.lineCount
        simulator.send(command)
        let answer = try await simulator.waitForLine(within: .seconds(5), "the answer to '\(command)'", after: before) {
            line in
            line.hasPrefix("ok ") || line.hasPrefix("error:")
        }
        #expect(answer.hasPrefix("ok "), "simulator: \(answer)")
    }

    /// `coap-client-openssl` with an identity of its own, as another client of the gateway.
    func coap(_ method: String = "get", _ path: String, _ body: String? = nil) async throws -> String {
        let identity = try await appCredentials()
        var arguments = ["-B", "10", "-u", identity.identity, "-k", identity.key, "-m", method]
        if let body { arguments += ["-e", body] }
        arguments.append("coaps://\(address)/\(path)")
        return try await runCommand("coap-client-openssl", arguments, within: .seconds(20)).output
            .trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func device(_ id: Int) async throws -> Device {
        try Device(payload: Array(try await coap("get", "15001/\(id)").utf8))
    }

    private func appCredentials() async throws -> (identity: String, key: String) {
        if let appIdentity { return appIdentity }
        let name = "ikea-app-\(UUID().uuidString.prefix(6))"
        let answer = try await runCommand(
            "coap-client-openssl",
            [
                "-B", "10", "-u", "Client_identity", "-k", Self.securityCode, "-m", "post", "-e",
                #"{"9090":"\#(name)"}"#,
                "coaps://\(address)/15011/9063",
            ]
        ).output
        let key = try #require(
            try JSON(parsing: answer.trimmingCharacters(in: .whitespacesAndNewlines))["9091"]?.stringValue)
        appIdentity = (name, key)
        return (name, key)
    }

    /// The requests the simulator received, oldest first.
    func requests() throws -> [JSON] {
        let text = (try? String(contentsOfFile: requestLog, encoding: .utf8)) ?? ""
        return try text.split(separator: "\n").map { try JSON(parsing: String($0)) }
    }
}
