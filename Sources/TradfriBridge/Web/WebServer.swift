import CoAP
import Foundation
import HTTPTypes
import HubModel
import Hummingbird
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import ServiceLifecycle
import Synchronization
import TLS

/// The bridge's web page, on `web.listen`: pairing decisions, the live home with basic control,
/// and health, for one administrator.
///
/// Contract:
/// - Served over HTTPS with the bridge's certificate unless it listens on loopback
///   (`web.scheme`). The page's HTML, script and style come from the binary (`WebAssets`) and
///   hold no data; every `/api/…` route but `session` and `login` needs a session, or answers
///   401 with nothing else.
/// - Until `web.password_file` exists, the page says how to make it and shows nothing else.
/// - Every state-changing request is a POST of JSON from this origin (`Origin` and
///   `Sec-Fetch-Site` checked when the browser sends them) carrying the session's CSRF token
///   (`X-CSRF-Token`); log-in carries the token of a cookie of its own (double submit). Others
///   get 403 and change nothing.
/// - Every response has a strict Content-Security-Policy (no inline script or style, nothing from
///   elsewhere) and the other security headers; no response, page or log line holds a secret
///   (passwords, keys, tokens; the verification code and the certificate's fingerprint are not
///   secrets).
/// - Every decision taken on the page (log-in, failed log-in, log-out, expiry, commands, pairing
///   decisions) goes to the audit log with the administrator and the client's address.
/// - `run()` serves until graceful shutdown, then ends every live stream and returns within a
///   second. An address it cannot listen on (or a certificate it can neither read nor make) is
///   logged as an error naming `web.listen`, and the rest of the bridge runs on without the page.
public final class WebServer: Service {
    private let settings: BridgeConfiguration.Web
    private let stateDirectory: String
    private let feature: WebFeature
    private let pairing: PairingService?
    private let audit: AuditLog
    private let events: WebEvents
    private let sessions: Mutex<WebSessions>
    /// Wakes the expiry loop when the first session is made.
    private let expiryWake: (stream: AsyncStream<Void>, continuation: AsyncStream<Void>.Continuation)
    private let logger = Logger(label: "web")

