import Foundation
import HubModel
import Testing
import TradfriModel

@testable import TradfriBridge

/// The credentials file with any number of paired gateways, and the file every earlier version
/// wrote (one object).
@Suite struct CredentialStoreTests {
    /// A file as versions before several gateways wrote it.
    static let legacyFile = """
        {
          "address" : "192.168.1.20",
          "firmware" : "1.19.32",
          "gateway_id" : "7e11515204400072",
          "identity" : "tradfri-bridge-pi-a1b2c3",
          "mdns_name" : "gw-515204400072",
          "paired_at" : "2024-05-01T10:00:00Z",
          "port" : 5684,
          "psk" : "SECRETKEYLEGACY1"
        }
        """

    static func gateway(
        _ id: String, name: String? = nil, address: String = "10.0.0.2", psk: String? = nil
    )
        -> GatewayCredentials
    {
        GatewayCredentials(
            identity: "tradfri-bridge-test-\(id.suffix(4))", psk: psk ?? "SECRET\(id.suffix(10))",
            gatewayID: id, address: address, port: 5684, firmware: "1.19.32", name: name)
    }

    final class Directory: Sendable {
        let path: String
        init() throws {
            path = FileManager.default.temporaryDirectory.appendingPathComponent("store-\(UUID().uuidString)").path
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        }
        var file: String { path + "/state/credentials.json" }
        deinit { try? FileManager.default.removeItem(atPath: path) }
    }

    func read(_ path: String) throws -> String { try String(contentsOfFile: path, encoding: .utf8) }

    @Test func theLegacyFileIsReadAndOneUnnamedGatewayIsWrittenTheSameWay() throws {
        let directory = try Directory()
        try FileManager.default.createDirectory(
            atPath: directory.path + "/state", withIntermediateDirectories: true)
        try Self.legacyFile.write(toFile: directory.file, atomically: true, encoding: .utf8)
        let store = try CredentialStore.load(from: directory.file)
        #expect(store.entries.count == 1)
        let only = try #require(store.entries.first)
        #expect(only.gatewayID == "7e11515204400072" && only.name == nil && only.mdnsName == "gw-515204400072")
        #expect(only.displayName == "gw_400072")
        #expect(try GatewayCredentials.load(from: directory.file) == only, "the one-gateway reader still works")

        try store.save(to: directory.file)
        let written = try JSON(parsing: try read(directory.file))
        #expect(written["gateways"] == nil, "one gateway without a name keeps the layout a downgrade reads")
        #expect(written == (try JSON(parsing: Self.legacyFile)))
    }

    @Test func severalGatewaysRoundTripInTheListLayoutWithMode0600() throws {
        let directory = try Directory()
        var store = CredentialStore()
        try store.upsert(Self.gateway("00000000000000aa", name: "upstairs"))
        try store.upsert(Self.gateway("00000000000000bb"))
        try store.save(to: directory.file)

        let attributes = try FileManager.default.attributesOfItem(atPath: directory.file)
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
        let json = try JSON(parsing: try read(directory.file))
        #expect(json["gateways"]?.arrayValue?.count == 2)
        #expect(
            json["gateways"]?[0]?["name"] == "upstairs" && json["gateways"]?[0]?["gateway_id"] == "00000000000000aa")
        #expect(json["gateways"]?[1]?["name"] == nil)
        #expect(try CredentialStore.load(from: directory.file) == store)

