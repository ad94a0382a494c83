import MDNS
import TestSupport
import Testing

/// Advertising as the bridge does it (its broker for EmonESP-style devices, the simulator's
/// gateway): what other hosts on the LAN see, checked with avahi's own tools.
@Suite(.needsNetworkLab, .timeLimit(.minutes(2)))
struct MDNSPublisherTests {
    @Test func otherHostsSeeTheBrokerAndItsUpdatedTXT() async throws {
        try await NetworkLab.with(hosts: ["bridge", "emonesp"]) { lab in
            let client = try lab["bridge"].mdnsClient()
            let publisher = try client.publish(
                MDNSAdvertisement(
                    name: "tradfri-bridge", type: "_secure-mqtt._tcp", port: 8883,
                    txt: ["api_proto": "secure-mqtt", "api_auth": "true"]))
            #expect(try await publisher.registeredName(within: .seconds(30)) == "tradfri-bridge")
            #expect(publisher.isRegistered)

            // avahi-browse on another host resolves it: host, address, port, TXT.
            let watcher = try lab["emonesp"].spawn("avahi-browse", ["-rp", "_secure-mqtt._tcp"])
            let line = try await watcher.waitForLine(within: .seconds(30), "the broker, resolved") {
                $0.hasPrefix("=;") && $0.contains(";IPv4;tradfri-bridge;")
            }
            let fields = try #require(resolvedLines(line).first)
            #expect(fields[6] == "bridge.local")
            #expect(fields[7] == lab["bridge"].address)
            #expect(fields[8] == "8883")
            #expect(fields[9].contains("\"api_proto=secure-mqtt\"") && fields[9].contains("\"api_auth=true\""))

            // A TXT update reaches the other host: our browser there reports it...
            let remote = try lab["emonesp"].mdnsClient()
            let browser = try remote.browser(type: "_secure-mqtt._tcp")
            let events = EventRecorder(browser.events)
            try await events.first(within: .seconds(30), "the broker", found("tradfri-bridge"))
            try publisher.update(txt: ["api_proto": "secure-mqtt", "api_auth": "true", "fp": "sha256:ab12"])
            let changed = try await events.first(
                within: .seconds(30), "the new TXT", updated("tradfri-bridge") { $0.txt["fp"] == "sha256:ab12" })
            #expect(changed.txt == ["api_proto": "secure-mqtt", "api_auth": "true", "fp": "sha256:ab12"])

            // ...and so does avahi-browse, once the host's cache has dropped the old record.
            try await withDeadline(.seconds(30), "avahi-browse to show the new TXT") {
                while true {
                    let (_, output) = try await lab["emonesp"].run(
                        "avahi-browse", ["-rpt", "_secure-mqtt._tcp"], within: .seconds(20))
                    if resolvedLines(output).contains(where: {
                        $0[3] == "tradfri-bridge" && $0[9].contains("fp=sha256:ab12")
                    }) {
                        return
                    }
                }
            }

            // Withdrawing says goodbye: the other host sees it leave.
            publisher.withdraw()
            try await events.first(within: .seconds(30), "the broker to leave", removed("tradfri-bridge"))
        }
    }

    @Test func takesAnAlternativeNameWhenAnotherHostHasIt() async throws {
        try await NetworkLab.with(hosts: ["gateway", "bridge"]) { lab in
            _ = try await lab["gateway"].publish(name: "TRADFRI gateway", type: "_coap._udp", port: 5684)

            let client = try lab["bridge"].mdnsClient()
            let publisher = try client.publish(
                MDNSAdvertisement(name: "TRADFRI gateway", type: "_coap._udp", port: 5684))
            let events = EventRecorder(publisher.events)
            let name = try await publisher.registeredName(within: .seconds(30))
            #expect(name == "TRADFRI gateway #2")
            #expect(publisher.name == name)
            try await events.firstEvent(within: .seconds(5), "the rename") {
                $0 == .renamed(from: "TRADFRI gateway", to: "TRADFRI gateway #2")
            }
            try await events.firstEvent(within: .seconds(5), "the registration") { $0 == .registered(name: name) }

            // Both are on the network, each once, under its own name.
            let all = try await lab["gateway"].mdnsClient().browse(type: "_coap._udp", timeout: .seconds(20))
            #expect(all.map(\.name) == ["TRADFRI gateway", "TRADFRI gateway #2"])
            #expect(all.map(\.hostName) == ["gateway.local", "bridge.local"])
        }
    }

    @Test func takesAnAlternativeNameWhenThisHostHasIt() async throws {
        try await NetworkLab.with(hosts: ["bridge"]) { lab in
            let client = try lab["bridge"].mdnsClient()
            let first = try client.publish(MDNSAdvertisement(name: "tradfri-bridge", type: "_mqtt._tcp", port: 1883))
            let firstName = try await first.registeredName(within: .seconds(30))
            #expect(firstName == "tradfri-bridge")
            // A second broker on this host (another port): avahi refuses the name at once.
            let second = try client.publish(MDNSAdvertisement(name: "tradfri-bridge", type: "_mqtt._tcp", port: 1884))
            let secondName = try await second.registeredName(within: .seconds(30))
            #expect(secondName == "tradfri-bridge #2")

            let services = try await client.browse(type: "_mqtt._tcp", timeout: .seconds(20))
            #expect(services.map(\.name) == ["tradfri-bridge", "tradfri-bridge #2"])
            #expect(services.map(\.port) == [1883, 1884])
        }
    }

    @Test func publishesAHostNameWithItsOwnAddress() async throws {
        // What the gateway simulator needs: the gateway's SRV target, TRADFRI-Gateway-<mac>.local.
        try await NetworkLab.with(hosts: ["simulator", "bridge"]) { lab in
            let client = try lab["simulator"].mdnsClient()
            let publisher = try client.publish(
                MDNSAdvertisement(
                    name: "gw-a0cc2b6f6b31", type: "_coap._udp", port: 5684, txt: ["version": "1.3.14"],
                    hostName: "TRADFRI-Gateway-a0cc2b6f6b31.local", addresses: [lab["simulator"].address]))
            _ = try await publisher.registeredName(within: .seconds(30))

            let services = try await lab["bridge"].mdnsClient().browse(type: "_coap._udp", timeout: .seconds(20))
            let gateway = try #require(services.first)
            #expect(gateway.hostName == "TRADFRI-Gateway-a0cc2b6f6b31.local")
            #expect(gateway.addresses == [lab["simulator"].address])
            #expect(gateway.txt["version"] == "1.3.14")
        }
    }

    @Test func rejectsAMalformedServiceType() async throws {
        try await NetworkLab.with(hosts: ["bridge"]) { lab in
            let client = try lab["bridge"].mdnsClient()
            #expect {
                try client.publish(MDNSAdvertisement(name: "x", type: "mqtt", port: 1883))
            } throws: { error in
                guard case .invalidArgument(let what) = error as? MDNSError else { return false }
                return what.contains("Invalid service type")
            }
        }
    }
}
