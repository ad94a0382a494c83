import Foundation
import HubModel
import TestSupport
import Testing
import TradfriModel

@testable import TradfriBridge

/// The web page in a real browser: Debian's Chromium, headless, driven by Selenium
/// (`Tests/Scripts/browser.py`), against the bridge binary, the gateway simulator and mosquitto.
/// What the simulator holds is checked with coap-client-openssl, what devices get with curl,
/// mosquitto_pub and the EmonESP-like script. Screenshots of every view are kept in
/// `.build/web-screenshots/` (test artifacts, not committed).
@Suite(.serialized, .timeLimit(.minutes(5)))
struct WebBrowserTests {
    static func card(_ target: String) -> String { ".card[data-target=\"\(target)\"]" }

    @Test func aNewUserSetsThePasswordLogsInAndWatchesAndSwitchesTheLightsLive() async throws {
        let web = try await WebHarness(setPassword: false)
        let browser = try await Browser()
        // Before a password exists the page only says how to set one.
        try await browser.open(web.url)
        try await browser.wait("#setup", text: "tradfri-bridge web-password")
        try await browser.waitHidden("#login")
        try await browser.waitHidden("#home")
        try await browser.screenshot("01-setup")
        #expect(try await !browser.source().contains("Hallway"))

        try await web.setAdministratorPassword(WebHarness.password)
        try await browser.open(web.url)
        try await browser.wait("#login")
        try await browser.screenshot("02-login")
        try await browser.type("#login-password", "not the password")
        try await browser.click("#login-submit")
        try await browser.wait("#login-error", text: "wrong user name or password")
        try await browser.type("#login-password", WebHarness.password)
        try await browser.click("#login-submit")

        // The demo home: the gateway with its state and firmware, rooms and devices.
        try await browser.wait(Self.card("hallway"), text: "Hallway")
        try await browser.wait(".gateway .pill", text: "online")
        try await browser.wait(".gateway-meta", text: "firmware 1.19.32")
        for name in ["Living room ceiling", "Reading lamp", "Bedroom blind", "Coffee maker", "Air purifier"] {
            try await browser.wait("#home", text: name)
        }
        _ = try await browser.eval("window.sameDocument = 'kept', true")

        // Switch the hallway from the page: the simulator follows.
        let before = try #require(try await web.bridge.device(65537).light)
        try await browser.click(Self.card("hallway") + " button.switch")
        try await WebPageTests.gateway(web.bridge, light: 65537) { $0.on != before.on }
        try await browser.wait(Self.card("hallway"), attribute: "data-state", value: before.on ? "OFF" : "ON")
        try await browser.run([
            "op": "range", "css": .string(Self.card("hallway") + " input[name=brightness]"), "value": 128,
        ])
        try await WebPageTests.gateway(web.bridge, light: 65537) { $0.on && $0.brightness == 128 }

        // The IKEA app changes it at the gateway: the page shows it without a reload.
        _ = try await web.bridge.coap("put", "15001/65537", #"{"3311":[{"5850":1,"5851":42}]}"#)
        try await browser.wait(Self.card("hallway"), attribute: "data-brightness", value: "42")
        try await browser.wait(Self.card("hallway") + " .summary", text: "on, 17 %")
        #expect(try await browser.eval("window.sameDocument") == "kept", "no reload")

        // A room's scene and colour temperature, a blind's position.
        try await browser.run(
            ["op": "select", "css": .string(Self.card("living_room") + " select[name=scene]"), "value": "196611"])
        try await WebPageTests.gateway(web.bridge, light: 65538) { $0.colorTemperature == 250 }
        try await browser.run(
            ["op": "range", "css": .string(Self.card("living_room_ceiling") + " input[name=color_temp]"), "value": 400])
        try await WebPageTests.gateway(web.bridge, light: 65538) { $0.colorTemperature == 400 }
        try await browser.run(
            ["op": "range", "css": .string(Self.card("bedroom_blind") + " input[name=position]"), "value": 40])
        try await browser.wait(Self.card("bedroom_blind"), attribute: "data-position", value: "40", timeout: 20)
        try await browser.screenshot("03-home")
        try await browser.screenshot("04-home-phone", phone: true)

        // Health: the same figures as the health request.
        try await browser.click("a[data-view=health]")
        try await browser.wait("#overall [data-healthy=true]", text: "healthy")
        try await browser.wait("#broker .pill", text: "online")
        try await browser.wait("#health [data-gateway=gateway]", text: "1.19.32")
        try await browser.screenshot("05-health")

        #expect(try await browser.consoleErrors() == [], "no script errors, no Content-Security-Policy violations")
        try await browser.click("#logout")
        try await browser.wait("#login")
        await browser.quit()
        await web.shutdown()
    }

    @Test func theAdministratorApprovesDeniesAndRevokesDevicesAndACrossSiteFormCanDoNothing() async throws {
        let web = try await WebHarness(pairing: true)
        let browser = try await Browser()
        try await browser.open(web.url)
        try await browser.type("#login-password", WebHarness.password)
        try await browser.click("#login-submit")
        try await browser.wait(Self.card("hallway"))
        try await browser.click("a[data-view=pairing]")
        try await browser.wait("#window", attribute: "data-open", value: "false")
        try await browser.run(["op": "check", "css": "#window-legacy"])
        try await browser.click("#open-window")
        try await browser.wait("#window", text: "EmonESP legacy requests too")

        // An EmonESP asks (polling every second instead of ten), and a secure device.
        let credentialsFile = web.directory.appendingPathComponent("emonesp-credentials").path
        let emonesp = try ChildProcess(
            PairingHarness.script("fake-emonesp.sh"), ["127.0.0.1", "\(web.legacyPort)"],
            environment: ["INTERVAL": "1", "CREDENTIALS_FILE": credentialsFile])
        try await browser.wait("#pending", text: "EmonESP at 127.0.0.1")
        let secret = "Zt4pQ9vW2xL7mK3nR8cY5bH1jF6dS0aE"
        let asked = try await secureCall(web, "/pairing/v1/request", ["name": "Heat pump", "secret": .string(secret)])
        let code = try #require(asked.json["verification_code"]?.stringValue, "\(asked)")
        try await browser.wait("#pending", text: code)
        try await browser.screenshot("06-pairing-requests")
        let pending = try await runCommand(
            "tradfri-bridge", ["pair", "list", "--json", "--config", web.bridge.configFile]
        ).output
        let requests = try JSON(parsing: pending.trimmingCharacters(in: .whitespacesAndNewlines)).arrayValue ?? []
        let emonespID = try #require(requests.first { $0["mode"] == "legacy" }?["id"]?.stringValue)
        let heatPumpID = try #require(requests.first { $0["mode"] == "secure" }?["id"]?.stringValue)

        // Allow: the EmonESP gets working credentials of its own and uses them.
        try await browser.click("#pending tr[data-request=\"\(emonespID)\"] button.allow")
        try await emonesp.waitForLine(containing: "published to devices/emonesp-", within: .seconds(30))
        try await browser.wait("#outcomes", text: "collected its credentials", timeout: 15)
        try await browser.wait("#outcomes", text: "connected to the broker", timeout: 15)
        let fields = try String(contentsOfFile: credentialsFile, encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines).split(separator: ":").map(String.init)
        let (user, password, prefix) = (fields[0], fields[1], fields[2])
        #expect(try await devicePublish(web, user: user, password: password, topic: prefix + "/power"))

        // Deny: the secure device gets nothing.
        try await browser.click("#pending tr[data-request=\"\(heatPumpID)\"] button.deny")
        try await browser.wait("#outcomes", text: "Denied Heat pump")
        let denied = try await secureCall(
            web, "/pairing/v1/credentials", ["id": .string(heatPumpID), "secret": .string(secret)])
        #expect(denied.status == 403 && denied.json["password"] == nil, "\(denied)")

        // Revoke (two clicks): the broker refuses the device from then on.
        let device = user.replacingOccurrences(of: "dev-", with: "")
        try await browser.wait("#devices tr[data-device=\"\(device)\"]", text: "connected")
        try await browser.click("#devices tr[data-device=\"\(device)\"] button.revoke")
        try await browser.click("#devices tr[data-device=\"\(device)\"] button.revoke")
        try await browser.wait("#devices tr[data-device=\"\(device)\"]", attribute: "data-state", value: "revoked")
        #expect(try await !devicePublish(web, user: user, password: password, topic: prefix + "/power"))
        try await browser.wait("#audit", text: "revoke")
        try await browser.screenshot("07-pairing")
        try await browser.click("#close-window")
        try await browser.wait("#window", attribute: "data-open", value: "false")

        // Every decision is in the audit log with the administrator and the browser's address.
        let audit = web.audit.split(separator: "\n").compactMap { try? JSON(parsing: String($0)) }
        for event in ["window_open", "allow", "deny", "revoke", "window_close"] {
            #expect(
                audit.contains {
                    $0["event"]?.stringValue == event && $0["by"] == "admin" && $0["client"] == "127.0.0.1"
                },
                "\(event) by admin from 127.0.0.1")
        }

        #expect(try await browser.consoleErrors() == [], "no script errors, no Content-Security-Policy violations")

        // A page on another origin posts a form with the administrator's cookie: refused.
        let evil = try await browser.run([
            "op": "serve",
            "html": .string(
                """
                <form method="post" action="\(web.url)api/pairing/open" enctype="text/plain">
                <input name='{"minutes":15,"legacy":true,"x":"' value='"}'></form>
                <script>document.forms[0].submit()</script>
                """),
        ])
        try await browser.open(try #require(evil.stringValue))
        try await browser.wait("body", text: "cross-site request refused")
        let status = try await runCommand("tradfri-bridge", ["pair", "status", "--config", web.bridge.configFile])
        #expect(status.output.contains("The pairing window is closed"), "\(status.output)")

        // No page, answer or log line holds a secret.
        try await browser.open(web.url + "#pairing")
        try await browser.wait("#devices", text: device)
        var everything = try await browser.source()
        for view in ["home", "health"] {
            try await browser.click("a[data-view=\(view)]")
            try await browser.wait("#\(view) .panel, #\(view) .card")
            everything += try await browser.source()
        }
        let client = web.client()
        try await client.login()
        for route in ["/api/home", "/api/health", "/api/pairing", "/api/session"] {
            everything += try await client.get(route).body
        }
        everything += web.audit + web.log
        let secrets = [
            WebHarness.password, password, secret, client.sessionToken,
            try String(contentsOf: web.directory.appendingPathComponent("bridge-password"), encoding: .utf8),
            try String(contentsOf: web.directory.appendingPathComponent("pairing-password"), encoding: .utf8),
            try #require(
                try JSON(parsing: String(contentsOfFile: web.bridge.credentials, encoding: .utf8))["psk"]?.stringValue),
        ].map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
        for (index, secretText) in secrets.enumerated() {
            #expect(!secretText.isEmpty && !everything.contains(secretText), "secret \(index) shows")
        }
        // The verification code and the certificate's fingerprint are shown: they are no secrets.
        #expect(everything.contains("SHA256:"))
        await browser.quit()
        await web.shutdown()
    }

