import Foundation
import HubModel
import TestSupport
import Testing
import TradfriModel

/// `tradfri-bridge auth` and `devices` as a new user runs them, against the simulator binary.
@Suite struct AuthCommandTests {
    static let code = "AUTHTESTCODE1234"

    final class Workspace: Sendable {
        let directory: String
        init() throws {
            directory = FileManager.default.temporaryDirectory.appendingPathComponent("auth-\(UUID().uuidString)").path
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        }
        var credentials: String { directory + "/state/credentials.json" }
        deinit { try? FileManager.default.removeItem(atPath: directory) }
    }

    func startSimulator(_ workspace: Workspace) async throws -> (ChildProcess, String) {
        let simulator = try ChildProcess(
            "tradfri-gateway-sim",
            [
                "--listen", "127.0.0.1:0", "--security-code", Self.code, "--state-dir", workspace.directory + "/sim",
            ])
        let ready = try await simulator.waitForLine(containing: "listening on")
        let address = try #require(ready.split(separator: " ").first { $0.hasPrefix("127.0.0.1:") })
        return (simulator, String(address))
    }

    func bridge(_ arguments: [String]) async throws -> (status: Int32, output: String) {
        try await runCommand("tradfri-bridge", arguments, within: .seconds(30), check: false)
    }

    @Test func pairingStoresCredentialsWithoutTheSecurityCodeAndDevicesListsTheHome() async throws {
        let workspace = try Workspace()
        let (simulator, address) = try await startSimulator(workspace)
        let result = try await bridge([
            "auth", "--gateway", address, "--security-code", Self.code,
            "--credentials", workspace.credentials,
        ])
        #expect(result.status == 0, "\(result.output)")
        #expect(result.output.contains("Paired with gateway 7e11515204400072"))

        let attributes = try FileManager.default.attributesOfItem(atPath: workspace.credentials)
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
        let stored = try String(contentsOfFile: workspace.credentials, encoding: .utf8)
        #expect(!stored.contains(Self.code), "the security code must never be stored")
        let json = try JSON(parsing: stored)
        #expect(json["gateway_id"] == "7e11515204400072")
        #expect(json["psk"]?.stringValue?.count == 16)
        #expect(json["identity"]?.stringValue?.hasPrefix("tradfri-bridge-") == true)

        let listing = try await bridge(["devices", "--credentials", workspace.credentials])
        #expect(listing.status == 0, "\(listing.output)")
        for name in [
            "Living room remote", "Hallway", "Living room ceiling", "Reading lamp", "Hallway motion",
            "Coffee maker", "Repeater", "Bedroom blind", "Air purifier", "Spot A1", "RELAX",
        ] {
            #expect(listing.output.contains(name), "devices lists \(name)")
        }
        let asJSON = try await bridge(["devices", "--credentials", workspace.credentials, "--json"])
        #expect(try JSON(parsing: asJSON.output)["devices"]?.arrayValue?.count == 10)
        await simulator.stop()
    }

    @Test func workingCredentialsAreNotOverwrittenWithoutForce() async throws {
        let workspace = try Workspace()
        let (simulator, address) = try await startSimulator(workspace)
        let pair = ["auth", "--gateway", address, "--security-code", Self.code, "--credentials", workspace.credentials]
        #expect(try await bridge(pair).status == 0)
        let before = try String(contentsOfFile: workspace.credentials, encoding: .utf8)
        let again = try await bridge(pair)
        #expect(again.status != 0)
        #expect(again.output.contains("still work"))
        #expect(try String(contentsOfFile: workspace.credentials, encoding: .utf8) == before)
        let forced = try await bridge(pair + ["--force"])
        #expect(forced.status == 0, "\(forced.output)")
        #expect(try String(contentsOfFile: workspace.credentials, encoding: .utf8) != before)
        await simulator.stop()
    }

    @Test func wrongCodeUnreachableHostAndTakenIdentityGiveClearErrors() async throws {
        let workspace = try Workspace()
        let (simulator, address) = try await startSimulator(workspace)
        let wrong = try await bridge([
            "auth", "--gateway", address, "--security-code", "WRONGCODE0000000",
            "--credentials", workspace.credentials, "--timeout", "3",
        ])
        #expect(wrong.status == 1)
        #expect(wrong.output.contains("did not accept the security code"), "\(wrong.output)")
        #expect(!FileManager.default.fileExists(atPath: workspace.credentials))

        let closedPort = freePort(udp: true)
        let unreachable = try await bridge([
            "auth", "--gateway", "127.0.0.1:\(closedPort)", "--security-code", Self.code,
            "--credentials", workspace.credentials, "--timeout", "3",
        ])
        #expect(unreachable.status == 1)
        #expect(
            unreachable.output.contains("cannot reach a gateway at 127.0.0.1:\(closedPort)"), "\(unreachable.output)")

        let first = try await bridge([
            "auth", "--gateway", address, "--security-code", Self.code,
            "--credentials", workspace.directory + "/one.json", "--identity", "kitchen",
        ])
        #expect(first.status == 0)
        let taken = try await bridge([
            "auth", "--gateway", address, "--security-code", Self.code,
            "--credentials", workspace.directory + "/two.json", "--identity", "kitchen",
        ])
        #expect(taken.status == 1)
        #expect(taken.output.contains("already has an identity named 'kitchen'"), "\(taken.output)")

        let malformed = try await bridge(["auth", "--gateway", address, "--security-code", "short"])
        #expect(malformed.status != 0)
        #expect(malformed.output.contains("16 letters and digits"))
        await simulator.stop()
    }

    @Test func devicesWithoutCredentialsExplainsHowToPair() async throws {
        let workspace = try Workspace()
        let result = try await bridge(["devices", "--credentials", workspace.credentials])
        #expect(result.status == 1)
        #expect(result.output.contains("pair first with 'tradfri-bridge auth"))
    }

    @Test func aBrokenConfigFileStopsWithTheKeyAndLine() async throws {
        let workspace = try Workspace()
        let file = workspace.directory + "/config.yaml"
        try "mqtt:\n  base_topic: x\n  retian_state: true\n".write(toFile: file, atomically: true, encoding: .utf8)
        let result = try await bridge(["devices", "--config", file])
        #expect(result.status != 0)
        #expect(
            result.output.contains("\(file):3: mqtt.retian_state: unknown key (did you mean 'retain_state'?)"),
            "\(result.output)")
    }
}
