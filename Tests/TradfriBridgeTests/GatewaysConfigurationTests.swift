import Foundation
import Testing

@testable import TradfriBridge

/// `gateways:` (several gateways) and `gateway:` (one) in the configuration file.
@Suite struct GatewaysConfigurationTests {
    @Test func aListGivesOneEntryPerGatewayWithItsOwnKeys() throws {
        let configuration = try BridgeConfiguration.parse(
            """
            gateways:
              - name: upstairs
                address: 192.168.1.20
                id: 7E11515204400072
                keepalive: 5
              - name: garden_house
                kind: tradfri
                credentials: /srv/garden.json
                command_spacing: 1
            """)
        #expect(configuration.gatewaysForm == .list)
        #expect(!configuration.gatewaysAuto)
        #expect(configuration.gateways.map(\.name) == ["upstairs", "garden_house"])
        let upstairs = configuration.gateways[0]
        #expect(upstairs.address == .host("192.168.1.20", port: 5684))
        #expect(upstairs.id == "7e11515204400072", "ids are kept in lower case, as gateways report them")
        #expect(upstairs.keepAlive == 5 && upstairs.commandSpacing == 0.5)
        #expect(upstairs.credentials == BridgeConfiguration.defaultStateDirectory + "/credentials.json")
        let garden = configuration.gateways[1]
        #expect(garden.kind == .tradfri && garden.address == .auto && garden.id == nil)
        #expect(garden.credentials == "/srv/garden.json" && garden.commandSpacing == 1 && garden.keepAlive == 10)
        #expect(configuration.gateway == upstairs, "callers of one gateway see the first")
        #expect(configuration.key(ofGateway: 1) == "gateways[1]")
    }

    /// The commented `gateways:` examples in config/tradfri-bridge.example.yaml, uncommented.
    static func commentedExamples() throws -> [String] {
        let lines = try String(contentsOfFile: ConfigurationTests.exampleFile, encoding: .utf8)
            .split(separator: "\n", omittingEmptySubsequences: false)
        var examples: [String] = []
        var current: [String]?
        for line in lines {
            if line.hasPrefix("# gateways:") { current = [] }
            guard let block = current else { continue }
            if line.hasPrefix("# ") {
                current = block + [String(line.dropFirst(2))]
            } else {
                examples.append(block.joined(separator: "\n"))
                current = nil
            }
        }
        return examples
    }

    @Test func theExampleFileShowsGatewaysThatLoad() throws {
        let examples = try Self.commentedExamples()
        #expect(examples.count == 3, "\(examples)")
        let list = try BridgeConfiguration.parse(examples[0], file: "example")
        #expect(list.gateways.map(\.name) == ["upstairs", "garden_house"])
        #expect(list.gateways[0].id == "7e11515204400072" && list.gateways[1].commandSpacing == 1)
        #expect(try BridgeConfiguration.parse(examples[1]).gatewaysAuto)
        #expect(try BridgeConfiguration.parse(examples[2]).gatewaysAuto)
    }

    @Test func theGatewaySectionIsOneEntryNamedGatewayUnlessItSaysSo() throws {
        let plain = try BridgeConfiguration.parse("gateway:\n  address: gw.lan:15684\n")
        #expect(plain.gatewaysForm == .section)
        #expect(plain.gateways.count == 1)
        #expect(plain.gateways[0].name == "gateway" && plain.gateways[0].address == .host("gw.lan", port: 15684))
        #expect(plain.key(ofGateway: 0) == "gateway")
        let named = try BridgeConfiguration.parse("gateway:\n  name: attic\n  id: 00000000000000aa\n")
        #expect(named.gateway.name == "attic" && named.gateway.id == "00000000000000aa")
        #expect(try BridgeConfiguration.parse("mqtt:\n  base_topic: x\n").gateways == [.init()])
    }

    @Test func autoTakesEveryPairedGatewayWithSharedKeys() throws {
        let auto = try BridgeConfiguration.parse("gateways: auto\n")
        #expect(auto.gatewaysAuto && auto.gatewaysForm == .auto)
        #expect(auto.gateways == [.init()])
        let shared = try BridgeConfiguration.parse(
            "gateways:\n  auto: true\n  credentials: /srv/credentials.json\n  keepalive: 3\n")
        #expect(shared.gatewaysAuto)
        #expect(shared.gateway.credentials == "/srv/credentials.json" && shared.gateway.keepAlive == 3)
    }

