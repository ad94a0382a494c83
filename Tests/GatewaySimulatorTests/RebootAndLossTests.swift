import CoAP
import GatewaySimulator
import HubModel
import TestSupport
import Testing
import TradfriModel

@Suite struct SimulatorRebootAndLossTests {
    @Test func rebootAnnouncesItselfThenDropsSessionsAndComesBack() async throws {
        let harness = try await SimulatorHarness()
        let client = try await harness.pairedClient(identity: "survivor")
        let notifications = try await client.observe(GatewayPath.notifications)
        let device = try await client.observe("15001/65538")
        #expect(try await client.post(GatewayPath.reboot, json: "").code == .created)
        let announcement = try await nextNotification(notifications)
        #expect(announcement[0]?["9015"] == 1003)
        // The old session is dead: pings go unanswered, observations never deliver again.
        try await withDeadline(.seconds(10), "the session to be found dead") {
            while (try? await client.ping(timeout: .milliseconds(500))) != nil {}
        }
        await client.close()
        _ = device
        // Service comes back on the same port, and the identity still works.
        let key = await harness.simulator.identityKeyForTests("survivor")
        let again = try await withDeadline(.seconds(10), "the gateway to serve again") {
            while true {
                let candidate = await harness.client(identity: "survivor", key: key ?? "")
                if (try? await candidate.connect()) != nil { return candidate }
                await candidate.close()
            }
        }
        #expect(try await again.get("15001/65538").code == .content)
        await again.close()
        await harness.shutdown()
    }

    @Test func requestsStillCompleteOverALossyLink() async throws {
        let harness = try await SimulatorHarness {
            $0.dropRate = 0.15
            $0.dropSeed = 7
        }
        let client = try await withDeadline(.seconds(60), "pairing over a lossy link") {
            try await harness.pairedClient(timeout: .seconds(30))
        }
        for _ in 0..<5 {
            #expect(try await client.request(.get, GatewayPath.devices, timeout: .seconds(60)).code == .content)
        }
        await client.close()
        await harness.shutdown()
    }
}
