import Foundation
import HubModel
import TestSupport
import Testing
import TradfriModel

/// Discovery on a small LAN of network namespaces, each host with its own dbus-daemon and
/// avahi-daemon: the simulator advertises itself like a real gateway, mosquitto is advertised as
/// `_mqtt._tcp`, and the bridge finds both by itself.
@Suite(.needsNetworkLab, .serialized, .timeLimit(.minutes(5)))
struct DiscoveryTests {
    static let code = "LABSECURITYCODE1"

    /// A LAN with a gateway simulator, an advertised broker and a bridge host.
    final class LAN: @unchecked Sendable {
        // @unchecked: driven by one test at a time.
        let lab: NetworkLab
        let state: String
        var simulators: [String: ChildProcess] = [:]

        init(hosts: [String], bridgeAvahi: Bool = true) async throws {
            lab = try await NetworkLab.start(hosts: hosts)
            state = lab.directory + "/state"
            try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
            if !bridgeAvahi { await lab["bridge"].stopAvahi() }
        }

        func startSimulator(
            on host: String, gatewayID: String = "7e11515204400072", code: String = DiscoveryTests.code
        )
            async throws
        {
            let simulator = try lab[host].spawn(
                "tradfri-gateway-sim",
                [
                    "--listen", "0.0.0.0:5684", "--security-code", code, "--state-dir", "\(state)/\(host)-sim",
                    "--gateway-id", gatewayID, "--advertise",
                ])
            try await simulator.waitForLine(within: .seconds(20), "the simulator on \(host)") {
                $0.contains("listening on")
            }
            try await simulator.waitForLine(within: .seconds(30), "the advertisement on \(host)") {
                $0.contains("advertising")
            }
            simulators[host] = simulator
        }

        func stopSimulator(on host: String) async {
            await simulators.removeValue(forKey: host)?.stop()
        }

        /// mosquitto on the broker host, advertised as `_mqtt._tcp` with avahi-publish unless
        /// `advertised` is false (an emonpi-style base station known only by its host name).
        func startBroker(advertised: Bool = true) async throws {
            let config = "\(state)/mosquitto.conf"
            try "listener 1883 0.0.0.0\nallow_anonymous true\npersistence false\n".write(
                toFile: config, atomically: true, encoding: .utf8)
            let broker = try lab["broker"].spawn("mosquitto", ["-c", config])
            try await broker.waitForLine(within: .seconds(20), "mosquitto") { $0.contains("running") }
            guard advertised else { return }
            let advert = try lab["broker"].spawn("avahi-publish", ["-s", "Home broker", "_mqtt._tcp", "1883"])
            try await advert.waitForLine(within: .seconds(30), "the broker advertisement") {
                $0.contains("Established")
            }
        }

        func pair(_ gateway: String = "auto", name: String? = nil) async throws -> (status: Int32, output: String) {
            try await lab["bridge"].run(
                "tradfri-bridge",
                [
                    "auth", "--gateway", gateway, "--security-code", DiscoveryTests.code, "--credentials",
                    "\(state)/credentials.json",
                ] + (name.map { ["--name", $0] } ?? []), within: .seconds(60), check: false)
        }

        func startBridge(
            gateway: String = "auto", mqtt: String = "auto", mqttExtra: String = "", extra: String = ""
        ) async throws -> ChildProcess {
            let config = "\(state)/bridge.yaml"
            try """
            gateway:
              address: \(gateway)
              credentials: \(state)/credentials.json
              keepalive: 1
              request_timeout: 2
              reconnect_max_delay: 2
            mqtt:
              server: \(mqtt)
              \(mqttExtra)
            discovery:
              timeout: 3
            \(extra)
            """.write(toFile: config, atomically: true, encoding: .utf8)
            return try lab["bridge"].spawn("tradfri-bridge", ["run", "--config", config])
        }

        /// mosquitto_sub on the broker host.
        func subscribe(_ topic: String) throws -> ChildProcess {
            try lab["broker"].spawn("mosquitto_sub", ["-h", "127.0.0.1", "-v", "-t", topic])
        }