    @Test func everyGatewayIsShownWithItsStateAndADeadOneGoesOfflineAlone() async throws {
        let harness = try await BridgeHarness()
        let garden = try await harness.addGateway(name: "garden", id: SeveralGatewaysTests.ids["garden"]!)
        let gateways = [("upstairs", harness.primary), ("garden", garden)]
        let passwordFile = harness.directory.appendingPathComponent("state/web-password").path
        let configuration =
            SeveralGatewaysTests.configuration(harness, gateways)
            + "\nweb:\n  listen: 127.0.0.1:0\n  password_file: \(passwordFile)\n"
        try configuration.write(toFile: harness.configFile, atomically: true, encoding: .utf8)
        try WebPassword.make(user: "admin", password: WebHarness.password).store(path: passwordFile)
        let url = try await WebHarness.url(of: try harness.launchBridge(configuration: configuration))
        let browser = try await Browser()
        try await browser.open(url)
        try await browser.type("#login-password", WebHarness.password)
        try await browser.click("#login-submit")
        for name in ["upstairs", "garden"] {
            try await browser.wait(".gateway[data-gateway=\(name)] h2", text: "Gateway \(name)")
            try await browser.wait(".gateway[data-gateway=\(name)] .pill", text: "online")
            try await browser.wait(Self.card("\(name)/hallway"))
        }
        // Control reaches only its own gateway.
        try await browser.click(Self.card("garden/hallway") + " button.switch")
        try await browser.wait(Self.card("garden/hallway"), attribute: "data-state", value: "ON")
        #expect(try await garden.device(65537).light?.on == true)
        #expect(try await harness.primary.device(65537).light?.on == false)
        try await browser.screenshot("08-two-gateways")

        await garden.simulator.stop()
        try await browser.wait(".gateway[data-gateway=garden] .pill", text: "offline", timeout: 20)
        try await browser.wait(Self.card("garden/hallway") + " .summary", text: "offline")
        try await browser.wait(".gateway[data-gateway=upstairs] .pill", text: "online")
        try await browser.screenshot("09-one-gateway-offline")
        #expect(try await browser.consoleErrors() == [])
        await browser.quit()
        await harness.shutdown([garden])
    }

