import Foundation
import HubModel
import TestSupport
import Testing
import TradfriModel

/// A bridge with its web page, reached as a browser reaches it: curl with a cookie jar of its own
/// (one per `WebClient`), and a real Chromium (`Browser`). With `pairing: true` the broker uses
/// the dynamic-security plugin and pairing is on (EmonESP legacy too), as in `PairingHarness`.
final class WebHarness: @unchecked Sendable {
    // @unchecked: driven by one test at a time.
    static let password = "correct horse battery staple"
    let bridge: BridgeHarness
    let securePort = freePort()
    let legacyPort = freePort()
    private(set) var url = ""

    var directory: URL { bridge.directory }
    var passwordFile: String { directory.appendingPathComponent("state/web-password").path }
    var auditLog: String { directory.appendingPathComponent("state/audit.log").path }
    var controlSocket: String { directory.appendingPathComponent("control.sock").path }
    var audit: String { (try? String(contentsOfFile: auditLog, encoding: .utf8)) ?? "" }
    var log: String { bridge.bridge?.outputText ?? "" }

    /// - Parameters:
    ///   - web: more keys of the `web` section, each line indented by two spaces.
    ///   - setPassword: run `tradfri-bridge web-password` before the bridge starts.
    init(pairing: Bool = false, web: String = "", setPassword: Bool = true) async throws {
        bridge = pairing ? try await PairingHarness.dynamicSecurityInstallation() : try await BridgeHarness()
        let directory = bridge.directory
        let listen = web.contains("listen:") ? "" : "  listen: 127.0.0.1:0\n"
        var extra = """
            web:
            \(listen)  password_file: \(passwordFile)
            \(web)
            pairing:
              registry: \(directory.appendingPathComponent("state/paired-devices.json").path)
              audit_log: \(auditLog)
              control_socket: \(controlSocket)

            """
        var mqtt = ""
        if pairing {
            extra += """
                  enabled: true
                  listen: 127.0.0.1:\(securePort)
                  legacy: true
                  legacy_listen: 127.0.0.1:\(legacyPort)
                  broker_admin_user: tradfri-pairing
                  broker_admin_password_file: \(directory.appendingPathComponent("pairing-password").path)

                """
            mqtt = """
                  user: tradfri-bridge
                  password_file: \(directory.appendingPathComponent("bridge-password").path)
                """
        }
        if setPassword {
            // The configuration first: web-password reads web.password_file from it.
            try extra.write(to: directory.appendingPathComponent("config.yaml"), atomically: true, encoding: .utf8)
            try await setAdministratorPassword(Self.password)
        }
        try await bridge.startBridge(extraConfiguration: extra, mqttConfiguration: mqtt)
        url = try await Self.url(of: try #require(bridge.bridge))
        if pairing { try await bridge.bridge?.waitForLine(containing: "pairing ready") }
    }

    /// The page's address, from the bridge's "web page ready" line.
    static func url(of bridge: ChildProcess) async throws -> String {
        let line = try await bridge.waitForLine(within: .seconds(20), "the web page") { $0.contains("web page ready") }
        let value = line.components(separatedBy: "web.url=").last?.split(separator: " ").first.map(String.init)
        return try #require(value, "no web.url in \(line)")
    }

    /// `tradfri-bridge web-password --stdin` with this bridge's configuration, as a user runs it.
    @discardableResult
    func setAdministratorPassword(
        _ password: String, user: String = "admin", check: Bool = true
    ) async throws
        -> (status: Int32, output: String)
    {
        let binary = try #require(BuildProducts.path(of: "tradfri-bridge"))
        return try await runCommand(
            "sh",
            [
                "-c",
                #"printf '%s\n' "$PASSWORD" | "$BRIDGE" web-password --stdin --user "$WEB_USER" --config "$CONFIG""#,
            ],
            environment: ["PASSWORD": password, "BRIDGE": binary, "WEB_USER": user, "CONFIG": bridge.configFile],
            check: check)
    }

    func client() -> WebClient {
        WebClient(url: url, jar: directory.appendingPathComponent("cookies-\(UUID().uuidString)").path)
    }

    func shutdown() async {
        await bridge.shutdown()
    }
}

/// One browser's view of the web page through curl: a cookie jar, the CSRF token the page would
/// hold, and requests with the headers a same-origin `fetch` sends.
final class WebClient: @unchecked Sendable {
    // @unchecked: used by one test at a time.
    let url: String
    let jar: String
    var csrf = ""
    /// The local address requests come from (127.0.0.x are all this host), or curl's choice.
    var interface: String?

    struct Answer: CustomStringConvertible {
        var status: Int
        var headers: [String: String]
        var body: String
        var json: JSON { (try? JSON(parsing: body)) ?? .null }
        var description: String { "\(status) \(body.prefix(500))" }
    }

    init(url: String, jar: String) {
        self.url = url
        self.jar = jar
    }

    var origin: String { String(url.dropLast()) }

    /// A request with the cookie jar. `headers` are added as given (no Origin unless named).
    func request(
        _ method: String, _ path: String, body: String? = nil, headers: [String: String] = [:]
    ) async throws -> Answer {
        var arguments = ["-sk", "-i", "-X", method, "-b", jar, "-c", jar, "--max-time", "10"]
        if let interface { arguments += ["--interface", interface] }
        for (name, value) in headers.sorted(by: { $0.key < $1.key }) { arguments += ["-H", "\(name): \(value)"] }
        if let body { arguments += ["--data-binary", body] }
        let output = try await runCommand("curl", arguments + [url + path.dropFirst()]).output
        let parts = output.components(separatedBy: "\r\n\r\n")
        let head = parts.first ?? ""
        let lines = head.components(separatedBy: "\r\n")
        let status = Int(lines.first?.split(separator: " ").dropFirst().first ?? "") ?? 0
        var fields: [String: String] = [:]
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let name = line[..<colon].lowercased()
            let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            fields[name] = fields[name].map { $0 + "\n" + value } ?? value
        }
        return Answer(status: status, headers: fields, body: parts.dropFirst().joined(separator: "\r\n\r\n"))
    }

