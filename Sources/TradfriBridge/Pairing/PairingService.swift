import Foundation
import HubModel
import Logging
import MQTT
import ServiceLifecycle
import TLS
import TradfriModel

/// Device pairing: a device asks (EmonESP's legacy HTTP request, or the secure HTTPS API), the
/// user allows or denies at `tradfri-bridge pair`, and only an allowed device receives broker
/// credentials of its own, once, within a minute.
///
/// Contract:
/// - Requests are accepted only while a pairing window is open (`pair open`); see `PairingBook`
///   for every rule about who gets what.
/// - On Allow, the device's broker account is created first (dynamic security), then the one-shot
///   grant is armed; an unfetched grant expires after 60 s and its account is deleted.
/// - The registry (`pairing.registry`) is the source of truth: at start every active device's
///   account is recreated in the broker if missing, revoked ones are removed.
/// - Every request, decision, issue, fetch, expiry and revocation goes to the audit log; the
///   prompt and `bridge/event` hear about them too. No secret is ever logged or published.
public actor PairingService {
    public typealias EventSink = @Sendable (_ type: String, _ data: [String: JSON]) -> Void

    private let settings: BridgeConfiguration.Pairing
    private let broker: BrokerLocator.Choice
    private let caFingerprint: String?
    private let publishEvent: EventSink
    private let logger = Logger(label: "pairing")
    private let audit: AuditLog
    private let dynsec: DynamicSecurity
    private let stateDirectory: String
    private var book: PairingBook
    private var registry: DeviceRegistry
    /// The bridge's certificate, for the HTTPS endpoint.
    nonisolated let certificate: CertificateBundle
    /// The SHA-256 fingerprint of the HTTPS certificate (shown at the prompt, advertised in mDNS).
    public nonisolated let fingerprint: String
    /// The ports the endpoints listen on, once they do.
    public private(set) var securePort: Int?
    public private(set) var legacyPort: Int?
    private var controlListening = false
    private var watchers: [Int: @Sendable (JSON) -> Bool] = [:]
    private var nextWatcher = 0
    private var timer: Task<Void, Never>?
    private var broadcaster: Task<Void, Never>?
    private let started = ContinuousClock.now
    /// Topics of messages under the devices' prefix, in the order the bridge saw them
    /// (`noteMessage(topic:)`), until `watchMessages()` looks at them.
    private nonisolated let seen = AsyncStream.makeStream(of: String.self, bufferingPolicy: .bufferingNewest(1024))

    /// - Parameter audit: the audit log to write to (the web page writes to the same one).
    public init(
        configuration: BridgeConfiguration, broker: BrokerLocator.Choice, audit: AuditLog? = nil,
        publishEvent: @escaping EventSink
    ) throws {
        settings = configuration.pairing
        self.broker = broker
        self.publishEvent = publishEvent
        stateDirectory = configuration.stateDirectory
        self.audit = audit ?? AuditLog(path: configuration.pairing.auditLog)
        registry = try DeviceRegistry(path: configuration.pairing.registry)
        var bookSettings = PairingBook.Settings()
        bookSettings.maxPending = configuration.pairing.maxPending
        bookSettings.grantLifetime = Double(configuration.pairing.grantSeconds)
        book = PairingBook(settings: bookSettings)
        caFingerprint = configuration.mqtt.caFile.flatMap { file in
            (try? String(contentsOfFile: file, encoding: .utf8)).flatMap {
                try? CertificateBundle.fingerprint(ofPEM: $0)
            }
        }
        guard let admin = configuration.pairing.brokerAdminUser else {
            throw ConfigurationError(
                file: "configuration", line: nil, key: "pairing.broker_admin_user",
                message: "pairing needs a broker account that may manage dynamic security")
        }
        var password: String?
        if let file = configuration.pairing.brokerAdminPasswordFile {
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
                throw ConfigurationError(
                    file: file, line: nil, key: "pairing.broker_admin_password_file",
                    message: "cannot be read")
            }
            password = text.split(whereSeparator: \.isNewline).first.map(String.init)
        }
        let tls =
            broker.tls
            ? MQTTTLSConfiguration(
                caFile: configuration.mqtt.caFile, certificateFile: nil, keyFile: nil,
                insecure: configuration.mqtt.insecure) : nil
        certificate = try BridgeCertificate.load(in: stateDirectory)
        fingerprint = try certificate.fingerprint()
        dynsec = try DynamicSecurity(
            configuration: MQTTConfiguration(
                host: broker.host, port: broker.port, clientID: configuration.mqtt.clientID + "-pairing",
                username: admin,
                password: password, tls: tls, protocolVersion: .v5))
    }

    private var now: Double { (ContinuousClock.now - started).seconds }

    // MARK: Lifecycle

    /// Connects the broker account that manages device accounts and makes the broker's device
    /// accounts match the registry. The endpoints (`endpoints()`) serve requests after this.
    public func start() async throws {
        try await dynsec.start()
        try await rebuildBroker()
    }

    public func stop() async {
        timer?.cancel()
        broadcaster?.cancel()
        await dynsec.stop()
    }

    /// The services that take requests: the secure HTTPS endpoint, EmonESP's plain-HTTP one (with
    /// `pairing.legacy`), and the control socket of `tradfri-bridge pair`.
    nonisolated func endpoints() throws -> [any Service] {
        let (secureHost, securePort) = try listenAddress(settings.listen, defaultPort: 8443, key: "pairing.listen")
        var services: [any Service] = [
            HTTPEndpoint(
                name: "pairing (HTTPS)", host: secureHost, port: Int(securePort),
                tls: try BridgeCertificate.serverConfiguration(certificate),
                respond: { [weak self] request, context in
                    try await PairingEndpoints.respond(request, context) { request in
                        await self?.secure(request) ?? .text(503, "stopping")
                    }
                },
                onListening: { [weak self] port in await self?.listening(.secure, port: port) })
        ]
        if settings.legacy {
            let (host, port) = try listenAddress(settings.legacyListen, defaultPort: 80, key: "pairing.legacy_listen")
            services.append(
                HTTPEndpoint(
                    name: "pairing (EmonESP, HTTP)", host: host, port: Int(port), tls: nil,
                    respond: { [weak self] request, context in
                        try await PairingEndpoints.respond(request, context) { request in
                            await self?.legacy(request) ?? .text(503, "stopping")
                        }
                    },
                    onListening: { [weak self] port in await self?.listening(.legacy, port: port) }))
        }
        services.append(
            ControlServer(
                path: settings.controlSocket,
                handler: { [weak self] request in
                    await self?.control(request) ?? ["ok": false, "error": "stopping"]
                },
                watch: { [weak self] send in await self?.addWatcher(send) },
                onListening: { [weak self] in await self?.listening(.control, port: 0) }))
        return services
    }

    enum Endpoint {
        case secure, legacy, control
    }

    /// An endpoint listens; once all of them do, the service says it is ready.
    private func listening(_ endpoint: Endpoint, port: Int) {
        switch endpoint {
        case .secure: securePort = port
        case .legacy: legacyPort = port
        case .control: controlListening = true
        }
        guard securePort != nil, legacyPort != nil || !settings.legacy, controlListening else { return }
        logger.info(
            "pairing ready",
            metadata: [
                "pairing.listen": "\(settings.listen) (port \(securePort ?? 0))",
                "pairing.legacy": "\(legacyPort.map(String.init) ?? "off")",
                "pairing.fingerprint": "\(fingerprint)", "pairing.control": "\(settings.controlSocket)",
            ])
    }

    private nonisolated func listenAddress(
        _ text: String, defaultPort: UInt16, key: String
    ) throws -> (String, UInt16) {
        guard let (host, port) = splitHostPort(text, defaultPort: defaultPort) else {
            throw ConfigurationError(
                file: "configuration", line: nil, key: key, message: "'\(text)' is not HOST:PORT")
        }
        return (host, port)
    }

    /// Makes the broker's per-device accounts match the registry.
    private func rebuildBroker() async throws {
        for device in registry.devices {
            if device.isActive {
                if try await !dynsec.exists(username: device.username) {
                    try await dynsec.ensure(device)
                    logger.notice(
                        "restored a device's broker account from the registry", metadata: ["device": "\(device.id)"])
                }
            } else {
                try await dynsec.remove(username: device.username)
            }
        }
    }

    // MARK: Legacy EmonESP API (plain HTTP)

    static let legacyPaths: Set<String> = ["/emoncms/device/auth/request.json", "/device/auth/request.json"]

    func legacy(_ request: PairingRequest) async -> PairingResponse {
        guard Self.legacyPaths.contains(request.path) else { return .text(404, "not found") }
        guard request.method == "GET" else { return .text(405, "method not allowed") }
        let mac = NeighbourTable.mac(of: request.peer)
        let answer = book.legacyRequest(ip: request.peer, mac: mac, now: now)
        defer { armTimer() }
        switch answer {
        case .registered(let pending, let isNew):
            if isNew { requested(pending) }
            // Exactly what EmonESP compares against.
            return .text(200, "request registered")
        case .credentials(let grant):
            delivered(grant)
            let credentials = grant.credentials
            var body = "\(credentials.username):\(credentials.password):\(credentials.topicPrefix)"
            let port = settings.brokerPort ?? Int(broker.port)
            if port != 1883 { body += ":\(port)" }
            return .text(200, body)
        case .denied:
            return .text(403, "request denied")
        case .rateLimited:
            audit.rateLimited(ip: request.peer)
            return .text(429, "too many requests")
        case .full:
            return .text(503, "too many pending requests")
        case .windowClosed:
            return .text(403, "pairing is not open")
        case .invalid(let reason):
            return .text(400, reason)
        case .pending, .wrongSecret, .unknown:
            return .text(403, "request expired")
        }
    }

    // MARK: Secure API (HTTPS)

    func secure(_ request: PairingRequest) async -> PairingResponse {
        func json(_ status: Int, _ body: JSON) -> PairingResponse {
            PairingResponse(status: status, contentType: "application/json", body: body.bytes)
        }
        guard request.method == "POST" else { return json(405, ["error": "use POST"]) }
        guard let body = try? JSON(parsing: request.body), body.objectValue != nil else {
            return json(400, ["error": "the body must be a JSON object"])
        }
        let mac = NeighbourTable.mac(of: request.peer)
        defer { armTimer() }
        switch request.path {
        case "/pairing/v1/request":
            guard let name = body["name"]?.stringValue, let secret = body["secret"]?.stringValue else {
                return json(400, ["error": "give \"name\" and \"secret\""])
            }
            switch book.secureRequest(ip: request.peer, mac: mac, name: name, secret: secret, now: now) {
            case .registered(let pending, let isNew):
                if isNew { requested(pending) }
                return json(
                    202,
                    [
                        "status": "pending", "id": .string(pending.id),
                        "verification_code": .string(pending.verificationCode ?? ""),
                        "fingerprint": .string(fingerprint),
                    ])
            case .windowClosed: return json(403, ["error": "pairing is not open"])
            case .rateLimited:
                audit.rateLimited(ip: request.peer)
                return json(429, ["error": "too many requests"])
            case .full: return json(503, ["error": "too many pending requests"])
            case .invalid(let reason): return json(400, ["error": .string(reason)])
            default: return json(400, ["error": "not accepted"])
            }
        case "/pairing/v1/credentials":
            guard let id = body["id"]?.stringValue, let secret = body["secret"]?.stringValue else {
                return json(400, ["error": "give \"id\" and \"secret\""])
            }
            switch book.secureFetch(id: id, secret: secret, ip: request.peer, now: now) {
            case .credentials(let grant):
                delivered(grant)
                let credentials = grant.credentials
                let local = ["localhost", "127.0.0.1", "::1"].contains(broker.host)
                let host = settings.brokerHost ?? (local ? request.localAddress : broker.host)
                return json(
                    200,
                    [
                        "status": "approved",
                        "broker": [
                            "host": .string(host), "port": .int(settings.brokerPort ?? Int(broker.port)),
                            "tls": .bool(broker.tls),
                        ],
                        "username": .string(credentials.username), "password": .string(credentials.password),
                        "client_id": .string(credentials.username), "topic_prefix": .string(credentials.topicPrefix),
                        "ca_fingerprint": caFingerprint.map(JSON.string) ?? .null,
                    ])
            case .pending: return json(202, ["status": "pending"])
            case .denied: return json(403, ["status": "denied"])
            case .wrongSecret:
                audit.record("fetch_refused", ip: request.peer, detail: "wrong secret for request \(id)")
                return json(403, ["error": "wrong secret"])
            case .rateLimited:
                audit.rateLimited(ip: request.peer)
                return json(429, ["error": "too many requests"])
            default: return json(404, ["error": "unknown or expired request"])
            }
        default:
            return json(404, ["error": "not found"])
        }
    }

    // MARK: What happened

    private func info(_ request: PairingBook.Request) -> [String: JSON] {
        var info: [String: JSON] = [
            "id": .string(request.id), "name": .string(request.name), "ip": .string(request.ip),
            "mode": .string(request.mode.rawValue), "age": .int(Int(now - request.firstSeen)),
        ]
        if let mac = request.mac { info["mac"] = .string(mac) }
        if let code = request.verificationCode { info["verification_code"] = .string(code) }
        return info
    }

    private func requested(_ request: PairingBook.Request) {
        audit.record("request", request: request)
        logger.notice(
            "a device asks to pair",
            metadata: ["request": "\(request.id)", "ip": "\(request.ip)", "mode": "\(request.mode)"])
        publishEvent(
            "pairing_requested",
            [
                "id": .string(request.id), "name": .string(request.name),
                "ip": .string(request.ip), "mode": .string(request.mode.rawValue),
            ])
        notifyWatchers("requested", .object(info(request)))
    }

    private func delivered(_ grant: PairingBook.Grant<IssuedCredentials>) {
        try? registry.update(grant.credentials.deviceID) { $0.ip = grant.request.ip }
        guard let device = registry.device(grant.credentials.deviceID) else { return }
        audit.record("fetch", device: device)
        logger.notice("credentials fetched", metadata: ["device": "\(device.id)", "ip": "\(grant.request.ip)"])
        publishEvent("pairing_fetched", ["device": .string(device.id), "name": .string(device.name)])
        notifyWatchers(
            "fetched", ["device": .string(device.id), "name": .string(device.name), "ip": .string(device.ip)])
    }

    /// A message appeared under the devices' prefix (called on the bridge's MQTT path: it only
    /// queues the topic for `watchMessages()`).
    nonisolated func noteMessage(topic: String) {
        seen.continuation.yield(topic)
    }

    /// Looks at the topics noted by `noteMessage(topic:)`, in order, until cancelled.
    func watchMessages() async {
        for await topic in seen.stream { messageSeen(topic: topic) }
    }

    /// A message appeared under a device's prefix: it connected with its credentials.
    private func messageSeen(topic: String) {
        guard
            let device = registry.devices.first(where: {
                $0.isActive && $0.connectedAt == nil && topic.hasPrefix($0.topicPrefix + "/")
            })
        else { return }
        try? registry.update(device.id) { $0.connectedAt = Date().formatted(.iso8601) }
        audit.record("connected", device: device)
        logger.notice("device connected to the broker", metadata: ["device": "\(device.id)", "topic": "\(topic)"])
        publishEvent("pairing_connected", ["device": .string(device.id), "name": .string(device.name)])
        notifyWatchers("connected", ["device": .string(device.id), "name": .string(device.name)])
    }

    // MARK: Control channel

    /// Runs a control command (`status`, `list`, `open`, `close`, `allow`, `deny`, `devices`,
    /// `revoke`). `origin`: the administrator who took the decision on the web page, for the
    /// audit log.
    func control(_ request: JSON, origin: AuditLog.Origin? = nil) async -> JSON {
        do {
            return ["ok": true, "data": try await run(request, origin: origin)]
        } catch {
            return ["ok": false, "error": .string("\(error)")]
        }
    }

    public struct ControlError: Error, CustomStringConvertible {
        public let description: String
        init(_ description: String) { self.description = description }
    }

    private func run(_ request: JSON, origin: AuditLog.Origin?) async throws -> JSON {
        switch request["command"]?.stringValue {
        case "status":
            return status()
        case "list":
            return .array(book.pending.map { .object(info($0)) })
        case "open":
            let minutes = request["minutes"]?.intValue ?? settings.windowMinutes
            guard (1...15).contains(minutes) else { throw ControlError("a pairing window lasts 1 to 15 minutes") }
            let legacy = request["legacy"]?.boolValue ?? false
            if legacy, !settings.legacy {
                throw ControlError("legacy EmonESP pairing is off (set pairing.legacy: true and restart)")
            }
            book.open(minutes: minutes, legacy: legacy, now: now)
            audit.record("window_open", detail: "\(minutes) min\(legacy ? ", legacy" : "")", origin: origin)
            if legacy, settings.legacyBroadcast { startBroadcasting() }
            armTimer()
            notifyWatchers("window", status())
            return status()
        case "close":
            book.close()
            broadcaster?.cancel()
            audit.record("window_close", origin: origin)
            notifyWatchers("window", status())
            return status()
        case "allow":
            return try await allow(request["id"]?.stringValue ?? "", origin: origin)
        case "deny":
            let id = request["id"]?.stringValue ?? ""
            guard let denied = book.deny(id: id, now: now) else { throw ControlError("no pending request \(id)") }
            audit.record("deny", request: denied, origin: origin)
            publishEvent(
                "pairing_denied", ["id": .string(denied.id), "name": .string(denied.name), "ip": .string(denied.ip)])
            notifyWatchers("denied", .object(info(denied)))
            return .object(info(denied))
        case "devices":
            return .array(
                registry.devices.map { device in
                    var entry: [String: JSON] = [
                        "id": .string(device.id), "name": .string(device.name), "mode": .string(device.mode.rawValue),
                        "ip": .string(device.ip), "username": .string(device.username),
                        "topic_prefix": .string(device.topicPrefix), "paired_at": .string(device.pairedAt),
                        "state": .string(
                            device.revokedAt != nil ? "revoked" : device.connectedAt != nil ? "connected" : "paired"),
                    ]
                    if let mac = device.mac { entry["mac"] = .string(mac) }
                    return .object(entry)
                })
        case "revoke":
            return try await revoke(request["device"]?.stringValue ?? "", origin: origin)
        default:
            throw ControlError(
                "unknown command (known: status, list, open, close, allow, deny, devices, revoke, watch)")
        }
    }

    private func status() -> JSON {
        var window: JSON = .null
        if let open = book.window, book.isOpen(now: now) {
            window = ["seconds_left": .int(Int(open.until - now)), "legacy": .bool(open.legacy)]
        }
        return [
            "window": window, "pending": .int(book.pending.count),
            "devices": .int(registry.devices.filter(\.isActive).count),
            "fingerprint": .string(fingerprint),
            "secure_port": securePort.map(JSON.int) ?? .null,
            "legacy_port": legacyPort.map(JSON.int) ?? .null,
        ]
    }

    private func allow(_ id: String, origin: AuditLog.Origin?) async throws -> JSON {
        guard let request = book.request(id: id) else { throw ControlError("no pending request \(id)") }
        let suffix = Crypto.randomToken(length: 4).lowercased()
        let base =
            request.mode == .legacy
            ? "emonesp" : String(FriendlyNames.slug(request.name, fallback: "device").prefix(20))
        let deviceID = "\(base)-\(suffix)".replacingOccurrences(of: "_", with: "-")
        let device = PairedDevice(
            id: deviceID, name: request.name, mode: request.mode, ip: request.ip, mac: request.mac,
            username: "dev-\(deviceID)", password: Crypto.randomToken(length: 32),
            topicPrefix: "\(settings.topicPrefix)/\(deviceID)", pairedAt: Date().formatted(.iso8601))
        // The broker account exists before anyone can collect it.
        do {
            try await dynsec.ensure(device)
        } catch {
            throw ControlError("could not create the device's broker account: \(error)")
        }
        let credentials = IssuedCredentials(
            deviceID: deviceID, username: device.username, password: device.password,
            topicPrefix: device.topicPrefix)
        guard book.allow(id: id, credentials: credentials, now: now) != nil else {
            try? await dynsec.remove(username: device.username)
            throw ControlError("request \(id) expired meanwhile")
        }
        try registry.add(device)
        armTimer()
        audit.record("allow", request: request, origin: origin)
        audit.record("issue", device: device)
        publishEvent(
            "pairing_allowed", ["id": .string(request.id), "name": .string(request.name), "device": .string(deviceID)])
        notifyWatchers(
            "allowed",
            [
                "id": .string(request.id), "name": .string(request.name), "device": .string(deviceID),
                "seconds_to_fetch": .int(Int(book.settings.grantLifetime)),
            ])
        return [
            "device": .string(deviceID), "username": .string(device.username),
            "topic_prefix": .string(device.topicPrefix),
        ]
    }

    private func revoke(_ key: String, origin: AuditLog.Origin?) async throws -> JSON {
        guard let device = registry.device(key), device.isActive else {
            throw ControlError("no active paired device \(key)")
        }
        do {
            try await dynsec.remove(username: device.username)
        } catch {
            throw ControlError("the broker did not remove the account: \(error)")
        }
        try registry.update(device.id) { $0.revokedAt = Date().formatted(.iso8601) }
        audit.record("revoke", device: device, origin: origin)
        logger.notice("device revoked", metadata: ["device": "\(device.id)"])
        publishEvent("pairing_revoked", ["device": .string(device.id), "name": .string(device.name)])
        notifyWatchers("revoked", ["device": .string(device.id), "name": .string(device.name)])
        return ["device": .string(device.id), "state": "revoked"]
    }

    /// Whether the legacy EmonESP option may be offered (`pairing.legacy`).
    nonisolated var legacyAllowed: Bool { settings.legacy }

    /// The newest entries of the audit log, newest first.
    nonisolated func recentAudit(_ count: Int) -> [JSON] { audit.recent(count) }

    // MARK: Watchers (the interactive prompt, the web page)

    func addWatcher(_ send: @escaping @Sendable (JSON) -> Bool) {
        nextWatcher += 1
        let id = nextWatcher
        var snapshot = status()
        snapshot["pending_requests"] = .array(book.pending.map { .object(info($0)) })
        guard send(["event": "snapshot", "data": snapshot]) else { return }
        watchers[id] = send
    }

    private func notifyWatchers(_ event: String, _ data: JSON) {
        for (id, send) in watchers where !send(["event": .string(event), "data": data]) {
            watchers[id] = nil
        }
    }

    // MARK: Expiry (a timer only while something can expire)

    private func armTimer() {
        timer?.cancel()
        guard let deadline = book.nextDeadline() else {
            timer = nil
            return
        }
        let delay = max(deadline - now, 0) + 0.05
        timer = Task { [weak self] in
            try? await Task.sleep(for: .milliseconds(Int(delay * 1000)))
            guard !Task.isCancelled else { return }
            await self?.expireNow()
        }
    }

    private func expireNow() async {
        for item in book.expire(now: now) {
            switch item {
            case .request(let request):
                audit.record("expire", request: request)
                publishEvent("pairing_expired", ["id": .string(request.id), "name": .string(request.name)])
                notifyWatchers("expired", .object(info(request)))
            case .grant(let grant):
                // Allowed but never collected: the account goes away again.
                try? await dynsec.remove(username: grant.credentials.username)
                if let device = registry.device(grant.credentials.deviceID) {
                    try? registry.update(device.id) { $0.revokedAt = Date().formatted(.iso8601) }
                    audit.record("expire_unfetched", device: device)
                }
                publishEvent(
                    "pairing_expired",
                    [
                        "id": .string(grant.request.id), "name": .string(grant.request.name),
                        "device": .string(grant.credentials.deviceID),
                    ])
                notifyWatchers(
                    "expired",
                    [
                        "id": .string(grant.request.id), "name": .string(grant.request.name),
                        "unfetched": true,
                    ])
            case .window:
                broadcaster?.cancel()
                audit.record("window_close", detail: "timed out")
                notifyWatchers("window", status())
            }
        }
        armTimer()
    }

    // MARK: EmonESP broadcast

    /// While a legacy window is open: "emonpi.local" to 255.255.255.255:5005 every 5 s. Every
    /// EmonESP on the LAN then points its broker at this host (the reference's warning).
    private func startBroadcasting() {
        broadcaster?.cancel()
        logger.warning("broadcasting emonpi.local: every EmonESP on the LAN will re-point its MQTT broker to this host")
        broadcaster = Task { [weak self] in
            while !Task.isCancelled {
                guard let self, await self.book.isLegacyOpen(now: await self.now) else { return }
                EmonBroadcast.send()
                try? await Task.sleep(for: .seconds(5))
            }
        }
    }
}

