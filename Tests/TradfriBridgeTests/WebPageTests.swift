import Foundation
import HubModel
import TestSupport
import Testing
import TradfriModel

@testable import TradfriBridge

/// The web page through the real bridge binary, as a browser's requests reach it (curl): who may
/// use it, what it answers, what it does with commands. The real browser is in `WebBrowserTests`.
@Suite(.serialized, .timeLimit(.minutes(5)))
struct WebPageTests {
    /// Reads a light from the simulator with coap-client-openssl (as the IKEA app would) until
    /// `condition` holds.
    static func gateway(
        _ harness: BridgeHarness, light id: Int, within limit: Duration = .seconds(10),
        until condition: @escaping @Sendable (LightState) -> Bool
    ) async throws {
        let deadline = ContinuousClock.now + limit
        var last: LightState?
        while ContinuousClock.now < deadline {
            last = try await harness.device(id).light
            if let last, condition(last) { return }
        }
        Issue.record("the simulator's light \(id) never got there; last: \(String(describing: last))")
    }

    @Test func untilAPasswordIsSetThePageOnlySaysHowToSetItThenLogInWorksWithoutARestart() async throws {
        let web = try await WebHarness(setPassword: false)
        let client = web.client()
        let session = try await client.get("/api/session")
        #expect(session.json["state"] == "setup", "\(session)")
        #expect(session.json["command"]?.stringValue?.contains("tradfri-bridge web-password") == true)
        #expect(session.json["login_token"] == nil)
        #expect(try await client.get("/api/home").status == 401)
        let refused = try await client.login()
        #expect(refused.status == 403 || refused.status == 409, "\(refused)")

        let short = try await web.setAdministratorPassword("short", check: false)
        #expect(short.status != 0 && short.output.contains("at least 10 characters"))
        try await web.setAdministratorPassword(WebHarness.password)
        let mode = try FileManager.default.attributesOfItem(atPath: web.passwordFile)[.posixPermissions] as? Int
        #expect(mode == 0o600)
        #expect(try await client.get("/api/session").json["state"] == "login")
        let loggedIn = try await client.login()
        #expect(loggedIn.status == 200 && loggedIn.json["user"] == "admin", "\(loggedIn)")
        #expect(try await client.get("/api/home").json["gateways"]?.arrayValue?.count == 1)
        await web.shutdown()
    }

    @Test func everyRouteRefusesWithoutASessionAndTheFilesHoldNoData() async throws {
        let web = try await WebHarness()
        let client = web.client()
        for route in WebServer.routes {
            let answer =
                route.method == .get
                ? try await client.get(route.path) : try await client.post(route.path, [:], token: "anything")
            #expect(answer.status == 401, "\(route.method) \(route.path): \(answer)")
            #expect(answer.json == ["error": "log in first"], "\(route.path) says nothing else")
        }
        // A forged or stale session cookie is no session.
        let forged = try await client.request("GET", "/api/home", headers: ["Cookie": "tradfri_session=forged"])
        #expect(forged.status == 401)
        #expect(try await client.get("/api/nothing").status == 404)
        // The page's files are the same for everyone and carry no data of the home.
        for file in ["/", "/app.js", "/style.css", "/favicon.svg"] {
            let answer = try await client.get(file)
            #expect(answer.status == 200, "\(file)")
            for data in ["Hallway", "7e11515204400072", "1.19.32"] { #expect(!answer.body.contains(data), "\(file)") }
        }
        await web.shutdown()
    }

    @Test func everyResponseCarriesTheSecurityHeadersAndTheSessionCookieIsStrict() async throws {
        let web = try await WebHarness()
        let client = web.client()
        for path in ["/", "/app.js", "/api/session", "/api/home", "/api/nothing"] {
            let headers = try await client.get(path).headers
            #expect(
                headers["content-security-policy"]
                    == "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                    + "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'", "\(path)")
            #expect(headers["x-content-type-options"] == "nosniff")
            #expect(headers["x-frame-options"] == "DENY")
            #expect(headers["referrer-policy"] == "no-referrer")
            #expect(headers["cache-control"] == "no-store")
        }
        let login = try await client.login()
        let cookie = try #require(
            login.headers["set-cookie"]?.split(separator: "\n").first { $0.hasPrefix("tradfri_session=") })
        #expect(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict") && cookie.contains("Path=/"))
        #expect(!cookie.contains("Secure"), "plain HTTP on loopback: a Secure cookie would never come back")
        await web.shutdown()
    }

