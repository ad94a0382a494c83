import MDNS
import TestSupport
import Testing

/// Host-name resolution through avahi, as for an emonPi broker configured as `emonpi.local`.
@Suite(.needsNetworkLab, .timeLimit(.minutes(2)))
struct MDNSHostResolutionTests {
    @Test func resolvesAnotherHostsDotLocalName() async throws {
        try await NetworkLab.with(hosts: ["emonpi", "bridge"]) { lab in
            let client = try lab["bridge"].mdnsClient()
            let addresses = try await client.resolveHost("emonpi.local", timeout: .seconds(20))
            #expect(addresses.first == lab["emonpi"].address)
            #expect(addresses.contains { $0.hasPrefix("fe80:") })

            let ipv4 = try await client.resolveHost("emonpi.local.", protocol: .ipv4, timeout: .seconds(20))
            #expect(ipv4 == [lab["emonpi"].address])
            #expect(client.hostName == "bridge.local")
        }
    }

    @Test func aNameNobodyHasIsNotFoundWhenTheTimeoutEnds() async throws {
        try await NetworkLab.with(hosts: ["bridge"]) { lab in
            let client = try lab["bridge"].mdnsClient()
            let clock = ContinuousClock()
            let start = clock.now
            await #expect(throws: MDNSError.notFound("no answer for host 'emonpi.local'")) {
                try await client.resolveHost("emonpi.local", timeout: .seconds(3))
            }
            #expect(clock.now - start < .seconds(10))
        }
    }
}