    func get(_ path: String) async throws -> Answer {
        try await request("GET", path)
    }

    /// A POST as the page's script sends it: JSON, from this origin, with the CSRF token.
    func post(_ path: String, _ body: JSON, token: String? = nil) async throws -> Answer {
        try await request(
            "POST", path, body: body.description,
            headers: [
                "Content-Type": "application/json", "X-CSRF-Token": token ?? csrf, "Origin": origin,
                "Sec-Fetch-Site": "same-origin",
            ])
    }

    /// Logs in as the page does (its log-in token first); keeps the session's CSRF token.
    @discardableResult
    func login(user: String = "admin", password: String = WebHarness.password) async throws -> Answer {
        let session = try await get("/api/session")
        let token = session.json["login_token"]?.stringValue ?? ""
        let answer = try await post("/api/login", ["user": .string(user), "password": .string(password)], token: token)
        if let csrf = answer.json["csrf"]?.stringValue { self.csrf = csrf }
        return answer
    }

    /// The session cookie's value in the jar ("" without one).
    var sessionToken: String {
        let text = (try? String(contentsOfFile: jar, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").first { $0.contains("\ttradfri_session\t") }?.split(separator: "\t").last
            .map(String.init) ?? ""
    }
}

/// A real headless Chromium driven by `Tests/Scripts/browser.py` (Selenium and chromium-driver):
/// one JSON command per line, one answer per line. Screenshots go to `.build/web-screenshots/`.
final class Browser: @unchecked Sendable {
    // @unchecked: driven by one test at a time.
    private let driver: ChildProcess

    static var screenshots: URL {
        let folder = PairingHarness.repository.appendingPathComponent(".build/web-screenshots")
        try? FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        return folder
    }

    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    init() async throws {
        driver = try ChildProcess(
            "/usr/bin/python3", [PairingHarness.script("browser.py")], name: "browser", interactive: true)
        try await driver.waitForLine(within: .seconds(60), "Chromium to start") { $0.hasPrefix(#"{"ok""#) }
    }

    /// Runs one command; returns its value, throws its error.
    @discardableResult
    func run(_ command: JSON, within limit: Duration = .seconds(40)) async throws -> JSON {
        let mark = driver.lineCount
        driver.send(command.description)
        let line = try await driver.waitForLine(within: limit, "the browser's answer to \(command)", after: mark) {
            $0.hasPrefix(#"{"ok""#)
        }
        let answer = try JSON(parsing: line)
        guard answer["ok"] == true else { throw Failure(description: answer["error"]?.stringValue ?? line) }
        return answer["value"] ?? .null
    }

    func open(_ url: String) async throws { try await run(["op": "open", "url": .string(url)]) }

    /// Waits until `css` is shown (containing `text`; with `attribute` equal to `value`).
    @discardableResult
    func wait(
        _ css: String, text: String? = nil, attribute: String? = nil, value: String? = nil,
        timeout: Double = 10
    ) async throws -> JSON {
        var command: [String: JSON] = ["op": "wait", "css": .string(css), "timeout": .double(timeout)]
        if let text { command["text"] = .string(text) }
        if let attribute, let value {
            command["attr"] = .string(attribute)
            command["value"] = .string(value)
        }
        return try await run(.object(command), within: .seconds(timeout + 30))
    }

    func waitHidden(_ css: String, timeout: Double = 10) async throws {
        try await run(
            ["op": "wait", "css": .string(css), "hidden": true, "timeout": .double(timeout)],
            within: .seconds(timeout + 30))
    }

    func click(_ css: String) async throws { try await run(["op": "click", "css": .string(css)]) }

    func type(_ css: String, _ text: String) async throws {
        try await run(["op": "type", "css": .string(css), "text": .string(text)])
    }

    func text(_ css: String) async throws -> String {
        try await run(["op": "text", "css": .string(css)]).stringValue ?? ""
    }

    func eval(_ expression: String) async throws -> JSON {
        try await run(["op": "eval", "js": .string(expression)])
    }

    func source() async throws -> String { try await run(["op": "source"]).stringValue ?? "" }

    /// Saves a screenshot as `.build/web-screenshots/<name>.png` (a phone's size with `phone`).
    func screenshot(_ name: String, phone: Bool = false) async throws {
        var command: [String: JSON] = [
            "op": "screenshot", "path": .string(Self.screenshots.appendingPathComponent("\(name).png").path),
        ]
        if phone {
            command["width"] = 390
            command["height"] = 844
        }
        try await run(.object(command))
    }

    /// Console messages of level SEVERE (script errors, Content-Security-Policy violations), but
    /// not the answers the tests ask for on purpose (401 to a wrong password, 403 to a refusal).
    func consoleErrors() async throws -> [String] {
        (try await run(["op": "console"]).arrayValue ?? []).compactMap { entry in
            guard entry["level"] == "SEVERE", let message = entry["message"]?.stringValue,
                !message.contains("Failed to load resource: the server responded with a status of")
            else { return nil }
            return message
        }
    }

    func quit() async {
        driver.send(#"{"op": "quit"}"#)
        _ = try? await driver.waitForExit(within: .seconds(15))
        await driver.stop()
    }
}
