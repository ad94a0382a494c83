import CoAP
import GatewaySimulator
import HubModel
import Synchronization
import TestSupport
import Testing
import TradfriModel

/// What one lost datagram costs between our CoAP client and a gateway (the simulator, libcoap's
/// server, behind its relay that loses exactly the datagrams a test names).
@Suite struct LostDatagramTests {
    /// libcoap 4.3.1 drops a repeated confirmable notification without acknowledging it again
    /// (libcoap issue 1306). Here the acknowledgement of a notification and its second copy are
    /// lost: the server repeats the notification, the client must acknowledge the repeat, or the
    /// server holds every later notification for ~45 s and then ends the observation.
    @Test func aRepeatedNotificationIsAcknowledgedAgainAndLaterOnesFlow() async throws {
        let harness = try await SimulatorHarness { $0.relay = true }
        let client = try await harness.pairedClient()
        let observation = try await client.observe("15001/65537")
        try await harness.simulator.dropNext(toGateway: 2, fromGateway: 0)
        _ = await harness.simulator.execute(#"change 65537 {"3311":[{"5851":10}]}"#)
        _ = try await nextNotification(observation) { $0["3311"]?[0]?["5851"] == 10 }
        _ = await harness.simulator.execute(#"change 65537 {"3311":[{"5851":20}]}"#)
        _ = try await nextNotification(observation, within: .seconds(15)) { $0["3311"]?[0]?["5851"] == 20 }
        #expect(await client.duplicatesAcknowledged >= 1)
        await client.close()
        await harness.shutdown()
    }

    /// When only the acknowledgement is lost, the client's second acknowledgement (sent when
    /// nothing newer follows within the retransmission timeout) releases the server before it
    /// ever repeats the notification.
    @Test func aLostAcknowledgementIsRepeatedBeforeTheServerRetransmits() async throws {
        let harness = try await SimulatorHarness { $0.relay = true }
        let client = try await harness.pairedClient()
        let observation = try await client.observe("15001/65537")
        try await harness.simulator.dropNext(toGateway: 1, fromGateway: 0)
        _ = await harness.simulator.execute(#"change 65537 {"3311":[{"5851":30}]}"#)
        _ = try await nextNotification(observation) { $0["3311"]?[0]?["5851"] == 30 }
        _ = await harness.simulator.execute(#"change 65537 {"3311":[{"5851":40}]}"#)
        _ = try await nextNotification(observation) { $0["3311"]?[0]?["5851"] == 40 }
        #expect(await client.acknowledgementsRepeated >= 1)
        #expect(await client.duplicatesAcknowledged == 0, "the server never had to repeat the notification")
        await client.close()
        await harness.shutdown()
    }

    /// A read whose answer is lost is sent again with the same message ID (a retransmission,
    /// which a server recognises), after the learnt timeout, and completes; one whose request is
    /// lost likewise. A command is retransmitted by libcoap alone, also with its message ID.
    @Test func aLostRequestOrAnswerCostsOneRetransmissionWithTheSameMessageID() async throws {
        let harness = try await SimulatorHarness { $0.relay = true }
        let received = Mutex<[(path: String, id: Int32)]>([])
        await record(harness.simulator) { request in
            received.withLock { $0.append((request.path, request.messageID)) }
        }
        let client = try await harness.pairedClient()
        #expect(try await client.get("15001/65538").code == .content)

        try await harness.simulator.dropNext(toGateway: 0, fromGateway: 1)
        #expect(try await client.get("15001/65539").code == .content)
        let answerLost = received.withLock { $0.filter { $0.path == "15001/65539" } }
        #expect(answerLost.count == 2 && answerLost[0].id == answerLost[1].id, "\(answerLost)")

        try await harness.simulator.dropNext(toGateway: 1, fromGateway: 0)
        #expect(try await client.get("15001/65540").code == .content)
        #expect(received.withLock { $0.filter { $0.path == "15001/65540" }.count } >= 1)
        #expect(await client.retransmissions == 2)

        try await harness.simulator.dropNext(toGateway: 1, fromGateway: 0)
        #expect(try await client.put("15001/65537", json: #"{"3311":[{"5851":12}]}"#).code == .changed)
        #expect(await client.retransmissions == 2, "libcoap retransmitted the PUT, not the client")
        let put = received.withLock { $0.filter { $0.path == "15001/65537" } }
        #expect(put.count == 1, "\(put)")
        await client.close()
        await harness.shutdown()
    }

    /// A gateway that answers nothing at all any more (power cut, new process that lost the DTLS
    /// session) is given up `silenceLimit` after a request goes unanswered.
    @Test func aSilentGatewayEndsTheSession() async throws {
        let harness = try await SimulatorHarness { $0.relay = true }
        let paired = try await harness.pairedClient(identity: "quiet")
        await paired.close()
        let key = await harness.simulator.identityKeyForTests("quiet") ?? ""
        let port = await harness.port
        let client = CoAPClient(
            .init(host: "127.0.0.1", port: port, identity: "quiet", key: key, silenceLimit: .seconds(1)))
        try await client.connect()
        try await harness.simulator.dropNext(toGateway: 1000, fromGateway: 0)
        let request = Task { @CoAPActor in try await client.get("15001/65538") }
        let ended = try await withDeadline(.seconds(10), "the session to end") { () -> CoAPError? in
            for await event in client.events {
                if case .closed(let error) = event { return error }
            }
            return nil
        }
        #expect(ended.map { "\($0)" }?.contains("no answer") == true)
        await #expect(throws: CoAPError.self) { try await request.value }
        await harness.shutdown()
    }
}

/// Calls `hook` with every request the simulator handles.
@CoAPActor
private func record(_ simulator: GatewaySimulator, _ hook: @escaping @Sendable (CoAPRequest) -> Void) {
    simulator.onRequest = { hook($0) }
}