        func publish(_ topic: String, _ message: String) async throws {
            try await lab["broker"].run("mosquitto_pub", ["-h", "127.0.0.1", "-t", topic, "-m", message])
        }

        func shutdown() {
            lab.shutdown()
        }
    }

    @Test func aBridgeWithNothingButCredentialsFindsItsGatewayAndBroker() async throws {
        let lan = try await LAN(hosts: ["gateway", "broker", "bridge"])
        defer { lan.shutdown() }
        try await lan.startSimulator(on: "gateway")
        try await lan.startBroker()
        let paired = try await lan.pair()
        #expect(paired.status == 0, "\(paired.output)")
        #expect(paired.output.contains("Found gateway gw-515204400072 at \(lan.lab["gateway"].address):5684"))

        let watcher = try lan.subscribe("tradfri/#")
        let bridge = try await lan.startBridge()
        try await watcher.waitForLine(within: .seconds(60), "state from the bridge") {
            $0.hasPrefix("tradfri/hallway {")
        }
        // The log says which broker and why.
        try await bridge.waitForLine(containing: "advertised by mDNS as _mqtt._tcp", within: .seconds(5))
        // Commands flow too.
        try await lan.publish("tradfri/hallway/set", "ON")
        try await watcher.waitForLine(within: .seconds(10), "the light on") {
            $0.hasPrefix("tradfri/hallway {") && $0.contains(#""state":"ON""#)
        }
        // The bridge advertises itself.
        try await bridge.waitForLine(within: .seconds(30), "the bridge's own advertisement") {
            $0.contains("advertising") && $0.contains("_tradfri-bridge._tcp")
        }
        let browse = try await lan.lab["broker"].run(
            "avahi-browse", ["-rpt", "_tradfri-bridge._tcp"], within: .seconds(30))
        #expect(browse.output.contains("base_topic=tradfri"), "\(browse.output)")
    }

    @Test func withTwoGatewaysTheBridgePicksTheOneItsCredentialsBelongTo() async throws {
        let lan = try await LAN(hosts: ["kitchen", "cellar", "broker", "bridge"])
        defer { lan.shutdown() }
        try await lan.startSimulator(on: "kitchen", gatewayID: "00000000000000aa")
        try await lan.startSimulator(on: "cellar", gatewayID: "00000000000000bb")
        try await lan.startBroker()
        // With two gateways `auth --gateway auto` must ask which one.
        let ambiguous = try await lan.pair()
        #expect(ambiguous.status != 0)
        #expect(ambiguous.output.contains("several gateways found"), "\(ambiguous.output)")
        #expect(try await lan.pair(lan.lab["cellar"].address).status == 0)

        let watcher = try lan.subscribe("tradfri/bridge/info")
        _ = try await lan.startBridge()
        try await watcher.waitForLine(within: .seconds(60), "the cellar gateway connected") {
            $0.contains(#""connected":true"#) && $0.contains("00000000000000bb")
        }
    }

    @Test func theBridgeFollowsTheGatewayToANewAddress() async throws {
        let lan = try await LAN(hosts: ["gateway", "broker", "bridge"])
        defer { lan.shutdown() }
        try await lan.startSimulator(on: "gateway")
        try await lan.startBroker()
        #expect(try await lan.pair().status == 0)
        let watcher = try lan.subscribe("tradfri/#")
        _ = try await lan.startBridge()
        try await watcher.waitForLine(within: .seconds(60), "first state") { $0.hasPrefix("tradfri/hallway {") }

        // DHCP gives the gateway a new address; it restarts (same identities).
        await lan.stopSimulator(on: "gateway")
        try await lan.lab["gateway"].setAddress("10.77.0.77")
        try await lan.startSimulator(on: "gateway")
        try await watcher.waitForLine(within: .seconds(60), "the bridge back online at the new address") {
            $0.hasPrefix("tradfri/bridge/event") && $0.contains("gateway_online") && $0.contains("10.77.0.77")
        }
        try await lan.publish("tradfri/coffee_maker/set", "ON")
        try await watcher.waitForLine(within: .seconds(15), "commands flow again") {
            $0.hasPrefix("tradfri/coffee_maker {") && $0.contains(#""state":"ON""#)
        }
    }

    @Test func discoverListsTheGatewaysAndTheBroker() async throws {
        let lan = try await LAN(hosts: ["kitchen", "cellar", "broker", "bridge"])
        defer { lan.shutdown() }
        try await lan.startSimulator(on: "kitchen", gatewayID: "00000000000000aa")
        try await lan.startSimulator(on: "cellar", gatewayID: "00000000000000bb")
        try await lan.startBroker()
        let table = try await lan.lab["bridge"].run(
            "tradfri-bridge", ["discover", "--timeout", "5"], within: .seconds(60))
        #expect(table.output.contains("gw-0000000000aa") && table.output.contains(lan.lab["kitchen"].address))
        #expect(table.output.contains("gw-0000000000bb") && table.output.contains(lan.lab["cellar"].address))
        #expect(table.output.contains("1.19.32"))
        #expect(table.output.contains("Home broker") && table.output.contains("_mqtt._tcp"))
        let json = try await lan.lab["bridge"].run(
            "tradfri-bridge", ["discover", "--timeout", "5", "--json"], within: .seconds(60))
        let parsed = try JSON(parsing: json.output.trimmingCharacters(in: .whitespacesAndNewlines))
        #expect(parsed["gateways"]?.arrayValue?.count == 2)
        #expect(parsed["brokers"]?[0]?["port"] == 1883)
    }

    @Test func withoutAvahiTheBridgeWarnsAndUsesConfiguredAddresses() async throws {
        let lan = try await LAN(hosts: ["gateway", "broker", "bridge"], bridgeAvahi: false)
        defer { lan.shutdown() }
        try await lan.startSimulator(on: "gateway")
        try await lan.startBroker()
        let gateway = lan.lab["gateway"].address
        #expect(try await lan.pair(gateway).status == 0)
        let watcher = try lan.subscribe("tradfri/#")
        let bridge = try await lan.startBridge(gateway: "auto", mqtt: "mqtt://\(lan.lab["broker"].address):1883")
        try await watcher.waitForLine(within: .seconds(60), "state without mDNS") { $0.hasPrefix("tradfri/hallway {") }
        try await bridge.waitForLine(containing: "mDNS (avahi-daemon) is not reachable", within: .seconds(5))
        let discover = try await lan.lab["bridge"].run(
            "tradfri-bridge", ["discover", "--timeout", "2"], within: .seconds(30),
            check: false)
        #expect(discover.status != 0 && discover.output.contains("is avahi-daemon running?"))
    }

    @Test func aBaseStationIsFoundByItsName() async throws {
        let lan = try await LAN(hosts: ["gateway", "broker", "bridge"])
        defer { lan.shutdown() }
        try await lan.startSimulator(on: "gateway")
        // Not advertised as a service: known only by its host name, like emonpi.local.
        try await lan.startBroker(advertised: false)
        #expect(try await lan.pair().status == 0)
        let watcher = try lan.subscribe("tradfri/#")
        let bridge = try await lan.startBridge(mqttExtra: "base_stations: [nowhere.local, broker.local]")
        try await watcher.waitForLine(within: .seconds(60), "state through the base station") {
            $0.hasPrefix("tradfri/hallway {")
        }
        try await bridge.waitForLine(containing: "base station broker.local resolved by mDNS", within: .seconds(5))
    }

    @Test func aBridgeBesideItsBrokerAdvertisesIt() async throws {
        let lan = try await LAN(hosts: ["gateway", "bridge", "device"])
        defer { lan.shutdown() }
        try await lan.startSimulator(on: "gateway")
        #expect(try await lan.pair().status == 0)
        let local = "\(lan.state)/local-mosquitto.conf"
        try "listener 1883 0.0.0.0\nallow_anonymous true\n".write(toFile: local, atomically: true, encoding: .utf8)
        let broker = try lan.lab["bridge"].spawn("mosquitto", ["-c", local])
        try await broker.waitForLine(within: .seconds(20), "the bridge host's mosquitto") { $0.contains("running") }
        let bridge = try await lan.startBridge(mqtt: "mqtt://localhost:1883", extra: "  advertise_broker: true")
        try await bridge.waitForLine(within: .seconds(60), "the broker advertisement") {
            $0.contains("_mqtt._tcp") && $0.contains("advertising")
        }
        // A device on the LAN finds the base station's broker and the bridge by service.
        let seen = try await lan.lab["device"].run("avahi-browse", ["-rpt", "_mqtt._tcp"], within: .seconds(30))
        #expect(
            seen.output.contains(#"MQTT\032broker\032on\032bridge"#) && seen.output.contains(lan.lab["bridge"].address),
            "\(seen.output)")
        let bridgeService = try await lan.lab["device"].run(
            "avahi-browse", ["-rpt", "_tradfri-bridge._tcp"], within: .seconds(30))
        #expect(
            bridgeService.output.contains("base_topic=tradfri")
                && bridgeService.output.contains("gateway=7e11515204400072"))
    }

    @Test func eachOfTwoPairedGatewaysIsFoundByItsOwnLocatorAfterBothMoved() async throws {
        let lan = try await LAN(hosts: ["kitchen", "cellar", "broker", "bridge"])
        defer { lan.shutdown() }
        try await lan.startSimulator(on: "kitchen", gatewayID: "00000000000000aa")
        try await lan.startSimulator(on: "cellar", gatewayID: "00000000000000bb")
        // The kitchen by its address (no mDNS name recorded: found later by its id); then
        // `auth --gateway auto` takes the one gateway on the LAN not paired yet.
        let kitchen = try await lan.pair(lan.lab["kitchen"].address, name: "kitchen")
        #expect(kitchen.status == 0, "\(kitchen.output)")
        let cellar = try await lan.pair()
        #expect(cellar.status == 0, "\(cellar.output)")
        #expect(
            cellar.output.contains("Found 2 gateways; gw-0000000000bb is the one not paired yet."), "\(cellar.output)")
        #expect(
            cellar.output.contains("now holds 2 gateways: kitchen (00000000000000aa), gw_0000bb (00000000000000bb)"))

        // DHCP gives both new addresses: what was stored at pairing is stale now.
        for (host, address) in [("kitchen", "10.77.0.77"), ("cellar", "10.77.0.88")] {
            await lan.stopSimulator(on: host)
            try await lan.lab[host].setAddress(address)
        }
        try await lan.startSimulator(on: "kitchen", gatewayID: "00000000000000aa")
        try await lan.startSimulator(on: "cellar", gatewayID: "00000000000000bb")

        // gateways: auto: one gateway per pairing; `devices` locates each as the bridge does.
        let config = "\(lan.state)/auto.yaml"
        try """
        gateways:
          auto: true
          credentials: \(lan.state)/credentials.json
        discovery:
          timeout: 3
        """.write(toFile: config, atomically: true, encoding: .utf8)
        for (name, id, how) in [
            ("kitchen", "00000000000000aa", "identified it by its id"),
            ("gw_0000bb", "00000000000000bb", "found the gateway by mDNS"),
        ] {
            let listing = try await lan.lab["bridge"].run(
                "tradfri-bridge", ["devices", "--config", config, "--gateway-name", name, "--timeout", "5"],
                within: .seconds(60), check: false)
            #expect(listing.status == 0, "\(listing.output)")
            #expect(listing.output.contains("Gateway \(id), firmware"), "\(name): \(listing.output)")
            #expect(listing.output.contains(how), "\(name): \(listing.output)")
        }

        // The bridge runs the entry it is given, among two paired gateways and two on the LAN.
        try await lan.startBroker()
        let watcher = try lan.subscribe("tradfri/bridge/info")
        let bridgeConfig = "\(lan.state)/kitchen.yaml"
        try """
        gateways:
          - name: kitchen
            credentials: \(lan.state)/credentials.json
            keepalive: 1
            request_timeout: 2
        discovery:
          timeout: 3
        """.write(toFile: bridgeConfig, atomically: true, encoding: .utf8)
        _ = try lan.lab["bridge"].spawn("tradfri-bridge", ["run", "--config", bridgeConfig])
        try await watcher.waitForLine(within: .seconds(60), "the kitchen gateway connected") {
            $0.contains(#""connected":true"#) && $0.contains("00000000000000aa") && $0.contains("10.77.0.77")
        }
    }
}