        // One named gateway is written as a list too: the old reader would drop the name.
        var named = CredentialStore()
        try named.upsert(Self.gateway("00000000000000aa", name: "upstairs"))
        try named.save(to: directory.file)
        #expect(try JSON(parsing: try read(directory.file))["gateways"]?.arrayValue?.count == 1)
        #expect(try CredentialStore.load(from: directory.file) == named)
    }

    @Test func upsertReplacesOnlyTheEntryOfTheSameGatewayAndKeepsItsPlaceAndName() throws {
        var store = CredentialStore()
        let upstairs = Self.gateway("00000000000000aa", name: "upstairs")
        let cellar = Self.gateway("00000000000000bb", name: "cellar")
        try store.upsert(upstairs)
        try store.upsert(cellar)
        var repaired = Self.gateway("00000000000000AA", address: "10.0.0.9", psk: "NEWSECRETKEY0001")
        repaired.identity = "tradfri-bridge-test-new"
        let replaced = try store.upsert(repaired)
        #expect(replaced == upstairs)
        #expect(store.entries.map(\.gatewayID) == ["00000000000000AA", "00000000000000bb"])
        #expect(store.entries[0].name == "upstairs", "a re-pairing without a name keeps the stored one")
        #expect(store.entries[0].identity == "tradfri-bridge-test-new" && store.entries[0].address == "10.0.0.9")
        #expect(store.entries[1] == cellar, "the other gateway is untouched")
        #expect(store.entry(gatewayID: "00000000000000aa")?.psk == "NEWSECRETKEY0001")
        #expect(store.entry(named: "cellar") == cellar)
        #expect(store.entries(at: "10.0.0.2", port: 5684) == [cellar])
    }

    @Test func aNameAnotherGatewayHasIsRefusedAndChangesNothing() throws {
        var store = CredentialStore()
        try store.upsert(Self.gateway("00000000000000aa", name: "upstairs"))
        let before = store
        #expect {
            try store.upsert(Self.gateway("00000000000000bb", name: "upstairs"))
        } throws: { error in
            "\(error)" == "the name 'upstairs' is already used by gateway 00000000000000aa; choose another name"
        }
        #expect {
            try store.upsert(Self.gateway("00000000000000bb", name: "Upstairs"))
        } throws: { error in
            "\(error)".contains("'Upstairs' must be 1…32 lower-case letters")
        }
        #expect(store == before)
    }

    @Test(arguments: [
        (
            "{\"gateways\": [\(entry("00000000000000aa")), \(entry("00000000000000AA"))]}",
            "is gateway 00000000000000aa again"
        ),
        (
            "{\"gateways\": [\(entry("00000000000000aa", name: "a")), \(entry("00000000000000bb", name: "a"))]}",
            "gateways[1].name: 'a' is used by gateways[0] too"
        ),
        ("{\"gateways\": [\(entry("00000000000000aa", name: "Bad Name"))]}", "gateways[0].name: 'Bad Name' must be"),
        ("{\"gateways\": [{\"psk\": \"SECRETPSKVALUE01\"}]}", "(gateways[0].identity is missing)"),
        ("{\"identity\": \"x\", \"psk\": \"SECRETPSKVALUE01\"}", "not a credentials file (address is missing)"),
        ("{\"psk\": \"SECRETPSKVALUE01\", ", "not valid JSON"),
        ("{\"gateways\": 3, \"psk\": \"SECRETPSKVALUE01\"}", "has the wrong type"),
    ])
    func aBadFileIsAClearErrorThatNeverShowsAKey(text: String, message: String) throws {
        let directory = try Directory()
        try FileManager.default.createDirectory(atPath: directory.path + "/state", withIntermediateDirectories: true)
        try text.write(toFile: directory.file, atomically: true, encoding: .utf8)
        #expect {
            try CredentialStore.load(from: directory.file)
        } throws: { error in
            let description = "\(error)"
            if description.contains("SECRET") { Issue.record("a key in the message: \(description)") }
            return description.hasPrefix("cannot read gateway credentials \(directory.file): ")
                && description.contains(message)
                || {
                    Issue.record("got: \(description)")
                    return false
                }()
        }
    }

    static func entry(_ id: String, name: String? = nil) -> String {
        let named = name.map { ", \"name\": \"\($0)\"" } ?? ""
        return """
            {"identity": "i-\(id)", "psk": "SECRETPSKVALUE01", "gateway_id": "\(id)", "address": "10.0.0.2", \
            "port": 5684, "paired_at": "2024-05-01T10:00:00Z"\(named)}
            """
    }

    @Test func aMissingFileIsEmptyForPairingAndAnErrorForRunning() throws {
        let directory = try Directory()
        #expect(try CredentialStore.loadIfPresent(from: directory.file).isEmpty)
        #expect(throws: GatewayCredentials.Failure.self) { try CredentialStore.load(from: directory.file) }
        #expect(!FileManager.default.fileExists(atPath: directory.file), "reading creates nothing")
    }

    @Test func theOneGatewayReaderSaysWhenThereAreSeveral() throws {
        let directory = try Directory()
        let store = try CredentialStore(entries: [
            Self.gateway("00000000000000aa", name: "upstairs"), Self.gateway("00000000000000bb"),
        ])
        try store.save(to: directory.file)
        #expect {
            try GatewayCredentials.load(from: directory.file)
        } throws: { error in
            "\(error)" == "\(directory.file) holds 2 gateways (upstairs, gw_0000bb); say which one"
        }
    }

    @Test func credentialsNeverShowTheirKey() {
        let credentials = Self.gateway("00000000000000aa", name: "upstairs", psk: "SECRETPSKVALUE01")
        #expect(
            "\(credentials)"
                == "gateway 00000000000000aa 'upstairs' (identity 'tradfri-bridge-test-00aa' at 10.0.0.2:5684)")
    }
}