    @Test func settingTheGatewayReplacesTheFirstEntry() {
        var configuration = BridgeConfiguration()
        configuration.gateway.commandSpacing = 2
        #expect(configuration.gateways.count == 1 && configuration.gateways[0].commandSpacing == 2)
    }

    @Test(arguments: [
        (
            "gateway:\n  address: auto\ngateways:\n  - name: a\n",
            "config.yaml:4: gateways: give either 'gateway:' (one gateway) or 'gateways:' (several), not both"
        ),
        (
            "gateways:\n  - name: up\n  - name: down\n    address: \"a b\"\n",
            "config.yaml:4: gateways[1].address: must be 'auto', a host name or address, or HOST:PORT"
        ),
        (
            "gateways:\n  - name: upstairs\n  - name: down\n  - name: upstairs\n",
            "config.yaml:4: gateways[2].name: 'upstairs' is used by gateways[0] too"
        ),
        (
            "gateways:\n  - name: a\n    id: 00000000000000AA\n  - name: b\n    id: 00000000000000aa\n",
            "config.yaml:5: gateways[1].id: gateway 00000000000000aa is gateways[0] too"
        ),
        ("gateways:\n  - address: auto\n", "config.yaml:2: gateways[0]: needs a name"),
        ("gateways:\n  - name: Upstairs\n", "config.yaml:2: gateways[0].name: 'Upstairs' must be 1…32 lower-case"),
        ("gateways:\n  - name: bridge\n", "gateways[0].name: 'bridge' is reserved for the bridge's own topics"),
        ("gateways:\n  - name: up stairs\n", "gateways[0].name: 'up stairs' must be 1…32"),
        ("gateways:\n  - name: \(String(repeating: "a", count: 33))\n", "gateways[0].name: 'aaaa"),
        ("gateways:\n  - name: a\n    id: 7e1151\n", "config.yaml:3: gateways[0].id: '7e1151' is not a gateway id"),
        ("gateways:\n  - name: a\n    kind: dirigera\n", "gateways[0].kind: 'dirigera' is not one of: tradfri"),
        ("gateways:\n  - name: a\n    adress: x\n", "gateways[0].adress: unknown key (did you mean 'address'?)"),
        ("gateways:\n  - name: a\n    keepalive: 0.5\n", "config.yaml:3: gateways[0].keepalive: 0.5 is out of range"),
        ("gateways:\n  - name: a\n    audit_interval: 5\n", "gateways[0].audit_interval: must be 0 (off)"),
        ("gateways:\n  - name: a\n    credentials: \"\"\n", "gateways[0].credentials: must be the path"),
        ("gateways: []\n", "config.yaml:1: gateways: the list is empty"),
        ("gateways:\n", "gateways: must be 'auto' or a list of gateways"),
        ("gateways: everything\n", "gateways: must be 'auto' or a list of gateways"),
        ("gateways:\n  - upstairs\n", "gateways[0]: must be a mapping"),
        ("gateways:\n  credentials: /x\n", "gateways: a mapping here must say 'auto: true'"),
        ("gateways:\n  auto: true\n  address: 10.0.0.1\n", "gateways.address: unknown key"),
        ("gateway:\n  name: Attic\n", "config.yaml:2: gateway.name: 'Attic' must be"),
    ])
    func badGatewaysAreRejectedNamingTheEntry(text: String, message: String) {
        #expect {
            try BridgeConfiguration.parse(text, file: "config.yaml")
        } throws: { error in
            let description = "\(error)"
            return description.contains(message)
                || {
                    Issue.record("got: \(description)")
                    return false
                }()
        }
    }

    @Test(arguments: ["a", "upstairs", "garden_house", "floor-2", "gw_400072", String(repeating: "x", count: 32)])
    func topicSafeNamesAreAccepted(name: String) {
        #expect(BridgeConfiguration.GatewayEntry.nameProblem(name) == nil)
    }
}