    /// - Parameters:
    ///   - bridge: the bridge whose home the page shows and controls.
    ///   - pairing: the pairing service, when `pairing.enabled`.
    ///   - audit: the audit log (the pairing service writes to the same).
    @CoAPActor
    public init(configuration: BridgeConfiguration, bridge: Bridge, pairing: PairingService?, audit: AuditLog) {
        settings = configuration.web
        stateDirectory = configuration.stateDirectory
        self.pairing = pairing
        self.audit = audit
        let events = WebEvents()
        self.events = events
        guard let commands = bridge.commands else { preconditionFailure("Bridge.make builds the command handler") }
        feature = WebFeature(context: bridge.context, commands: commands, events: events)
        bridge.add(feature)
        sessions = Mutex(WebSessions(timeout: .seconds(configuration.web.sessionTimeout), now: .now))
        expiryWake = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    public func run() async throws {
        let (host, port) = settings.address ?? ("127.0.0.1", 8080)
        let tls: TLSConfiguration?
        do {
            tls =
                settings.usesHTTPS
                ? try BridgeCertificate.serverConfiguration(BridgeCertificate.load(in: stateDirectory)) : nil
        } catch {
            logger.error(
                "the web page is off: the bridge's certificate can be neither read nor made",
                metadata: ["directory": "\(stateDirectory)", "error": "\(error)"])
            try? await gracefulShutdown()
            return
        }
        let scheme = tls == nil ? "http" : "https"
        let endpoint = HTTPEndpoint(
            name: "web page", host: host, port: port, tls: tls, headers: Self.securityHeaders,
            respond: { [self] request, context in try await respond(request, context) },
            onListening: { [self] bound in
                let shown = host == "0.0.0.0" || host == "::" ? BridgeConfiguration.hostName + ".local" : host
                logger.info(
                    "web page ready",
                    metadata: [
                        "web.url": "\(scheme)://\(shown.contains(":") ? "[\(shown)]" : shown):\(bound)/",
                        "web.listen": "\(self.settings.listen)",
                    ])
            })
        await pairing?.addWatcher { [events] event in
            events.send("pairing", event)
            return true
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { [logger, settings] in
                do {
                    try await endpoint.run()
                } catch let error as HTTPEndpoint.BindError {
                    logger.error(
                        "the web page is off: cannot listen on web.listen",
                        metadata: ["web.listen": "\(settings.listen)", "error": "\(error)"])
                    try? await gracefulShutdown()
                } catch is CancellationError {
                    // A stop while starting: nothing to say.
                } catch {
                    // Anything else the server cannot start with (a host name that does not
                    // resolve, a TLS set-up the certificate does not fit): the page is off, the
                    // bridge goes on.
                    logger.error(
                        "the web page is off: it cannot be served",
                        metadata: ["web.listen": "\(settings.listen)", "error": "\(error)"])
                    try? await gracefulShutdown()
                }
            }
            group.addTask { [self] in
                await cancelWhenGracefulShutdown { await self.expireSessions() }
            }
            group.addTask { [events] in
                // Live streams never end by themselves: they end here, so the server can stop.
                try? await gracefulShutdown()
                events.finishAll()
            }
            try await group.waitForAll()
        }
    }

    // MARK: Routes

    static let securityHeaders: HTTPFields = [
        .contentSecurityPolicy:
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
            + "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        .xContentTypeOptions: "nosniff",
        HTTPField.Name("X-Frame-Options")!: "DENY",
        HTTPField.Name("Referrer-Policy")!: "no-referrer",
        HTTPField.Name("Cross-Origin-Opener-Policy")!: "same-origin",
        HTTPField.Name("Cross-Origin-Resource-Policy")!: "same-origin",
        HTTPField.Name("Permissions-Policy")!: "camera=(), microphone=(), geolocation=()",
        .cacheControl: "no-store",
    ]

    /// Every route the page uses: GET for reading, POST for everything that changes something.
    static let routes: [(method: HTTPRequest.Method, path: String)] = [
        (.get, "/api/home"), (.get, "/api/health"), (.get, "/api/events"), (.get, "/api/pairing"),
        (.post, "/api/logout"), (.post, "/api/command"), (.post, "/api/pairing/open"),
        (.post, "/api/pairing/close"), (.post, "/api/pairing/allow"), (.post, "/api/pairing/deny"),
        (.post, "/api/pairing/revoke"),
    ]

    func respond(_ request: Request, _ context: EndpointContext) async throws -> Response {
        let path = request.uri.path
        if request.method == .get || request.method == .head, let asset = WebAssets.file(path) {
            return Response(
                status: .ok, headers: [.contentType: asset.type],
                body: .init(byteBuffer: ByteBuffer(string: request.method == .head ? "" : asset.body)))
        }
        guard path.hasPrefix("/api/") else { return Self.json(.notFound, ["error": "not found"]) }
        switch (request.method, path) {
        case (.get, "/api/session"):
            return sessionInfo(request, context)
        case (.post, "/api/login"):
            return try await login(request, context)
        default:
            break
        }
        guard Self.routes.contains(where: { $0.path == path }) else {
            return Self.json(.notFound, ["error": "not found"])
        }
        guard let session = authenticated(request) else {
            return Self.json(.unauthorized, ["error": "log in first"])
        }
        guard Self.routes.contains(where: { $0.path == path && $0.method == request.method }) else {
            return Self.json(.methodNotAllowed, ["error": "method not allowed"])
        }
        if request.method == .post {
            if let refusal = Self.crossSiteRefusal(request, context, expectedToken: session.csrf) {
                logger.warning(
                    "refused a cross-site request", metadata: ["path": "\(path)", "client": "\(context.peer)"])
                return Self.json(.forbidden, ["error": .string(refusal)])
            }
        }
        var context = context
        context.session = session
        let origin = AuditLog.Origin(user: session.user, client: context.peer)
        switch path {
        case "/api/home":
            return Self.json(.ok, await feature.snapshot())
        case "/api/health":
            return Self.json(.ok, await feature.context.health())
        case "/api/events":
            return await eventStream(session)
        case "/api/logout":
            return logout(session, origin: origin)
        case "/api/command":
            return try await command(request, origin: origin)
        case "/api/pairing":
            return await pairingState()
        default:
            return try await pairingDecision(
                request, command: String(path.dropFirst("/api/pairing/".count)), origin: origin)
        }
    }

    // MARK: Log-in

    private static let sessionCookie = "tradfri_session"
    private static let loginCookie = "tradfri_login"

    private var passwordHowTo: String {
        "sudo -u tradfri-bridge tradfri-bridge web-password"
            + (settings.passwordFile == BridgeConfiguration.Web().passwordFile
                ? "" : " (with the configuration that sets web.password_file \(settings.passwordFile))")
    }

    /// What the page should show: how to set a password, the log-in form, or the page itself.
    private func sessionInfo(_ request: Request, _ context: EndpointContext) -> Response {
        switch WebPassword.load(path: settings.passwordFile) {
        case .notSet:
            return Self.json(.ok, ["state": "setup", "command": .string(passwordHowTo)])
        case .unusable(let problem):
            return Self.json(.ok, ["state": "setup", "problem": .string(problem), "command": .string(passwordHowTo)])
        case .set:
            break
        }
        if let session = authenticated(request) {
            return Self.json(
                .ok,
                [
                    "state": "ready", "user": .string(session.user), "csrf": .string(session.csrf),
                    "session_timeout": .int(Int(settings.sessionTimeout)), "pairing": .bool(pairing != nil),
                ])
        }
        let token = WebSessions.token()
        var response = Self.json(.ok, ["state": "login", "login_token": .string(token)])
        response.setCookie(cookie(Self.loginCookie, token, path: "/api/login", secure: context.secure))
        return response
    }

    private func login(_ request: Request, _ context: EndpointContext) async throws -> Response {
        let client = context.peer
        let token = request.cookies[Self.loginCookie]?.value
        if let refusal = Self.crossSiteRefusal(request, context, expectedToken: token) {
            logger.warning("refused a cross-site log-in", metadata: ["client": "\(client)"])
            return Self.json(.forbidden, ["error": .string(refusal)])
        }
        guard case .set(let stored) = WebPassword.load(path: settings.passwordFile) else {
            return Self.json(.conflict, ["error": .string("no administrator password is set: \(passwordHowTo)")])
        }
        if let wait = sessions.withLock({ $0.loginWait(client: client, now: .now) }) {
            audit.record("web_login_refused", detail: "too many attempts", origin: .init(user: "-", client: client))
            var response = Self.json(.tooManyRequests, ["error": .string("too many attempts: try again in \(wait) s")])
            response.headers[.retryAfter] = String(wait)
            return response
        }
        let body = try await Self.body(request)
        guard let user = body["user"]?.stringValue, let password = body["password"]?.stringValue else {
            return Self.json(.badRequest, ["error": "give \"user\" and \"password\""])
        }
        let valid = try await NIOThreadPool.singleton.runIfActive { stored.verify(user: user, password: password) }
        guard valid else {
            sessions.withLock { $0.loginFailed(client: client, now: .now) }
            // Not the user name tried: a password typed into the wrong field would land in the log.
            audit.record("web_login_failed", origin: .init(user: "-", client: client))
            logger.notice("wrong web page log-in", metadata: ["client": "\(client)"])
            return Self.json(.unauthorized, ["error": "wrong user name or password"])
        }
        let (cookieToken, session) = sessions.withLock {
            $0.create(user: stored.user, client: client, credential: stored.line, now: .now)
        }
        expiryWake.continuation.yield()
        audit.record("web_login", origin: .init(user: stored.user, client: client))
        logger.info("logged in to the web page", metadata: ["user": "\(stored.user)", "client": "\(client)"])
        var response = Self.json(
            .ok,
            [
                "state": "ready", "user": .string(session.user), "csrf": .string(session.csrf),
                "session_timeout": .int(Int(settings.sessionTimeout)), "pairing": .bool(pairing != nil),
            ])
        response.setCookie(cookie(Self.sessionCookie, cookieToken, path: "/", secure: context.secure))
        response.setCookie(cookie(Self.loginCookie, "", path: "/api/login", secure: context.secure, maxAge: 0))
        return response
    }

    private func logout(_ session: WebSession, origin: AuditLog.Origin) -> Response {
        _ = sessions.withLock { $0.end(id: session.id) }
        events.finish(session: session.id)
        audit.record("web_logout", origin: origin)
        var response = Self.json(.ok, ["state": "logged_out"])
        response.setCookie(cookie(Self.sessionCookie, "", path: "/", secure: false, maxAge: 0))
        return response
    }

    /// The session of the request's cookie, if it is live (its idle time restarts).
    private func authenticated(_ request: Request) -> WebSession? {
        guard let token = request.cookies[Self.sessionCookie]?.value else { return nil }
        let credential: String? =
            if case .set(let stored) = WebPassword.load(path: settings.passwordFile) { stored.line } else { nil }
        return sessions.withLock { $0.session(token: token, credential: credential, now: .now) }
    }

    private func cookie(_ name: String, _ value: String, path: String, secure: Bool, maxAge: Int? = nil) -> Cookie {
        Cookie(name: name, value: value, maxAge: maxAge, path: path, secure: secure, httpOnly: true, sameSite: .strict)
    }

    /// Why a state-changing request is refused, if it is: it must be JSON, from this origin, with
    /// the expected token in `X-CSRF-Token`. A cross-site form can do none of these.
    static func crossSiteRefusal(_ request: Request, _ context: EndpointContext, expectedToken: String?) -> String? {
        if let site = request.headers[HTTPField.Name("Sec-Fetch-Site")!], site != "same-origin" {
            return "cross-site request refused"
        }
        if let origin = request.headers[.origin] {
            let own = "\(context.secure ? "https" : "http")://\(request.head.authority ?? "")"
            guard origin == own else { return "cross-site request refused" }
        }
        guard request.headers[.contentType]?.lowercased().hasPrefix("application/json") == true else {
            return "the request must be JSON"
        }
        guard let expectedToken, !expectedToken.isEmpty,
            let sent = request.headers[HTTPField.Name("X-CSRF-Token")!],
            Crypto.constantTimeEqual(Array(sent.utf8), Array(expectedToken.utf8))
        else { return "missing or wrong CSRF token (reload the page)" }
        return nil
    }

    /// Ends idle sessions when they run out (and their pages' streams with them).
    private func expireSessions() async {
        var wakes = expiryWake.stream.makeAsyncIterator()
        while !Task.isCancelled {
            guard let next = sessions.withLock({ $0.nextExpiry }) else {
                guard await wakes.next() != nil else { return }
                continue
            }
            try? await Task.sleep(until: next + .milliseconds(50), clock: .continuous)
            for session in sessions.withLock({ $0.expire(now: .now) }) {
                events.finish(session: session.id)
                audit.record("web_session_expired", origin: .init(user: session.user, client: session.client))
                logger.info("web page session expired", metadata: ["user": "\(session.user)"])
            }
        }
    }

    // MARK: Home and health

    private func eventStream(_ session: WebSession) async -> Response {
        guard let stream = await feature.open(session: session.id) else {
            return Self.json(.serviceUnavailable, ["error": "stopping"])
        }
        return Response(
            status: .ok, headers: [.contentType: "text/event-stream", HTTPField.Name("X-Accel-Buffering")!: "no"],
            body: ResponseBody { writer in
                for await message in stream { try await writer.write(ByteBuffer(string: message)) }
                try await writer.finish(nil)
            })
    }

    private func command(_ request: Request, origin: AuditLog.Origin) async throws -> Response {
        let body = try await Self.body(request)
        guard let target = body["target"]?.stringValue, let command = body["command"] else {
            return Self.json(.badRequest, ["error": "give \"target\" and \"command\""])
        }
        let payload = command.stringValue.map { Array($0.utf8) } ?? command.bytes
        do {
            try await feature.submit(target: target, payload: payload)
        } catch {
            return Self.json(.badRequest, ["error": .string(error.message)])
        }
        audit.record("web_command", origin: origin, extra: ["target": .string(target), "command": command])
        return Self.json(.accepted, ["ok": true])
    }

    // MARK: Pairing

    private func pairingState() async -> Response {
        guard let pairing else {
            return Self.json(
                .ok,
                [
                    "enabled": false,
                    "how":
                        "set pairing.enabled: true in the configuration (with a broker account for device accounts; see README) and restart the bridge",
                    "audit": .array(audit.recent(50)),
                ])
        }
        let status = await pairing.control(["command": "status"])["data"] ?? .null
        let pending = await pairing.control(["command": "list"])["data"] ?? []
        let devices = await pairing.control(["command": "devices"])["data"] ?? []
        return Self.json(
            .ok,
            [
                "enabled": true, "legacy_allowed": .bool(pairing.legacyAllowed), "status": status, "pending": pending,
                "devices": devices, "audit": .array(pairing.recentAudit(50)),
            ])
    }

    private func pairingDecision(_ request: Request, command: String, origin: AuditLog.Origin) async throws -> Response
    {
        guard let pairing else { return Self.json(.conflict, ["error": "pairing is off (pairing.enabled)"]) }
        let body = try await Self.body(request)
        var control: [String: JSON] = ["command": .string(command)]
        let members: [String] =
            switch command {
            case "open": ["minutes", "legacy"]
            case "allow", "deny": ["id"]
            case "revoke": ["device"]
            default: []
            }
        for member in members { control[member] = body[member] }
        let answer = await pairing.control(.object(control), origin: origin)
        guard answer["ok"] == true else {
            return Self.json(.badRequest, ["error": answer["error"] ?? "the pairing service did not answer"])
        }
        return Self.json(.ok, answer["data"] ?? [:])
    }

    // MARK: Helpers

    /// A body that is not a JSON object of at most 8 KiB: 400, saying so.
    struct BadBody: HTTPResponseError {
        let message: String
        var status: HTTPResponse.Status { .badRequest }
        func response(from request: Request, context: some RequestContext) -> Response {
            WebServer.json(status, ["error": .string(message)])
        }
    }

    /// The request's body as a JSON object (at most 8 KiB).
    static func body(_ request: Request) async throws -> [String: JSON] {
        var request = request
        let bytes: ByteBuffer
        do {
            bytes = try await request.collectBody(upTo: 8192)
        } catch is NIOTooManyBytesError {
            throw BadBody(message: "the body is too large (at most 8 KiB)")
        }
        guard let json = try? JSON(parsing: Array(buffer: bytes), limits: .init(maxDepth: 8, maxBytes: 8192)),
            let object = json.objectValue
        else { throw BadBody(message: "the body must be a JSON object") }
        return object
    }

    static func json(_ status: HTTPResponse.Status, _ body: JSON) -> Response {
        Response(
            status: status, headers: [.contentType: "application/json"],
            body: .init(byteBuffer: ByteBuffer(bytes: body.bytes)))
    }
}
