import MDNS
import TestSupport
import Testing

/// Discovery as the bridge does it: our browser on the "bridge" host finds services that other
/// lab hosts advertise with avahi's own tools.
@Suite(.needsNetworkLab, .timeLimit(.minutes(2)))
struct MDNSBrowserTests {
    @Test func findsTheGatewayWithAddressPortAndFirmwareVersion() async throws {
        try await NetworkLab.with(hosts: ["gateway", "bridge"]) { lab in
            let gateway = lab["gateway"]
            _ = try await gateway.publish(
                name: "gw-a0cc2b6f6b31", type: "_coap._udp", port: 5684, txt: ["version=1.3.14"])

            let client = try lab["bridge"].mdnsClient()
            let browser = try client.browser(type: "_coap._udp")
            let events = EventRecorder(browser.events)
            let service = try await events.first(within: .seconds(30), "the gateway", found("gw-a0cc2b6f6b31"))

            #expect(service.type == "_coap._udp")
            #expect(service.domain == "local")
            #expect(service.hostName == "gateway.local")
            #expect(service.port == 5684)
            #expect(service.txt == ["version": "1.3.14"])
            // IPv4 first; the IPv6 link-local address is kept too, with its scope.
            #expect(service.addresses.first == gateway.address)
            #expect(service.addresses.dropFirst().contains { $0.hasPrefix("fe80:") && $0.contains("%") })
            #expect(browser.services == [service])
        }
    }

    @Test func reportsTwoGatewaysAndTheOneThatLeaves() async throws {
        try await NetworkLab.with(hosts: ["kitchen", "garage", "bridge"]) { lab in
            let kitchen = try await lab["kitchen"].publish(
                name: "gw-000000000001", type: "_coap._udp", port: 5684, txt: ["version=1.3.14"])
            _ = try await lab["garage"].publish(
                name: "gw-000000000002", type: "_coap._udp", port: 5684, txt: ["version=1.17.44"])

            let client = try lab["bridge"].mdnsClient()

            // The one-shot helper returns both, sorted by name.
            let all = try await client.browse(type: "_coap._udp", timeout: .seconds(20))
            #expect(all.map(\.name) == ["gw-000000000001", "gw-000000000002"])
            #expect(all.map { $0.addresses.first } == [lab["kitchen"].address, lab["garage"].address])
            #expect(all.map { $0.txt["version"] } == ["1.3.14", "1.17.44"])

            let browser = try client.browser(type: "_coap._udp")
            let events = EventRecorder(browser.events)
            try await events.first(within: .seconds(30), "the kitchen gateway", found("gw-000000000001"))
            try await events.first(within: .seconds(30), "the garage gateway", found("gw-000000000002"))
            try await events.firstEvent(within: .seconds(30), "all for now") { $0 == .allForNow }

            // avahi-publish withdraws its entry group when it exits: goodbye packets.
            await kitchen.stop()
            let gone = try await events.first(
                within: .seconds(30), "the kitchen gateway to leave", removed("gw-000000000001"))
            #expect(gone.addresses.first == lab["kitchen"].address)
            #expect(browser.services.map(\.name) == ["gw-000000000002"])
            #expect(
                !events.events.contains { if case .removed(let s) = $0 { s.name == "gw-000000000002" } else { false } })
        }
    }

    @Test func followsTheGatewayToANewAddress() async throws {
        try await NetworkLab.with(hosts: ["gateway", "bridge"]) { lab in
            let gateway = lab["gateway"]
            _ = try await gateway.publish(
                name: "gw-a0cc2b6f6b31", type: "_coap._udp", port: 5684, txt: ["version=1.3.14"])

            let client = try lab["bridge"].mdnsClient()
            let browser = try client.browser(type: "_coap._udp", protocol: .ipv4)
            let events = EventRecorder(browser.events)
            let first = try await events.first(within: .seconds(30), "the gateway", found("gw-a0cc2b6f6b31"))
            #expect(first.addresses == ["10.77.0.10"])

            // A gateway that booted without DHCP also has a 169.254 address: it comes second.
            try await gateway.addAddress("169.254.7.7", prefixLength: 16)
            let both = try await events.first(
                within: .seconds(30), "the link-local address",
                updated("gw-a0cc2b6f6b31") { $0.addresses.contains("169.254.7.7") })
            #expect(both.addresses == ["10.77.0.10", "169.254.7.7"])

            // A new DHCP lease: the old address goes, the new one is reported first.
            try await gateway.setAddress("10.77.0.99")
            let moved = try await events.first(
                within: .seconds(30), "the new address",
                updated("gw-a0cc2b6f6b31") {
                    $0.addresses.first == "10.77.0.99" && !$0.addresses.contains("10.77.0.10")
                })
            #expect(moved.addresses == ["10.77.0.99", "169.254.7.7"])
            #expect(moved.port == 5684)
            // Still the same instance: never removed on the way.
            #expect(!events.events.contains { if case .removed = $0 { true } else { false } })
        }
    }

    @Test func forgetsTheGatewayWhenOffTheNetworkAndFindsItAgain() async throws {
        try await NetworkLab.with(hosts: ["gateway", "bridge"]) { lab in
            _ = try await lab["gateway"].publish(name: "gw-a0cc2b6f6b31", type: "_coap._udp", port: 5684)
            let bridge = lab["bridge"]
            let client = try bridge.mdnsClient()
            let browser = try client.browser(type: "_coap._udp")
            let events = EventRecorder(browser.events)
            try await events.first(within: .seconds(30), "the gateway", found("gw-a0cc2b6f6b31"))

            // The bridge's own link drops: avahi forgets what it learnt on it.
            try await bridge.setLink(up: false)
            try await events.first(within: .seconds(30), "the gateway to be forgotten", removed("gw-a0cc2b6f6b31"))
            #expect(browser.services.isEmpty)

            // The link returns: avahi asks again and the gateway answers.
            let mark = events.count
            try await bridge.setLink(up: true)
            let again = try await events.first(
                within: .seconds(30), "the gateway to be found again", from: mark, found("gw-a0cc2b6f6b31"))
            #expect(again.addresses.first == lab["gateway"].address)
        }
    }

    @Test func reportsAnInstanceWhoseHostNeverAnswers() async throws {
        try await NetworkLab.with(hosts: ["gateway", "bridge"]) { lab in
            // SRV points at a host name nobody publishes an address for.
            _ = try await lab["gateway"].publish(
                name: "gw-broken", type: "_coap._udp", port: 5684, extra: ["-H", "nobody.local"])
            _ = try await lab["gateway"].publish(name: "gw-fine", type: "_coap._udp", port: 5684)
            let client = try lab["bridge"].mdnsClient()
            let browser = try client.browser(type: "_coap._udp")
            let events = EventRecorder(browser.events)
            try await events.first(within: .seconds(30), "the working gateway", found("gw-fine"))
            let failure = try await events.first(within: .seconds(30), "the broken one to fail") {
                event -> MDNSError? in
                if case .resolveFailed("gw-broken", let error) = event { return error }
                return nil
            }
            #expect(failure == .notFound("resolving 'gw-broken': Timeout reached"))
            // Not terminal, and the broken instance is never reported as found.
            #expect(!events.isFinished)
            #expect(browser.services.map(\.name) == ["gw-fine"])
        }
    }
}
