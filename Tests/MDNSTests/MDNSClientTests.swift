import MDNS
import TestSupport
import Testing

/// The daemon is missing, or goes away: callers get a clear error quickly and can retry.
@Suite(.timeLimit(.minutes(2)))
struct MDNSClientTests {
    @Test func noSystemBusIsAClearErrorAtOnce() throws {
        let clock = ContinuousClock()
        let start = clock.now
        let error = #expect(throws: MDNSError.self) {
            try InProcessSystemBus.withUnreachableBus { () throws(MDNSError) in try MDNSClient() }
        }
        #expect(clock.now - start < .seconds(2))
        guard case .daemonUnavailable = error else {
            Issue.record("expected daemonUnavailable, got \(String(describing: error))")
            return
        }
        #expect(error?.description.contains("is avahi-daemon running?") == true)
    }

    @Test(.needsNetworkLab) func aSystemBusWithoutAvahiIsAClearErrorAtOnce() async throws {
        try await NetworkLab.with(hosts: ["bridge"], avahi: false) { lab in
            let clock = ContinuousClock()
            let start = clock.now
            #expect(throws: MDNSError.daemonUnavailable("Daemon not running")) {
                try lab["bridge"].mdnsClient()
            }
            #expect(clock.now - start < .seconds(2))
        }
    }

    @Test(.needsNetworkLab) func theDaemonGoingAwayEndsEverythingAndANewClientWorksAfterItsBack() async throws {
        try await NetworkLab.with(hosts: ["gateway", "bridge"]) { lab in
            _ = try await lab["gateway"].publish(name: "gw-a0cc2b6f6b31", type: "_coap._udp", port: 5684)
            let bridge = lab["bridge"]
            let client = try bridge.mdnsClient()
            #expect(client.state == .running)
            let states = EventRecorder(client.stateUpdates)
            let browser = try client.browser(type: "_coap._udp")
            let events = EventRecorder(browser.events)
            try await events.first(within: .seconds(30), "the gateway", found("gw-a0cc2b6f6b31"))
            let publisher = try client.publish(
                MDNSAdvertisement(name: "tradfri-bridge", type: "_mqtt._tcp", port: 1883))
            let published = EventRecorder(publisher.events)
            _ = try await publisher.registeredName(within: .seconds(30))

            await bridge.stopAvahi()

            try await states.firstEvent(within: .seconds(10), "the client to fail") { $0 == .failed(.disconnected) }
            try await events.firstEvent(within: .seconds(10), "the browser to fail") { $0 == .failure(.disconnected) }
            try await events.waitForEnd(within: .seconds(10))
            try await published.firstEvent(within: .seconds(10), "the publisher to fail") {
                $0 == .failure(.disconnected)
            }
            try await published.waitForEnd(within: .seconds(10))
            #expect(client.state == .failed(.disconnected))
            #expect(throws: MDNSError.disconnected) { try client.browser(type: "_coap._udp") }
            await #expect(throws: MDNSError.disconnected) {
                try await publisher.registeredName(within: .seconds(1))
            }

            // Retrying: while the daemon is down a new client fails at once; once it is back, works.
            #expect(throws: MDNSError.daemonUnavailable("Daemon not running")) { try bridge.mdnsClient() }
            try await bridge.startAvahi()
            let again = try bridge.mdnsClient()
            let services = try await again.browse(type: "_coap._udp", timeout: .seconds(20))
            #expect(services.map(\.name) == ["gw-a0cc2b6f6b31"])
        }
    }

    @Test(.needsNetworkLab) func closingTheClientEndsItsBrowsersAndWithdrawsItsServices() async throws {
        try await NetworkLab.with(hosts: ["bridge", "watcher"]) { lab in
            let client = try lab["bridge"].mdnsClient()
            let publisher = try client.publish(
                MDNSAdvertisement(name: "tradfri-bridge", type: "_mqtt._tcp", port: 1883))
            _ = try await publisher.registeredName(within: .seconds(30))
            let browser = try client.browser(type: "_mqtt._tcp")
            let events = EventRecorder(browser.events)

            let watcher = try lab["watcher"].mdnsClient().browser(type: "_mqtt._tcp")
            let seen = EventRecorder(watcher.events)
            try await seen.first(within: .seconds(30), "the broker", found("tradfri-bridge"))

            client.close()
            try await events.waitForEnd(within: .seconds(5))
            #expect(!events.events.contains { if case .failure = $0 { true } else { false } })
            #expect(client.state == .closed)
            await #expect(throws: MDNSError.closed) { try await publisher.registeredName() }
            try await seen.first(within: .seconds(30), "the broker to leave", removed("tradfri-bridge"))
        }
    }
}