    // MARK: Devices

    /// A secure-mode call as a device makes it (from another address of this host).
    func secureCall(_ web: WebHarness, _ path: String, _ body: JSON) async throws -> (status: Int, json: JSON) {
        let output = try await runCommand(
            "curl",
            [
                "-sk", "--interface", "127.0.0.3", "-X", "POST", "-d", body.description, "-w", "\n%{http_code}",
                "https://127.0.0.1:\(web.securePort)\(path)",
            ]
        ).output
        let lines = output.split(separator: "\n", omittingEmptySubsequences: false)
        return (Int(lines.last ?? "") ?? 0, (try? JSON(parsing: lines.dropLast().joined(separator: "\n"))) ?? .null)
    }

    /// mosquitto_pub with a device's credentials; true if the broker took the message (PUBACK 0).
    func devicePublish(_ web: WebHarness, user: String, password: String, topic: String) async throws -> Bool {
        let result = try await runCommand(
            "mosquitto_pub",
            [
                "-h", "127.0.0.1", "-p", "\(web.bridge.broker.port)", "-V", "mqttv5", "-q", "1", "-d", "-u", user,
                "-P", password, "-t", topic, "-m", "42",
            ], check: false)
        return result.status == 0 && result.output.contains("received PUBACK") && result.output.contains("RC:0)")
    }
}
