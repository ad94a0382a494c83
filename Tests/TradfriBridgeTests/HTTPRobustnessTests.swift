import Foundation
import HubModel
import TestSupport
import Testing
import TradfriModel

/// The bridge's HTTP(S) endpoints under abuse from the LAN (`Tests/Scripts/http_abuse.py`): slow
/// clients and malformed requests by the hundred and thousand, against the real binary, while
/// legitimate devices and browsers ask their questions.
///
/// Before the move to Hummingbird, 32 clients sending their request one byte at a time took all
/// 32 connection threads: 0 of 10 legitimate pairing requests were served, on the plain-HTTP and
/// the HTTPS endpoint alike.
@Suite(.serialized, .timeLimit(.minutes(5)))
struct HTTPRobustnessTests {
    enum Endpoint: String, CaseIterable, Sendable, CustomTestStringConvertible {
        case legacy = "EmonESP pairing, plain HTTP"
        case secure = "secure pairing, HTTPS"
        case web = "web page"
        var testDescription: String { rawValue }
    }

    /// The endpoint's URL and a legitimate request's body (nil: a GET).
    static func target(_ endpoint: Endpoint, _ web: WebHarness) -> (url: String, body: String?) {
        switch endpoint {
        case .legacy: ("http://127.0.0.1:\(web.legacyPort)/emoncms/device/auth/request.json", nil)
        case .secure:
            (
                "https://127.0.0.1:\(web.securePort)/pairing/v1/request",
                #"{"name":"Heat pump","secret":"k2Lw9vP0qZ4tX7bN1cR8mH3jF6dS5aYe"}"#
            )
        case .web: (web.url + "api/session", nil)
        }
    }

    static func abuse(_ arguments: [String], within limit: Duration = .seconds(60)) async throws -> JSON {
        let output = try await runCommand(
            "/usr/bin/python3", [PairingHarness.script("http_abuse.py")] + arguments, within: limit
        ).output
        let line = try #require(output.split(separator: "\n").last { $0.hasPrefix("{") }, "\(output)")
        return try JSON(parsing: String(line))
    }

    @Test(arguments: Endpoint.allCases)
    func hundredsOfSlowClientsAreTimedOutAndNeverStarveOthers(_ endpoint: Endpoint) async throws {
        let web = try await WebHarness(pairing: true)
        try await runCommand("tradfri-bridge", ["pair", "open", "--legacy", "--config", web.bridge.configFile])
        let (url, body) = Self.target(endpoint, web)
        var arguments = ["slow", url, "300"]
        if endpoint == .secure { arguments += ["--handshake", "150"] }
        if let body { arguments += ["--body", body] }
        let result = try await Self.abuse(arguments)
        #expect(result["connected"] == 300, "\(result)")
        // Every legitimate request is answered, at once.
        let statuses = result["legit"]?.arrayValue ?? []
        #expect(statuses.count == 10 && statuses.allSatisfy { $0.intValue != nil }, "\(result)")
        let slowest = (result["legit_seconds"]?.arrayValue ?? []).compactMap(\.doubleValue).max() ?? 99
        #expect(slowest < 2, "the slowest legitimate request took \(slowest) s: \(result)")
        // The slow ones are cut off after the 5 s a request may take.
        #expect((result["closed_by_server"]?.intValue ?? 0) >= 295, "\(result)")
        let median = result["closed_after_median"]?.doubleValue ?? 0
        #expect(median >= 4.5 && median < 8, "\(result)")
        // The rest of the bridge did not notice.
        let watcher = try await web.bridge.subscribe(["tradfri/hallway"])
        try await web.bridge.publish("tradfri/hallway/set", #"{"state":"ON","brightness":99}"#)
        try await message(on: "tradfri/hallway", from: watcher) { $0["brightness"] == 99 }
        await web.shutdown()
    }

    @Test func thousandsOfMalformedRequestsLeaveTheBridgeResponsiveAndThePendingListCapped() async throws {
        let web = try await WebHarness(pairing: true)
        try await runCommand("tradfri-bridge", ["pair", "open", "--legacy", "--config", web.bridge.configFile])
        for endpoint in Endpoint.allCases {
            let (url, body) = Self.target(endpoint, web)
            let result = try await Self.abuse(
                ["malformed", url, endpoint == .legacy ? "2000" : "1000"] + (body.map { ["--body", $0] } ?? []))
            let outcomes = result["outcomes"]?.objectValue ?? [:]
            #expect(outcomes["timeout"] == nil && outcomes["500"] == nil, "\(endpoint): \(result)")
            let statuses = result["legit"]?.arrayValue ?? []
            #expect(statuses.count == 10 && statuses.allSatisfy { $0.intValue != nil }, "\(endpoint): \(result)")
        }
        // Valid requests from many addresses on top: the pending list stays capped.
        _ = try await runCommand(
            "python3",
            [
                PairingHarness.script("flood.py"),
                "http://127.0.0.1:\(web.legacyPort)/emoncms/device/auth/request.json",
                "400", "20", "100",
            ], within: .seconds(120))
        let status = try await runCommand("tradfri-bridge", ["pair", "status", "--config", web.bridge.configFile])
        #expect(status.output.contains("Pending requests: 16"), "\(status.output)")
        let client = web.client()
        #expect(try await client.login().status == 200)
        #expect(try await client.get("/api/home").status == 200)
        let watcher = try await web.bridge.subscribe(["tradfri/hallway"])
        try await web.bridge.publish("tradfri/hallway/set", #"{"state":"ON","brightness":98}"#)
        try await message(on: "tradfri/hallway", from: watcher) { $0["brightness"] == 98 }
        await web.shutdown()
    }
}