    /// Off loopback the page is HTTPS only, with the bridge's certificate, and its cookie Secure.
    @Test func offLoopbackThePageIsServedOnlyOverHTTPS() async throws {
        let web = try await WebHarness(web: "  listen: 0.0.0.0:0\n")
        #expect(web.url.hasPrefix("https://"), "\(web.url)")
        let port = try #require(web.url.split(separator: ":").last?.split(separator: "/").first)
        let client = WebClient(url: "https://127.0.0.1:\(port)/", jar: web.directory.appendingPathComponent("jar").path)
        let login = try await client.login()
        #expect(login.status == 200, "\(login)")
        #expect(login.headers["set-cookie"]?.contains("Secure") == true)
        #expect(try await client.get("/api/home").status == 200)
        // Plain HTTP gets no page.
        let plain = try await runCommand(
            "curl", ["-s", "--max-time", "5", "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:\(port)/"],
            check: false)
        #expect(plain.output != "200", "plain HTTP answered: \(plain.output)")
        // The certificate is the bridge's own (the one the pairing endpoint uses), made once.
        let certificate = web.directory.appendingPathComponent("state/pairing-certificate.pem").path
        #expect(FileManager.default.fileExists(atPath: certificate))
        let served = try await runCommand(
            "sh",
            [
                "-c",
                "openssl s_client -connect 127.0.0.1:\(port) </dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256",
            ])
        let kept = try await runCommand("openssl", ["x509", "-in", certificate, "-noout", "-fingerprint", "-sha256"])
        #expect(served.output == kept.output && !kept.output.isEmpty)
        await web.shutdown()
    }

