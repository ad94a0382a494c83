import Testing

@testable import TradfriBridge

/// Which stored credentials each configured gateway runs with (README, "Several gateways").
@Suite struct GatewayResolutionTests {
    static let path = "/var/lib/tradfri-bridge/credentials.json"

    static func gateway(
        _ id: String, name: String? = nil, address: String = "10.0.0.2", port: UInt16 = 5684
    )
        -> GatewayCredentials
    {
        GatewayCredentials(
            identity: "identity-\(id.suffix(2))", psk: "SECRETPSKVALUE\(id.suffix(2))", gatewayID: id,
            address: address, port: port, firmware: nil, name: name)
    }

    static let aa = gateway("00000000000000aa", name: "upstairs", address: "10.0.0.2")
    static let bb = gateway("00000000000000bb", address: "10.0.0.3")
    static let cc = gateway("00000000000000cc", name: "cellar", address: "10.0.0.4", port: 15684)

    func configuration(_ yaml: String) throws -> BridgeConfiguration {
        var configuration = try BridgeConfiguration.parse(yaml)
        for index in configuration.gateways.indices where configuration.gateways[index].credentials.hasPrefix("/var") {
            configuration.gateways[index].credentials = Self.path
        }
        return configuration
    }

    func stores(_ entries: [GatewayCredentials], at path: String = path) throws -> [String: CredentialStore] {
        [path: try CredentialStore(entries: entries)]
    }

    func failure(_ body: () throws -> [ResolvedGateway]) -> String {
        do {
            let resolved = try body()
            return "resolved: \(resolved.map(\.name))"
        } catch {
            return "\(error)"
        }
    }

    @Test func theGatewaySectionWithOneStoredGatewayRunsAsBefore() throws {
        let configuration = try configuration("gateway:\n  address: 10.0.0.9\n")
        let resolved = try GatewayResolution.resolve(configuration, stores: try stores([Self.bb]))
        #expect(resolved.count == 1)
        #expect(resolved[0].name == "gateway" && resolved[0].credentials == Self.bb && resolved[0].key == "gateway")
        #expect(resolved[0].entry.address == .host("10.0.0.9", port: 5684), "the configured address wins")
    }

    @Test func eachRuleInTurn() throws {
        let configuration = try configuration(
            """
            gateways:
              - name: first
                id: 00000000000000BB
              - name: upstairs
              - name: garden
                address: 10.0.0.4:15684
            """)
        let resolved = try GatewayResolution.resolve(configuration, stores: try stores([Self.aa, Self.bb, Self.cc]))
        #expect(resolved.map(\.name) == ["first", "upstairs", "garden"])
        #expect(resolved.map(\.gatewayID) == ["00000000000000bb", "00000000000000aa", "00000000000000cc"])
        #expect(resolved.map(\.key) == ["gateways[0]", "gateways[1]", "gateways[2]"])
    }

    @Test func aStoreOfOneServesAnEntryOfAnyName() throws {
        let configuration = try configuration("gateways:\n  - name: attic\n")
        let resolved = try GatewayResolution.resolve(configuration, stores: try stores([Self.aa]))
        #expect(resolved.map(\.name) == ["attic"] && resolved[0].credentials == Self.aa)
    }

    @Test func eachEntryReadsItsOwnCredentialsFile() throws {
        let configuration = try BridgeConfiguration.parse(
            "gateways:\n  - name: a\n    credentials: /one.json\n  - name: b\n    credentials: /two.json\n")
        let resolved = try GatewayResolution.resolve(
            configuration,
            stores: [
                "/one.json": try CredentialStore(entries: [Self.bb]),
                "/two.json": try CredentialStore(entries: [Self.cc]),
            ])
        #expect(resolved.map(\.gatewayID) == ["00000000000000bb", "00000000000000cc"])
    }

    @Test func withoutCredentialsTheMessageSaysHowToPair() throws {
        let section = try configuration("gateway:\n  address: auto\n")
        #expect(
            failure { try GatewayResolution.resolve(section, stores: [:]) }
                == "gateway: no gateway credentials at \(Self.path): pair first with 'tradfri-bridge auth --gateway HOST --security-code CODE'"
        )
        let list = try configuration("gateways:\n  - name: a\n  - name: b\n")
        #expect(
            failure { try GatewayResolution.resolve(list, stores: try stores([])) }
                == "gateways[0]: no gateway credentials at \(Self.path): pair first with 'tradfri-bridge auth --gateway HOST --security-code CODE --name a'"
        )
    }

    @Test func anEntryThatCannotBeToldApartNamesItself() throws {
        let configuration = try configuration("gateways:\n  - name: upstairs\n  - name: attic\n    address: auto\n")
        let message = failure {
            try GatewayResolution.resolve(configuration, stores: try stores([Self.aa, Self.bb, Self.cc]))
        }
        #expect(
            message
                == "gateways[1]: the credentials file \(Self.path) holds 3 gateways (00000000000000aa 'upstairs', 00000000000000bb, 00000000000000cc 'cellar') and none is named 'attic'; say which with id: or name:"
        )
        #expect(!message.contains("SECRET"))
    }

    @Test func anIdThatIsNotStoredIsAnError() throws {
        let configuration = try configuration("gateways:\n  - name: a\n    id: 00000000000000dd\n")
        #expect(
            failure { try GatewayResolution.resolve(configuration, stores: try stores([Self.aa])) }.hasPrefix(
                "gateways[0].id: \(Self.path) holds no credentials for gateway 00000000000000dd"))
    }

    @Test func twoEntriesForOneGatewayAreRefusedNamingBoth() throws {
        let configuration = try configuration(
            "gateways:\n  - name: upstairs\n  - name: again\n    address: 10.0.0.2\n")
        #expect(
            failure { try GatewayResolution.resolve(configuration, stores: try stores([Self.aa, Self.bb])) }.hasPrefix(
                "gateways[1]: uses the credentials of gateway 00000000000000aa, as gateways[0] ('upstairs') does"))
    }

    @Test func autoRunsEveryStoredGatewayNamedByItsNameOrId() throws {
        let configuration = try configuration("gateways:\n  auto: true\n  keepalive: 3\n")
        let resolved = try GatewayResolution.resolve(configuration, stores: try stores([Self.aa, Self.bb, Self.cc]))
        #expect(resolved.map(\.name) == ["upstairs", "gw_0000bb", "cellar"])
        #expect(resolved.allSatisfy { $0.entry.address == .auto && $0.entry.keepAlive == 3 && $0.key == "gateways" })
        #expect(resolved.map(\.entry.id) == ["00000000000000aa", "00000000000000bb", "00000000000000cc"])
        #expect(resolved.map(\.credentials) == [Self.aa, Self.bb, Self.cc])
        #expect(
            failure { try GatewayResolution.resolve(configuration, stores: [:]) }.hasPrefix(
                "gateways: auto: no gateway is paired in \(Self.path)"))
    }
}
