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

    func startSimulator(_ workspace: Workspace, gatewayID: String? = nil) async throws -> (ChildProcess, String) {
        let simulator = try ChildProcess(
            "tradfri-gateway-sim",
            [
                "--listen", "127.0.0.1:0", "--security-code", Self.code,
                "--state-dir", workspace.directory + "/sim" + (gatewayID.map { "-\($0)" } ?? ""),
            ] + (gatewayID.map { ["--gateway-id", $0] } ?? []))
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

    // MARK: Several gateways

    /// The JSON object of gateway `id` in a credentials file of either layout.
    func storedEntry(_ path: String, _ id: String) throws -> JSON? {
        let json = try JSON(parsing: try String(contentsOfFile: path, encoding: .utf8))
        let entries = json["gateways"]?.arrayValue ?? [json]
        return entries.first { $0["gateway_id"]?.stringValue == id }
    }

    @Test func pairingASecondGatewayAddsItAndLeavesTheFirstAsItWas() async throws {
        let workspace = try Workspace()
        let (upstairs, upstairsAddress) = try await startSimulator(workspace, gatewayID: "00000000000000aa")
        let (cellar, cellarAddress) = try await startSimulator(workspace, gatewayID: "00000000000000bb")
        let first = try await bridge([
            "auth", "--gateway", upstairsAddress, "--security-code", Self.code, "--credentials", workspace.credentials,
            "--name", "upstairs",
        ])
        #expect(first.status == 0, "\(first.output)")
        let upstairsBefore = try #require(try storedEntry(workspace.credentials, "00000000000000aa"))

        let second = try await bridge([
            "auth", "--gateway", cellarAddress, "--security-code", Self.code, "--credentials", workspace.credentials,
            "--name", "cellar",
        ])
        #expect(second.status == 0, "\(second.output)")
        #expect(second.output.contains("Paired with gateway 00000000000000bb"))
        #expect(second.output.contains("now holds 2 gateways: upstairs (00000000000000aa), cellar (00000000000000bb)"))
        let stored = try JSON(parsing: try String(contentsOfFile: workspace.credentials, encoding: .utf8))
        #expect(stored["gateways"]?.arrayValue?.count == 2)
        #expect(try storedEntry(workspace.credentials, "00000000000000aa") == upstairsBefore, "the first is untouched")
        #expect(try storedEntry(workspace.credentials, "00000000000000bb")?["name"] == "cellar")
        let attributes = try FileManager.default.attributesOfItem(atPath: workspace.credentials)
        #expect((attributes[.posixPermissions] as? Int) == 0o600)

        // devices talks to the first, or the one named; the simulators differ by gateway id.
        let byDefault = try await bridge(["devices", "--credentials", workspace.credentials, "--json"])
        #expect(try JSON(parsing: byDefault.output)["gateway"]?["id"] == "00000000000000aa", "\(byDefault.output)")
        let named = try await bridge([
            "devices", "--credentials", workspace.credentials, "--json", "--gateway-name", "cellar",
        ])
        #expect(try JSON(parsing: named.output)["gateway"]?["id"] == "00000000000000bb", "\(named.output)")
        let unknown = try await bridge(["devices", "--credentials", workspace.credentials, "--gateway-name", "attic"])
        #expect(unknown.status == 1)
        #expect(
            unknown.output.contains(
                "no gateway named 'attic'; there are: upstairs (00000000000000aa), cellar (00000000000000bb)"),
            "\(unknown.output)")
        await upstairs.stop()
        await cellar.stop()
    }

    @Test func pairingOneOfTwoAgainIsRefusedUnlessForcedAndTheOtherStaysAsItWas() async throws {
        let workspace = try Workspace()
        let (upstairs, upstairsAddress) = try await startSimulator(workspace, gatewayID: "00000000000000aa")
        let (cellar, cellarAddress) = try await startSimulator(workspace, gatewayID: "00000000000000bb")
        let pairUpstairs = [
            "auth", "--gateway", upstairsAddress, "--security-code", Self.code, "--credentials", workspace.credentials,
        ]
        #expect(try await bridge(pairUpstairs + ["--name", "upstairs"]).status == 0)
        #expect(
            try await bridge([
                "auth", "--gateway", cellarAddress, "--security-code", Self.code, "--credentials",
                workspace.credentials,
            ]).status == 0)
        let before = try String(contentsOfFile: workspace.credentials, encoding: .utf8)
        let cellarBefore = try #require(try storedEntry(workspace.credentials, "00000000000000bb"))
        let upstairsBefore = try #require(try storedEntry(workspace.credentials, "00000000000000aa"))

        let again = try await bridge(pairUpstairs)
        #expect(again.status == 1)
        #expect(again.output.contains("for gateway 00000000000000aa 'upstairs'"), "\(again.output)")
        #expect(again.output.contains("still work"), "\(again.output)")
        #expect(!again.output.contains(upstairsBefore["psk"]?.stringValue ?? "-"), "never a key in a message")
        #expect(try String(contentsOfFile: workspace.credentials, encoding: .utf8) == before, "nothing changed")

        let forced = try await bridge(pairUpstairs + ["--force"])
        #expect(forced.status == 0, "\(forced.output)")
        #expect(forced.output.contains("replace the gateway's earlier identity"), "\(forced.output)")
        let upstairsAfter = try #require(try storedEntry(workspace.credentials, "00000000000000aa"))
        #expect(upstairsAfter["identity"] != upstairsBefore["identity"])
        #expect(upstairsAfter["name"] == "upstairs", "a re-pairing keeps the name")
        #expect(try storedEntry(workspace.credentials, "00000000000000bb") == cellarBefore, "the other is untouched")
        let stored = try JSON(parsing: try String(contentsOfFile: workspace.credentials, encoding: .utf8))
        #expect(stored["gateways"]?[0]?["gateway_id"] == "00000000000000aa", "a replaced gateway keeps its place")
        await upstairs.stop()
        await cellar.stop()
    }

    @Test func theNameComesFromTheConfigurationAndANameInUseIsRefused() async throws {
        let workspace = try Workspace()
        let (upstairs, upstairsAddress) = try await startSimulator(workspace, gatewayID: "00000000000000aa")
        let (cellar, cellarAddress) = try await startSimulator(workspace, gatewayID: "00000000000000bb")
        let config = workspace.directory + "/config.yaml"
        try """
        gateways:
          - name: cellar
            address: \(cellarAddress)
            credentials: \(workspace.credentials)
          - name: attic
            address: \(upstairsAddress)
            credentials: \(workspace.credentials)
        """.write(toFile: config, atomically: true, encoding: .utf8)
        let attic = try await bridge([
            "auth", "--config", config, "--gateway", upstairsAddress, "--security-code", Self.code,
        ])
        #expect(attic.status == 0, "\(attic.output)")
        #expect(attic.output.contains("as 'attic'"), "\(attic.output)")
        let before = try String(contentsOfFile: workspace.credentials, encoding: .utf8)

        let taken = try await bridge([
            "auth", "--config", config, "--gateway", cellarAddress, "--security-code", Self.code, "--name", "attic",
        ])
        #expect(taken.status == 1)
        #expect(
            taken.output.contains("the name 'attic' is already used by gateway 00000000000000aa"), "\(taken.output)")
        #expect(try String(contentsOfFile: workspace.credentials, encoding: .utf8) == before)

        let badName = try await bridge([
            "auth", "--gateway", cellarAddress, "--security-code", Self.code, "--name", "Cellar",
            "--credentials", workspace.credentials,
        ])
        #expect(badName.status != 0)
        #expect(badName.output.contains("--name: 'Cellar' must be 1…32 lower-case letters"), "\(badName.output)")

        // The configuration names the cellar by address; devices and the resolution agree.
        let cellarPaired = try await bridge([
            "auth", "--config", config, "--gateway", cellarAddress, "--security-code", Self.code,
        ])
        #expect(cellarPaired.output.contains("as 'cellar'"), "\(cellarPaired.output)")
        let listing = try await bridge(["devices", "--config", config, "--gateway-name", "attic", "--json"])
        #expect(try JSON(parsing: listing.output)["gateway"]?["id"] == "00000000000000aa", "\(listing.output)")
        await upstairs.stop()
        await cellar.stop()
    }

    @Test func aCredentialsFileThatCannotBeReadIsLeftAlone() async throws {
        let workspace = try Workspace()
        let (simulator, address) = try await startSimulator(workspace)
        try FileManager.default.createDirectory(
            atPath: workspace.directory + "/state", withIntermediateDirectories: true)
        try "{\"gateways\": [".write(toFile: workspace.credentials, atomically: true, encoding: .utf8)
        let result = try await bridge([
            "auth", "--gateway", address, "--security-code", Self.code, "--credentials", workspace.credentials,
        ])
        #expect(result.status == 1)
        #expect(
            result.output.contains("not a credentials file (not valid JSON); nothing was changed"), "\(result.output)")
        #expect(try String(contentsOfFile: workspace.credentials, encoding: .utf8) == "{\"gateways\": [")
        await simulator.stop()
    }
}