    /// A port someone else has: the page is off, said once, naming the key; the bridge bridges on.
    @Test func aTakenPortTurnsOnlyThePageOff() async throws {
        let harness = try await BridgeHarness()
        let taken = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(taken) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(taken, $0, length) }
        }
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(taken, $0, &length) }
        }
        #expect(listen(taken, 1) == 0)
        let port = UInt16(bigEndian: address.sin_port)
        try await harness.startBridge(extraConfiguration: "web:\n  listen: 127.0.0.1:\(port)\n")
        let bridge = try #require(harness.bridge)
        let line = try await bridge.waitForLine(containing: "the web page is off")
        #expect(line.contains("web.listen=127.0.0.1:\(port)") && line.contains("error"), "\(line)")
        let watcher = try await harness.subscribe(["tradfri/hallway"])
        try await harness.publish("tradfri/hallway/set", #"{"state":"ON","brightness":55}"#)
        try await message(on: "tradfri/hallway", from: watcher) { $0["brightness"] == 55 }
        await harness.shutdown()
    }

    @Test func aCrossSiteRequestChangesNothing() async throws {
        let web = try await WebHarness()
        let client = web.client()
        try await client.login()
        let before = try #require(try await web.bridge.device(65537).light)
        let command: JSON = ["target": "hallway", "command": ["state": .string(before.on ? "OFF" : "ON")]]
        // A form on another site posting with the session cookie (what a browser would send).
        let form = try await client.request(
            "POST", "/api/command", body: "target=hallway&command=ON",
            headers: ["Content-Type": "application/x-www-form-urlencoded", "Origin": "http://evil.example"])
        #expect(form.status == 403, "\(form)")
        let otherOrigin = try await client.request(
            "POST", "/api/command", body: command.description,
            headers: ["Content-Type": "application/json", "X-CSRF-Token": client.csrf, "Origin": "http://evil.example"])
        #expect(otherOrigin.status == 403, "\(otherOrigin)")
        let crossSite = try await client.request(
            "POST", "/api/command", body: command.description,
            headers: ["Content-Type": "application/json", "X-CSRF-Token": client.csrf, "Sec-Fetch-Site": "cross-site"])
        #expect(crossSite.status == 403, "\(crossSite)")
        let noToken = try await client.post("/api/command", command, token: "")
        #expect(noToken.status == 403 && noToken.body.contains("CSRF"), "\(noToken)")
        let wrongToken = try await client.post("/api/command", command, token: "guessed")
        #expect(wrongToken.status == 403)
        // Log-in, too, needs its token: another site cannot log the browser into its own account.
        let foreignLogin = try await web.client().post(
            "/api/login", ["user": "admin", "password": .string(WebHarness.password)], token: "")
        #expect(foreignLogin.status == 403)
        #expect(try await web.bridge.device(65537).light?.on == before.on, "the light was not switched")
        try await #require(web.bridge.bridge).waitForLine(containing: "refused a cross-site request")
        // The page's own request does it.
        #expect(try await client.post("/api/command", command).status == 202)
        try await Self.gateway(web.bridge, light: 65537) { $0.on != before.on }
        await web.shutdown()
    }

    @Test func wrongPasswordsAreRateLimitedPerClientAndAudited() async throws {
        let web = try await WebHarness()
        let client = web.client()
        for attempt in 1...5 {
            let wrong = try await client.login(password: "not the password \(attempt)")
            #expect(wrong.status == 401 && wrong.json["error"] == "wrong user name or password", "\(wrong)")
        }
        let limited = try await client.login()
        #expect(limited.status == 429, "even the right password waits: \(limited)")
        #expect(limited.headers["retry-after"].flatMap { Int($0) }.map { $0 > 0 && $0 <= 30 } == true)
        #expect(limited.json["error"]?.stringValue?.contains("too many attempts") == true)
        // Another client (another address of this host) is not held up.
        let other = web.client()
        other.interface = "127.0.0.2"
        #expect(try await other.login().status == 200)
        let audit = web.audit
        #expect(audit.components(separatedBy: "\"web_login_failed\"").count - 1 == 5, "\(audit)")
        #expect(audit.contains("\"web_login_refused\""))
        #expect(!audit.contains("not the password"), "no tried password in the audit log")
        #expect(!web.log.contains("not the password"))
        await web.shutdown()
    }

    @Test func anIdleSessionExpiresAndItsLiveStreamEnds() async throws {
        let web = try await WebHarness(web: "  session_timeout: 5\n")
        let client = web.client()
        try await client.login()
        #expect(try await client.get("/api/home").status == 200)
        let stream = try ChildProcess(
            "curl", ["-sN", "--max-time", "60", "-b", client.jar, web.url + "api/events"], name: "event stream")
        try await stream.waitForLine(containing: "event: home")
        let bridge = try #require(web.bridge.bridge)
        try await bridge.waitForLine(containing: "web page session expired", within: .seconds(15))
        #expect(try await stream.waitForExit(within: .seconds(5)) == 0, "the stream ended with the session")
        #expect(try await client.get("/api/home").status == 401)
        #expect(web.audit.contains("\"web_session_expired\""))
        // Log-out ends a session too.
        try await client.login()
        #expect(try await client.post("/api/logout", [:]).status == 200)
        #expect(try await client.get("/api/home").status == 401)
        #expect(web.audit.contains("\"web_logout\""))
        await web.shutdown()
    }

    @Test func commandsFromThePageTakeTheMQTTPathAndBadOnesSayWhy() async throws {
        let web = try await WebHarness()
        let client = web.client()
        try await client.login()
        let events = try await web.bridge.subscribe(["tradfri/bridge/event"])
        let accepted = try await client.post(
            "/api/command", ["target": "hallway", "command": ["state": "ON", "brightness": 77]])
        #expect(accepted.status == 202, "\(accepted)")
        try await Self.gateway(web.bridge, light: 65537) { $0.on && $0.brightness == 77 }
        // Bad input: a clear error, nothing sent, and the same command_error MQTT users see.
        let tooBright = try await client.post("/api/command", ["target": "hallway", "command": ["brightness": 300]])
        #expect(tooBright.status == 400 && tooBright.json["error"] == "brightness 300 is out of range (0…254)")
        let error = try await commandError(for: "tradfri/hallway/set", from: events)
        #expect(error == "brightness 300 is out of range (0…254)")
        let unknown = try await client.post("/api/command", ["target": "nothing", "command": "ON"])
        #expect(unknown.json["error"] == "no device or group named 'nothing'", "\(unknown)")
        let malformed = try await client.request(
            "POST", "/api/command", body: "{not json",
            headers: ["Content-Type": "application/json", "X-CSRF-Token": client.csrf])
        #expect(malformed.status == 400 && malformed.json["error"] == "the body must be a JSON object")
        #expect(try await web.bridge.device(65537).light?.brightness == 77, "nothing else happened")
        // A scene of a room, by its id, as the page's menu sends it.
        let home = try await client.get("/api/home").json
        let livingRoom = try #require(
            home["gateways"]?[0]?["groups"]?.arrayValue?.first { $0["target"] == "living_room" })
        let scene = try #require(livingRoom["controls"]?["scenes"]?[0]?["id"]?.stringValue)
        #expect(
            try await client.post("/api/command", ["target": "living_room", "command": ["scene": .string(scene)]])
                .status == 202)
        #expect(web.audit.contains("\"web_command\"") && web.audit.contains("\"by\":\"admin\""))
        // The health figures count the failed commands, as bridge/request/health_check does.
        #expect((try await client.get("/api/health").json["command_errors"]?.intValue ?? 0) >= 2)
        await web.shutdown()
    }

    @Test func theLiveStreamCarriesAChangeMadeAtTheGatewayWithoutAsking() async throws {
        let web = try await WebHarness()
        let client = web.client()
        try await client.login()
        let stream = try ChildProcess(
            "curl", ["-sN", "--max-time", "60", "-b", client.jar, web.url + "api/events"], name: "event stream")
        try await stream.waitForLine(containing: "event: home")
        try await stream.waitForLine { $0.hasPrefix("data: {\"gateways\"") }
        let mark = stream.lineCount
        // The IKEA app dims the hallway.
        _ = try await web.bridge.coap("put", "15001/65537", #"{"3311":[{"5850":1,"5851":42}]}"#)
        let line = try await stream.waitForLine(within: .seconds(5), "the change", after: mark) {
            $0.hasPrefix("data: {\"items\"") && $0.contains("\"key\":\"gateway/65537\"")
        }
        let item = try #require(
            try JSON(parsing: String(line.dropFirst(6)))["items"]?.arrayValue?.first { $0["key"] == "gateway/65537" })
        #expect(item["state"]?["brightness"] == 42 && item["state"]?["state"] == "ON", "\(item)")
        stream.signal(SIGTERM)
        await web.shutdown()
    }
}
