import CoAP
import Foundation
import HTTPTypes
import HubModel
import Hummingbird
import NIOCore
import TradfriModel

@testable import TradfriBridge

/// Bytes sent to the web page, decoded as the server decodes them (`HTTPRequests`), answered by
/// the web page's own responder (`WebServer.respond`: routes, the session cookie, Origin and CSRF
/// checks, log-in with its limits, JSON bodies, commands to the demo home through
/// `CommandHandler`, pairing decisions). The input's `SESSION` and `CSRF` become a live session's
/// cookie and token, and `LOGIN` the log-in token, so the fuzzer reaches what lies behind the
/// log-in too.
struct WebHTTPTarget: FuzzTarget {
    static let name = "web-http"

    func run(_ input: [UInt8]) {
        let web = WebPages.shared
        var text = input
        for (placeholder, value) in [("SESSION", web.session), ("CSRF", web.csrf), ("LOGIN", web.loginToken)] {
            text = text.replacing(Array(placeholder.utf8), with: Array(value.utf8))
        }
        // Left out: log-out (it would end the session every other input uses) and the live
        // event stream (it answers with a stream that never ends).
        for decoded in HTTPRequests.decode(text)
        where !decoded.request.uri.path.hasPrefix("/api/logout") && !decoded.request.uri.path.hasPrefix("/api/events") {
            _ = Fuzz.wait { try? await web.server.respond(decoded.request, decoded.context) }
        }
    }
}

/// One web server for every input (as the daemon has one): the demo home on a hub that takes
/// commands without a gateway, a password file, a logged-in session.
final class WebPages: Sendable {
    static let shared = WebPages()
    static let password = "fuzzing password"
    let server: WebServer
    let session: String
    let csrf: String
    let loginToken: String

    private init() {
        var configuration = BridgeConfiguration()
        configuration.web.passwordFile = PairingServices.directory + "/web-password"
        configuration.pairing.registry = PairingServices.directory + "/paired-devices.json"
        configuration.pairing.auditLog = "/dev/null"
        configuration.mqtt.server = .url(tls: false, host: "127.0.0.1", port: 1)
        configuration.homeAssistant.enabled = false
        do {
            try WebPassword.make(user: "admin", password: Self.password).store(path: configuration.web.passwordFile)
        } catch {
            fatalError("cannot write the password file: \(error)")
        }
        let finalConfiguration = configuration
        server = Fuzz.wait { @CoAPActor in
            let bridge = try! Bridge.make(
                configuration: finalConfiguration, hubs: [DemoHub()], broker: ("127.0.0.1", 1, false))
            return WebServer(
                configuration: finalConfiguration, bridge: bridge, pairing: PairingServices.make(),
                audit: AuditLog(path: "/dev/null"))
        }
        // Log in once, as the page does: its log-in token, then the password.
        let server = self.server
        let (_, loginHeaders) = Self.send(server, "GET /api/session HTTP/1.1\r\nHost: bridge.local\r\n\r\n")
        let login = Self.cookie("tradfri_login", in: loginHeaders)
        let body = #"{"user":"admin","password":"\#(Self.password)"}"#
        let (answer, headers) = Self.send(
            server,
            "POST /api/login HTTP/1.1\r\nHost: bridge.local\r\nContent-Type: application/json\r\n"
                + "Cookie: tradfri_login=\(login)\r\nX-CSRF-Token: \(login)\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
        )
        session = Self.cookie("tradfri_session", in: headers)
        csrf = answer["csrf"]?.stringValue ?? ""
        loginToken = login
        precondition(!session.isEmpty && !csrf.isEmpty, "the fuzzer's log-in failed: \(answer)")
    }

    /// Sends a request to the server; its JSON body and Set-Cookie headers.
    static func send(_ server: WebServer, _ text: String) -> (JSON, [String]) {
        guard let decoded = HTTPRequests.decode(Array(text.utf8)).first else { return (.null, []) }
        return Fuzz.wait {
            guard let response = try? await server.respond(decoded.request, decoded.context) else { return (.null, []) }
            let collector = BodyCollector()
            try? await response.body.write(collector)
            return ((try? JSON(parsing: collector.bytes)) ?? .null, response.headers[values: .setCookie])
        }
    }

    static func cookie(_ name: String, in headers: [String]) -> String {
        for header in headers where header.hasPrefix(name + "=") {
            return String(header.dropFirst(name.count + 1).prefix { $0 != ";" })
        }
        return ""
    }
}

/// Collects a response body.
final class BodyCollector: ResponseBodyWriter, @unchecked Sendable {
    // @unchecked: written by the one task that writes the response.
    var bytes: [UInt8] = []

    func write(_ buffer: ByteBuffer) async throws {
        bytes += Array(buffer: buffer)
    }

    func finish(_ trailingHeaders: HTTPFields?) async throws {}
}

/// The demo home as a hub that is always connected and takes every command without a gateway.
@CoAPActor
final class DemoHub: Hub {
    let name = "home"
    let kind = "tradfri"
    let hardwareID = "7e11515204400072"
    let connected = true
    let address: String? = "192.0.2.20:5684"
    let firmware: String? = "1.19.32"
    let lastContact: Date? = Date()
    let needsPairing = false
    let devices: [ItemID: HubDevice]
    let groups: [ItemID: HubGroup]
    let viewFigures: JSON = [:]
    let pairingCommand: String? = nil
    let statistics = HubStatistics()

    nonisolated init() {
        devices = Dictionary(
            uniqueKeysWithValues: DemoHome.devices.map { device in
                let hubDevice = device.hubDevice(hub: "home")
                return (hubDevice.id, hubDevice)
            })
        groups = Dictionary(
            uniqueKeysWithValues: DemoHome.groups.map { group in
                let hubGroup = group.hubGroup(hub: "home", scenes: DemoHome.scenes(of: group))
                return (hubGroup.id, hubGroup)
            })
    }

    func setEventHandler(_ handler: @escaping @CoAPActor (HubEvent) -> Void) {}
    func run() async {}
    func send(_ command: DeviceCommand, to target: ItemID, topic: String) {}
    func pendingCommand(for target: ItemID) -> DeviceCommand? { nil }
    func reread(device: ItemID) async throws -> HubDevice? { devices[device] }
    func resync(within limit: Duration) async -> Bool { true }
    func reboot() async throws {}
    func rename(_ item: ItemID, to name: String) async throws {}
    func setCommandSpacing(_ spacing: Duration) {}
}
