import CoAP
import TestSupport
import Testing

/// The CoAP layer end to end: our libcoap server and client over real DTLS-PSK on loopback.
@Suite struct CoAPClientServerTests {
    static let identity = "tester"
    static let key = "0123456789abcdef"

    @CoAPActor
    final class Fixture {
        let server: CoAPServer
        var value = "\"v0\""
        var puts: [String] = []

        init(extraIdentities: [String: String] = [:]) throws {
            var keys = extraIdentities
            keys[CoAPClientServerTests.identity] = CoAPClientServerTests.key
            let known = keys
            server = CoAPServer(host: "127.0.0.1", port: 0) { identity in known[identity].map { Array($0.utf8) } }
            server.addResource("thing") { [weak self] request in
                guard let self else { return CoAPServerResponse(code: .serviceUnavailable) }
                switch request.method {
                case .put:
                    self.puts.append(request.text)
                    self.value = request.text
                    return CoAPServerResponse(code: .changed)
                default:
                    return CoAPServerResponse(code: .content, json: self.value)
                }
            }
            server.addResource("big") { _ in
                CoAPServerResponse(code: .content, payload: (0..<5000).map { UInt8($0 % 251) })
            }
            try server.start()
        }

        func change(to value: String) {
            self.value = "\"\(value)\""
            server.notifyObservers("thing")
        }

        func client(
            identity: String = CoAPClientServerTests.identity, key: String = CoAPClientServerTests.key,
            handshakeTimeout: Duration = .seconds(5)
        ) -> CoAPClient {
            CoAPClient(
                .init(
                    host: "127.0.0.1", port: server.port, identity: identity, key: key,
                    handshakeTimeout: handshakeTimeout, requestTimeout: .seconds(5)))
        }
    }

    @Test func getAndPutOverDTLS() async throws {
        let fixture = try await Fixture()
        let client = await fixture.client()
        try await client.connect()
        let first = try await client.get("thing")
        #expect(first.code == .content)
        #expect(first.text == "\"v0\"")
        let changed = try await client.put("thing", json: "\"v1\"")
        #expect(changed.code == .changed)
        let reread = try await client.get("thing")
        #expect(reread.text == "\"v1\"", "\(reread)")
        #expect(await fixture.puts == ["\"v1\""])
        let missing = try await client.get("nothing/here")
        #expect(missing.code == .notFound)
        await client.close()
    }

    @Test func blockwiseBodyArrivesWhole() async throws {
        let fixture = try await Fixture()
        let client = await fixture.client()
        try await client.connect()
        let response = try await client.get("big")
        #expect(response.payload == (0..<5000).map { UInt8($0 % 251) })
        await client.close()
    }

    @Test func observeDeliversEveryChangeThenRemoval() async throws {
        let fixture = try await Fixture()
        let client = await fixture.client()
        try await client.connect()
        let observation = try await client.observe("thing")
        #expect(observation.initial.text == "\"v0\"")
        #expect(observation.initial.observe != nil)
        let seen = try await withDeadline(.seconds(10), "three notifications") {
            var seen: [String] = []
            await fixture.change(to: "a")
            for try await notification in observation.notifications {
                seen.append(notification.text)
                if seen.count == 3 { break }
                await fixture.change(to: ["b", "c"][seen.count - 1])
            }
            return seen
        }
        #expect(seen == ["\"a\"", "\"b\"", "\"c\""])
        await client.close()
    }

    @Test func removedResourceEndsTheObservationWith404() async throws {
        let fixture = try await Fixture()
        let client = await fixture.client()
        try await client.connect()
        let observation = try await client.observe("thing")
        await fixture.server.removeResource("thing")
        let codes = try await withDeadline(.seconds(5), "end of observation") {
            var codes: [CoAPCode] = []
            for try await notification in observation.notifications { codes.append(notification.code) }
            return codes
        }
        #expect(codes == [.notFound])
        #expect(try await client.get("thing").code == .notFound)
        await client.close()
    }

    /// A server that stops says nothing to its observers: a 4.04 would tell them the resource
    /// was deleted, when only the server went away.
    @Test func aStoppingServerDoesNotReportItsResourcesDeleted() async throws {
        let fixture = try await Fixture()
        let client = await fixture.client()
        try await client.connect()
        let observation = try await client.observe("thing")
        let notifications = EventRecorder(observation.notifications)
        #expect(observation.initial.code == .content)
        await fixture.server.stop()
        // The client notices the server is gone (a ping fails) and ends the observation; whatever
        // the server sent as it stopped arrived before that.
        await #expect(throws: CoAPError.self) { try await client.ping(timeout: .seconds(2)) }
        await client.close()
        try await notifications.waitForEnd(within: .seconds(5))
        #expect(!notifications.events.contains { $0.code == .notFound }, "\(notifications.events)")
    }

    @Test func pingIsAnsweredAndFailsOnceTheServerIsGone() async throws {
        let fixture = try await Fixture()
        let client = await fixture.client()
        try await client.connect()
        try await client.ping(timeout: .seconds(3))
        await fixture.server.stop()
        await #expect(throws: CoAPError.self) { try await client.ping(timeout: .seconds(2)) }
        await client.close()
    }

    @Test func unknownIdentityIsReportedAsSuch() async throws {
        let fixture = try await Fixture()
        let client = await fixture.client(identity: "stranger")
        await #expect(throws: CoAPError.unknownIdentity("stranger")) { try await client.connect() }
    }

    @Test func wrongKeyIsReportedAsRejectedKey() async throws {
        let fixture = try await Fixture()
        let client = await fixture.client(key: "not-the-right-key", handshakeTimeout: .seconds(3))
        do {
            try await client.connect()
            Issue.record("connected with a wrong key")
        } catch let error as CoAPError {
            guard case .keyRejected = error else {
                Issue.record("expected keyRejected, got \(error)")
                return
            }
        }
    }

    @Test func closedPortIsReportedAsUnreachable() async throws {
        let fixture = try await Fixture()
        let port = await fixture.server.port
        await fixture.server.stop()
        let client = CoAPClient(
            .init(
                host: "127.0.0.1", port: port, identity: "x", key: "y",
                handshakeTimeout: .seconds(3)))
        do {
            try await client.connect()
            Issue.record("connected to a closed port")
        } catch let error as CoAPError {
            switch error {
            case .unreachable, .noAnswer: break
            default: Issue.record("expected unreachable/noAnswer, got \(error)")
            }
        }
    }

    @Test func sessionEventsReportConnectAndClose() async throws {
        let fixture = try await Fixture()
        let client = await fixture.client()
        try await client.connect()
        await client.close()
        var events: [CoAPSessionEvent] = []
        for await event in client.events { events.append(event) }
        #expect(events == [.connected, .closed(nil)])
    }
}
