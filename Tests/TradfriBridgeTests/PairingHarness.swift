import Foundation
import HubModel
import TestSupport
import Testing
import TradfriModel

/// A bridge with device pairing on, beside a mosquitto that uses the dynamic-security plugin,
/// set up with the shipped `packaging/mosquitto/setup-dynsec.sh` (as README tells users to).
final class PairingHarness: @unchecked Sendable {
    // @unchecked: driven by one test at a time.
    static let admin = ["-u", "admin", "-P", "adminpassword"]
    let bridge: BridgeHarness
    let securePort = freePort()
    let legacyPort = freePort()

    static var repository: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
    }

    static func script(_ name: String) -> String {
        repository.appendingPathComponent("Tests/Scripts/\(name)").path
    }

    var directory: URL { bridge.directory }
    var auditLog: String { directory.appendingPathComponent("state/audit.log").path }
    var controlSocket: String { directory.appendingPathComponent("control.sock").path }

    init(
        grantSeconds: Int = 60, maxPending: Int = 16, legacyBroadcast: Bool = false, approveOverMQTT: Bool = false
    ) async throws {
        bridge = try await Self.dynamicSecurityInstallation()
        let directory = bridge.directory
        try await bridge.startBridge(
            extraConfiguration: """
                pairing:
                  enabled: true
                  listen: 127.0.0.1:\(securePort)
                  legacy: true
                  legacy_listen: 127.0.0.1:\(legacyPort)
                  legacy_broadcast: \(legacyBroadcast)
                  grant_seconds: \(grantSeconds)
                  max_pending: \(maxPending)
                  control_socket: \(controlSocket)
                  approve_over_mqtt: \(approveOverMQTT)
                  registry: \(directory.appendingPathComponent("state/paired-devices.json").path)
                  audit_log: \(auditLog)
                  broker_admin_user: tradfri-pairing
                  broker_admin_password_file: \(directory.appendingPathComponent("pairing-password").path)
                """,
            mqttConfiguration: """
                  user: tradfri-bridge
                  password_file: \(directory.appendingPathComponent("bridge-password").path)
                """)
    }

    /// A broker with the dynamic-security plugin (only its admin, as `mosquitto_ctrl dynsec init`
    /// makes it), the accounts the shipped `packaging/mosquitto/setup-dynsec.sh` creates (the
    /// bridge's, in `bridge-password`, and the pairing admin's, in `pairing-password`), the
    /// simulator and the bridge's gateway credentials. `clientArguments` log in as the bridge.
    static func dynamicSecurityInstallation() async throws -> BridgeHarness {
        let seed = FileManager.default.temporaryDirectory.appendingPathComponent("dynsec-\(UUID().uuidString).json")
        try await runCommand("mosquitto_ctrl", ["dynsec", "init", seed.path, "admin", "adminpassword"])
        var options = MosquittoBroker.Options()
        options.allowAnonymous = false
        options.useDynamicSecurity(try String(contentsOf: seed, encoding: .utf8))
        try? FileManager.default.removeItem(at: seed)
        let bridge = try await BridgeHarness(brokerOptions: options)
        bridge.clientArguments = Self.admin
        let directory = bridge.directory
        let accounts = try await runCommand(
            Self.repository.appendingPathComponent("packaging/mosquitto/setup-dynsec.sh").path,
            [
                "-p", "\(bridge.broker.port)", "-u", "admin", "-P", "adminpassword",
                "--bridge-password-file", directory.appendingPathComponent("bridge-password").path,
                "--pairing-password-file", directory.appendingPathComponent("pairing-password").path,
            ])
        #expect(accounts.output.contains("broker accounts ready"))
        // Watch and command as the bridge's own account (the plugin's admin may only manage it).
        let bridgePassword = try String(
            contentsOf: directory.appendingPathComponent("bridge-password"), encoding: .utf8)
        bridge.clientArguments = [
            "-u", "tradfri-bridge", "-P", bridgePassword.trimmingCharacters(in: .whitespacesAndNewlines),
        ]
        return bridge
    }

    /// `tradfri-bridge pair <arguments>` against this bridge.
    @discardableResult
    func pair(_ arguments: [String], check: Bool = true) async throws -> (status: Int32, output: String) {
        try await runCommand("tradfri-bridge", ["pair"] + arguments + ["--config", bridge.configFile], check: check)
    }

    func pendingIDs() async throws -> [String] {
        let list = try await pair(["list", "--json"]).output
        return try JSON(parsing: list.trimmingCharacters(in: .whitespacesAndNewlines)).arrayValue?.compactMap {
            $0["id"]?.stringValue
        } ?? []
    }

    /// EmonESP's request, from a given loopback address (127.0.0.x are all this host).
    func legacy(
        from address: String = "127.0.0.1", path: String = "/emoncms/device/auth/request.json"
    ) async throws
        -> (status: Int, body: String)
    {
        let output = try await runCommand(
            "curl",
            [
                "-s", "--interface", address, "-w", "\n%{http_code}",
                "http://127.0.0.1:\(legacyPort)\(path)",
            ]
        ).output
        let lines = output.split(separator: "\n", omittingEmptySubsequences: false)
        return (Int(lines.last ?? "") ?? 0, lines.dropLast().joined(separator: "\n"))
    }

    /// A secure-mode call (`-k`: the test pins nothing; devices pin the advertised fingerprint).
    func secure(
        _ path: String, _ body: JSON, from address: String = "127.0.0.1"
    ) async throws -> (status: Int, json: JSON) {
        let output = try await runCommand(
            "curl",
            [
                "-sk", "--interface", address, "-X", "POST", "-d", body.description,
                "-w", "\n%{http_code}", "https://127.0.0.1:\(securePort)\(path)",
            ]
        ).output
        let lines = output.split(separator: "\n", omittingEmptySubsequences: false)
        return (Int(lines.last ?? "") ?? 0, (try? JSON(parsing: lines.dropLast().joined(separator: "\n"))) ?? .null)
    }

    /// mosquitto_pub with a device's credentials; true if the broker accepted it (MQTT 5 PUBACK 0).
    func devicePublish(user: String, password: String, topic: String) async throws -> Bool {
        let result = try await runCommand(
            "mosquitto_pub",
            [
                "-h", "127.0.0.1", "-p", "\(bridge.broker.port)", "-V", "mqttv5", "-q", "1", "-d", "-u", user, "-P",
                password,
                "-t", topic, "-m", "42",
            ], check: false)
        return result.status == 0 && result.output.contains("received PUBACK") && result.output.contains("RC:0)")
    }

    var audit: String { (try? String(contentsOfFile: auditLog, encoding: .utf8)) ?? "" }

    func shutdown() async {
        await bridge.shutdown()
    }
}