/// The `emonpi.local` discovery datagram EmonESP listens for on UDP port 5005: sent to
/// 255.255.255.255 and to the broadcast address of every IPv4 interface (a host without a
/// default route cannot send the former; a host on several LANs reaches each of them).
enum EmonBroadcast {
    static func send(port: UInt16 = 5005) {
        var targets = ["255.255.255.255"]
        var list: UnsafeMutablePointer<ifaddrs>?
        if getifaddrs(&list) == 0, let list {
            var cursor: UnsafeMutablePointer<ifaddrs>? = list
            while let entry = cursor?.pointee {
                cursor = entry.ifa_next
                guard entry.ifa_flags & UInt32(IFF_BROADCAST) != 0, entry.ifa_flags & UInt32(IFF_LOOPBACK) == 0,
                    let address = entry.ifa_addr, address.pointee.sa_family == sa_family_t(AF_INET),
                    let mask = entry.ifa_netmask
                else { continue }
                // address | ~netmask (the kernel's own broadcast address may be unset).
                let host = address.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_addr.s_addr }
                let netmask = mask.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_addr.s_addr }
                var broadcast = in_addr(s_addr: host | ~netmask)
                var text = [CChar](repeating: 0, count: Int(INET_ADDRSTRLEN))
                _ = inet_ntop(AF_INET, &broadcast, &text, socklen_t(text.count))
                targets.append(String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
            }
            freeifaddrs(list)
        }
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        guard fd >= 0 else { return }
        defer { close(fd) }
        var yes: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_BROADCAST, &yes, socklen_t(MemoryLayout<Int32>.size))
        let payload = Array("emonpi.local".utf8)
        for target in Set(targets) {
            var destination = sockaddr_in()
            destination.sin_family = sa_family_t(AF_INET)
            destination.sin_port = port.bigEndian
            inet_pton(AF_INET, target, &destination.sin_addr)
            _ = withUnsafePointer(to: &destination) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    sendto(fd, payload, payload.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
        }
    }
}
