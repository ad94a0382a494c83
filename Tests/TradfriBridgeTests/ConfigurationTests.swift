import Foundation
import Testing

@testable import TradfriBridge

@Suite struct ConfigurationTests {
    static var exampleFile: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("config/tradfri-bridge.example.yaml").path
    }

    @Test func theExampleFileLoadsAndMatchesTheDefaults() throws {
        let loaded = try BridgeConfiguration.load(path: Self.exampleFile)
        var defaults = BridgeConfiguration()
        defaults.mqtt.clientID = loaded.mqtt.clientID
        #expect(loaded == defaults, "the example documents the defaults")
    }

    @Test func anEmptyFileGivesTheDefaults() throws {
        #expect(try BridgeConfiguration.parse("") == BridgeConfiguration())
    }

    @Test func valuesAreRead() throws {
        let configuration = try BridgeConfiguration.parse(
            """
            gateway:
              address: 192.168.1.20:5684
              command_spacing: 0.6
            mqtt:
              server: mqtts://broker.lan
              base_topic: home/tradfri
              version: 4
              base_stations: [emonpi.local, emonbase.local]
            logging:
              level: debug
            """)
        #expect(configuration.gateway.address == .host("192.168.1.20", port: 5684))
        #expect(configuration.gateway.commandSpacing == 0.6)
        #expect(configuration.mqtt.server == .url(tls: true, host: "broker.lan", port: 8883))
        #expect(configuration.mqtt.baseTopic == "home/tradfri")
        #expect(configuration.mqtt.version == 4)
        #expect(configuration.mqtt.baseStations == ["emonpi.local", "emonbase.local"])
        #expect(configuration.logging.level == "debug")
    }

    @Test(arguments: [
        ("mqtt:\n  servr: localhost\n", "config:2: mqtt.servr: unknown key (did you mean 'server'?)"),
        ("gatway:\n  address: auto\n", "config:1: gatway: unknown key (did you mean 'gateway'?)"),
        ("gateway:\n  keepalive: fast\n", "config:2: gateway.keepalive: must be a number of seconds"),
        ("gateway:\n  keepalive: 0.5\n", "config:2: gateway.keepalive: 0.5 is out of range"),
        ("mqtt:\n  version: 3\n", "config:2: mqtt.version: 3 is out of range (4…5)"),
        ("mqtt:\n  server: http://x\n", "config:2: mqtt.server: must be 'auto' or a URL"),
        ("mqtt:\n  base_topic: a/#\n", "config:2: mqtt.base_topic: must be a topic without wildcards"),
        ("logging:\n  level: loud\n", "config:2: logging.level: 'loud' is not one of"),
        ("logging:\n  repeat_interval: -1\n", "config:2: logging.repeat_interval: -1.0 is out of range"),
        ("mqtt: [1, 2]\n", "config:1: mqtt: must be a mapping"),
        ("mqtt:\n  base_topic: x\n  base_topic: y\n", "duplicated key(s): 'base_topic'"),
        ("gateway: {address: \"a b\"}\n", "gateway.address: must be 'auto'"),
        ("mqtt:\n  server: [unclosed\n", "not valid YAML"),
        (
            "homeassistant:\n  discovery_prefix: tradfri\n",
            "homeassistant.discovery_prefix: must differ from mqtt.base_topic"
        ),
        (
            "homeassistant:\n  discovery_prefix: ha/#\n",
            "homeassistant.discovery_prefix: must be a topic without wildcards"
        ),
        ("homeassistant:\n  status_topic: \"\"\n", "homeassistant.status_topic: must be a topic without wildcards"),
    ])
    func badFilesAreRejectedNamingTheKey(text: String, message: String) {
        #expect {
            try BridgeConfiguration.parse(text)
        } throws: { error in
            let description = "\(error)"
            return description.contains(message)
                || {
                    Issue.record("got: \(description)"); return false
                }()
        }
    }

    @Test func aMissingExplicitFileIsAnError() {
        #expect(throws: ConfigurationError.self) { try BridgeConfiguration.load(path: "/nonexistent/config.yaml") }
    }

    @Test(arguments: [
        ("auto", BridgeConfiguration.GatewayAddress.auto),
        ("gw.lan", .host("gw.lan", port: 5684)),
        ("10.0.0.5:15684", .host("10.0.0.5", port: 15684)),
        ("[fe80::1]:5684", .host("fe80::1", port: 5684)),
        ("fe80::1", .host("fe80::1", port: 5684)),
    ])
    func gatewayAddresses(text: String, expected: BridgeConfiguration.GatewayAddress) {
        #expect(BridgeConfiguration.GatewayAddress.parse(text) == expected)
    }
}
