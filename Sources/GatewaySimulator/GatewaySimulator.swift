import CoAP
import Foundation
import HubModel
import Logging
import TradfriModel

/// An IKEA TRÅDFRI gateway (E1526) on libcoap's server API, faithful to
/// tradfri-gateway-protocol.md including the quirks a bridge must survive.
///
/// Contract:
/// - `@CoAPActor`, like all libcoap work; handlers answer synchronously.
/// - Only `Client_identity` with the security code may connect without a created identity, and it
///   may only `POST 15011/9063`. Identities persist in the state directory.
/// - Every change (a client's PUT, a scene, a moving blind, a control command) notifies all
///   observers of the changed resource with its full representation. Group on/off/dim does not
///   notify the group resource (only its member lights), as on the real gateway.
/// - `reboot()` sends a 1003 notification, drops every session and observation, and serves again
///   after `rebootDelay` on the same port with the same identities.
@CoAPActor
public final class GatewaySimulator {
    public struct Configuration: Sendable {
        public var host: String = "127.0.0.1"
        public var port: UInt16 = 5684
        public var securityCode: String
        public var fixture: Fixture
        public var stateDirectory: String?
        public var rebootDelay: Duration = .seconds(3)
        /// How fast blinds move, in percent of full travel per second.
        public var blindSpeed: Double = 25
        public var requestLogPath: String?
        /// Fraction (0…1) of datagrams lost in each direction (through a lossy UDP relay).
        public var dropRate: Double = 0
        /// Seed of the loss pattern; nil for a random one.
        public var dropSeed: UInt64?
        /// Serve behind the relay even without random loss (for `dropNext`).
        public var relay = false

        public init(securityCode: String, fixture: Fixture = .demoHome()) {
            self.securityCode = securityCode
            self.fixture = fixture
        }
    }

    public let configuration: Configuration
    let logger = Logger(label: "tradfri-gateway-sim")
    var server: CoAPServer?
    var relay: LossyRelay?
    var identities: IdentityStore
    let requestLog: RequestLog?

    // Gateway content, each resource as the JSON it serves.
    var details: JSON
    var devices: [Int: JSON]
    var groups: [Int: JSON]
    var scenes: [Int: [Int: JSON]]
    var notifications: [JSON] = []
    var blindTargets: [Int: Double] = [:]
    /// One-shot raw bodies served instead of a device's JSON (the real gateway sometimes answers
    /// `{"r":"06"}` or an empty body under stress).
    var oddAnswers: [Int: String] = [:]
    /// Devices whose changes notify nobody (`mute`): a gateway that stops notifying one device.
    var mutedDevices: Set<Int> = []
    /// Sessions (by peer) that get no answer to any request, only pings answered and empty
    /// acknowledgements (`half-dead`); nil when none.
    var halfDeadPeers: Set<String>?
    /// No notification goes out while a half-dead session is the newest one (until a handshake).
    var notificationsPaused = false
    /// Every peer that sent a request in this run.
    var peersSeen: Set<String> = []
    var blindTimer: Task<Void, Never>?
    private var rebooting = false
    /// Answers to recent POSTs by peer and message ID: a retransmitted POST (its ACK was lost) gets
    /// the same answer instead of being carried out twice (RFC 7252 §4.5).
    private var recentPosts: [String: (answer: CoAPServerResponse, time: ContinuousClock.Instant)] = [:]

    /// Called after every request the simulator handled (benchmarks timestamp PUTs with it).
    public var onRequest: (@CoAPActor (CoAPRequest) -> Void)?

    public init(_ configuration: Configuration) throws {
        self.configuration = configuration
        identities = try IdentityStore(directory: configuration.stateDirectory)
        requestLog = try configuration.requestLogPath.map { try RequestLog(path: $0) }
        details = configuration.fixture.gateway
        devices = configuration.fixture.devices
        groups = configuration.fixture.groups
        scenes = configuration.fixture.scenes
    }

    public var gatewayID: String { details[GatewayKey.gatewayID]?.stringValue ?? "" }
    public var firmware: String { details[GatewayKey.gatewayFirmware]?.stringValue ?? "" }
    /// The port clients use (the relay's when `dropRate` > 0).
    public var port: UInt16 { relay?.port ?? server?.port ?? configuration.port }
    public var isServing: Bool { server?.isRunning ?? false }

    // MARK: Lifecycle

    /// Binds and serves. With a drop rate, the DTLS endpoint listens on a private port behind a
    /// lossy relay that owns the configured port.
    public func start() throws {
        let server: CoAPServer
        if configuration.dropRate > 0 || configuration.relay {
            server = CoAPServer(host: "127.0.0.1", port: 0) { [weak self] in self?.key(for: $0) }
            try server.start()
            relay = try LossyRelay(
                listenHost: configuration.host, listenPort: configuration.port,
                upstreamPort: server.port, dropRate: configuration.dropRate,
                seed: configuration.dropSeed)
        } else {
            server = CoAPServer(host: configuration.host, port: configuration.port) { [weak self] in self?.key(for: $0)
            }
            try server.start()
        }
        self.server = server
        registerResources()
    }

    /// Loses exactly the next datagrams between clients and the gateway (needs `relay` or a drop
    /// rate): a lost acknowledgement, request or answer, on cue.
    public func dropNext(toGateway: Int, fromGateway: Int) throws {
        guard let relay else { throw Fixture.Error.invalid("the simulator runs without its relay (--relay)") }
        relay.dropNext(toGateway: toGateway, fromGateway: fromGateway)
    }

    public func stop() {
        blindTimer?.cancel()
        blindTimer = nil
        server?.stop()
        server = nil
        relay?.stop()
        relay = nil
    }

    /// Reboots like `POST 15011/9030` (reason 1 = by a client, -1 = default).
    public func reboot(reason: Int = -1) {
        guard !rebooting, let server else { return }
        rebooting = true
        logger.info("rebooting", metadata: ["reason": "\(reason)"])
        notifications.append([
            "9002": .int(Int(Date().timeIntervalSince1970)), "9014": 1, "9015": .int(GatewayEvent.rebooting),
            "9017": .array([.string("9052=\(reason)")]),
        ])
        server.notifyObservers(GatewayPath.notifications)
        let delay = configuration.rebootDelay
        Task { @CoAPActor [weak self] in
            // Let the response and the notification leave before the sessions are dropped.
            try? await Task.sleep(for: .milliseconds(150))
            guard let self, let server = self.server else { return }
            server.stop()
            // Every session is gone: none is half-dead any more.
            self.halfDeadPeers = nil
            self.notificationsPaused = false
            self.blindTimer?.cancel()
            self.blindTimer = nil
            try? await Task.sleep(for: delay)
            guard self.server === server else { return }
            self.notifications.removeAll()
            do {
                try server.start()
                self.logger.info("serving again after reboot")
            } catch {
                self.logger.error("could not serve again after reboot", metadata: ["error": "\(error)"])
            }
            self.rebooting = false
        }
    }

    // MARK: Identities

    private func key(for identity: String) -> [UInt8]? {
        // A new session after `half-dead`: notifications flow again (to the sessions that work).
        if notificationsPaused, identity != bootstrapIdentity { notificationsPaused = false }
        if identity == bootstrapIdentity { return Array(configuration.securityCode.utf8) }
        return identities.key(for: identity).map { Array($0.utf8) }
    }

    // MARK: Resources

    private func registerResources() {
        guard let server else { return }
        let handler: CoAPServer.Handler = { [weak self] request in
            self?.handle(request) ?? CoAPServerResponse(code: .serviceUnavailable)
        }
        server.addResource(GatewayPath.devices, handler: handler)
        for id in devices.keys { server.addResource(GatewayPath.device(id), handler: handler) }
        server.addResource(GatewayPath.groups, handler: handler)
        for id in groups.keys { server.addResource(GatewayPath.group(id), handler: handler) }
        server.addResource(GatewayPath.scenes, handler: handler)
        for (group, list) in scenes {
            server.addResource(GatewayPath.scenes(ofGroup: group), handler: handler)
            for id in list.keys { server.addResource(GatewayPath.scene(id, ofGroup: group), handler: handler) }
        }
        server.addResource(GatewayPath.notifications, handler: handler)
        server.addResource(GatewayPath.gatewayDetails, handler: handler)
        server.addResource(GatewayPath.authenticate, observable: false, handler: handler)
        server.addResource(GatewayPath.reboot, observable: false, handler: handler)
    }

    var resourceHandler: CoAPServer.Handler {
        { [weak self] request in self?.handle(request) ?? CoAPServerResponse(code: .serviceUnavailable) }
    }

    func handle(_ request: CoAPRequest) -> CoAPServerResponse {
        peersSeen.insert(request.peer)
        // A half-dead session: the request is acknowledged (empty ACK) and never answered.
        if halfDeadPeers?.contains(request.peer) == true { return CoAPServerResponse(code: CoAPCode(rawValue: 0)) }
        guard request.method == .post else { return route(request) }
        let key = "\(request.peer)#\(request.messageID)"
        let now = ContinuousClock.now
        recentPosts = recentPosts.filter { now - $0.value.time < .seconds(247) }  // EXCHANGE_LIFETIME
        if let earlier = recentPosts[key] { return earlier.answer }
        let answer = route(request)
        recentPosts[key] = (answer, now)
        return answer
    }

    private func route(_ request: CoAPRequest) -> CoAPServerResponse {
        if request.method != .get || !request.observe {
            requestLog?.record(
                method: request.method.rawValue, path: request.path, identity: request.identity,
                payload: request.payload)
        }
        defer { onRequest?(request) }
        // Since firmware 1.2.42 the bootstrap identity may only create identities.
        if request.identity == bootstrapIdentity, request.path != GatewayPath.authenticate {
            return CoAPServerResponse(code: .unauthorized)
        }
        let parts = request.path.split(separator: "/").compactMap { Int($0) }
        switch (request.method, request.path) {
        case (.post, GatewayPath.authenticate):
            return authenticate(request)
        case (.post, GatewayPath.reboot):
            Task { @CoAPActor [weak self] in self?.reboot(reason: 1) }
            return CoAPServerResponse(code: .created)
        case (.get, GatewayPath.devices):
            return list(devices.keys)
        case (.get, GatewayPath.groups):
            return list(groups.keys)
        case (.get, GatewayPath.scenes):
            return list(scenes.keys)
        case (.get, GatewayPath.notifications):
            return content(.array(notifications))
        case (.get, GatewayPath.gatewayDetails):
            return content(currentDetails())
        case (.put, GatewayPath.gatewayDetails):
            return putGatewayDetails(request)
        default:
            break
        }
        switch (request.path.first, parts.count) {
        case ("1", 2) where parts[0] == 15001:
            guard let device = devices[parts[1]] else { return CoAPServerResponse(code: .notFound) }
            if request.method == .get, let odd = oddAnswers.removeValue(forKey: parts[1]) {
                return CoAPServerResponse(code: .content, json: odd)
            }
            if request.method == .get { return content(device) }
            if request.method == .put { return putDevice(parts[1], request.payload, source: request.identity) }
        case ("1", 2) where parts[0] == 15004:
            guard let group = groups[parts[1]] else { return CoAPServerResponse(code: .notFound) }
            if request.method == .get { return content(group) }
            if request.method == .put { return putGroup(parts[1], request.payload) }
        case ("1", 2) where parts[0] == 15005:
            guard let list = scenes[parts[1]] else { return CoAPServerResponse(code: .notFound) }
            if request.method == .get { return self.list(list.keys) }
        case ("1", 3) where parts[0] == 15005:
            guard let scene = scenes[parts[1]]?[parts[2]] else { return CoAPServerResponse(code: .notFound) }
            if request.method == .get { return content(scene) }
            if request.method == .put { return putScene(group: parts[1], id: parts[2], request.payload) }
        default:
            break
        }
        return CoAPServerResponse(code: .methodNotAllowed)
    }

    func content(_ json: JSON) -> CoAPServerResponse {
        CoAPServerResponse(code: .content, json: json.description)
    }

    private func list<C: Collection<Int>>(_ ids: C) -> CoAPServerResponse {
        content(.array(ids.sorted().map { .int($0) }))
    }

    private func currentDetails() -> JSON {
        var details = self.details
        let now = Date()
        details[GatewayKey.gatewayTime] = .int(Int(now.timeIntervalSince1970))
        details[GatewayKey.gatewayTimeISO] = .string(now.formatted(.iso8601))
        return details
    }

    private func authenticate(_ request: CoAPRequest) -> CoAPServerResponse {
        guard request.identity == bootstrapIdentity else { return CoAPServerResponse(code: .unauthorized) }
        guard let body = try? JSON(parsing: request.payload),
            let identity = body[GatewayKey.identity]?.stringValue, !identity.isEmpty
        else {
            return CoAPServerResponse(code: .badRequest)
        }
        guard identity != bootstrapIdentity, let key = identities.create(identity) else {
            logger.info("identity already exists", metadata: ["identity": "\(identity)"])
            return CoAPServerResponse(code: .badRequest)
        }
        logger.info("created identity", metadata: ["identity": "\(identity)"])
        return CoAPServerResponse(
            code: .created,
            json: JSON.object([
                GatewayKey.psk: .string(key), GatewayKey.gatewayFirmware: .string(firmware),
            ]).description)
    }

    private func putGatewayDetails(_ request: CoAPRequest) -> CoAPServerResponse {
        guard let body = try? JSON(parsing: request.payload), body.objectValue != nil else {
            return CoAPServerResponse(code: .badRequest)
        }
        if let seconds = body[GatewayKey.commissioningMode]?.intValue {
            details[GatewayKey.commissioningMode] = .int(seconds)
            server?.notifyObservers(GatewayPath.gatewayDetails)
        }
        return CoAPServerResponse(code: .changed)
    }

    // MARK: Changing the content (also used by control commands)

    func notify(_ path: String) {
        guard !notificationsPaused else { return }
        let parts = path.split(separator: "/")
        if parts.count == 2, parts[0] == "15001", let id = Int(parts[1]), mutedDevices.contains(id) { return }
        server?.notifyObservers(path)
    }

    public func addDevice(_ device: JSON) throws {
        guard let id = device[GatewayKey.instanceID]?.intValue else {
            throw Fixture.Error.invalid("device has no 9003")
        }
        devices[id] = device
        server?.addResource(GatewayPath.device(id), handler: resourceHandler)
        notify(GatewayPath.devices)
    }

    public func removeDevice(_ id: Int) {
        guard devices.removeValue(forKey: id) != nil else { return }
        blindTargets[id] = nil
        server?.removeResource(GatewayPath.device(id))
        notify(GatewayPath.devices)
        for (groupID, group) in groups {
            let members = memberIDs(of: group)
            guard members.contains(id) else { continue }
            var updated = group
            updated[GatewayKey.groupMembers] = [
                GatewayKey.groupMemberLink: [
                    GatewayKey.instanceID: .array(
                        members.filter { $0 != id }.map { .int($0) })
                ]
            ]
            groups[groupID] = updated
            notify(GatewayPath.group(groupID))
        }
    }

    public func addGroup(_ group: JSON) throws {
        guard let id = group[GatewayKey.instanceID]?.intValue else { throw Fixture.Error.invalid("group has no 9003") }
        groups[id] = group
        server?.addResource(GatewayPath.group(id), handler: resourceHandler)
        notify(GatewayPath.groups)
    }

    public func removeGroup(_ id: Int) {
        guard groups.removeValue(forKey: id) != nil else { return }
        server?.removeResource(GatewayPath.group(id))
        for sceneID in scenes[id]?.keys ?? [:].keys {
            server?.removeResource(GatewayPath.scene(sceneID, ofGroup: id))
        }
        if scenes.removeValue(forKey: id) != nil {
            server?.removeResource(GatewayPath.scenes(ofGroup: id))
            notify(GatewayPath.scenes)
        }
        notify(GatewayPath.groups)
    }

    public func addScene(_ scene: JSON, toGroup group: Int) throws {
        guard groups[group] != nil else { throw Fixture.Error.invalid("no group \(group)") }
        guard let id = scene[GatewayKey.instanceID]?.intValue else { throw Fixture.Error.invalid("scene has no 9003") }
        let isNewList = scenes[group] == nil
        scenes[group, default: [:]][id] = scene
        server?.addResource(GatewayPath.scene(id, ofGroup: group), handler: resourceHandler)
        if isNewList {
            server?.addResource(GatewayPath.scenes(ofGroup: group), handler: resourceHandler)
            notify(GatewayPath.scenes)
        }
        notify(GatewayPath.scenes(ofGroup: group))
    }

    public func removeScene(_ id: Int, fromGroup group: Int) {
        guard scenes[group]?.removeValue(forKey: id) != nil else { return }
        server?.removeResource(GatewayPath.scene(id, ofGroup: group))
        notify(GatewayPath.scenes(ofGroup: group))
    }

    /// The current JSON of a device (for tests and benchmarks in the same process).
    public func device(_ id: Int) -> JSON? { devices[id] }
    public func group(_ id: Int) -> JSON? { groups[id] }
    public var deviceIDs: [Int] { devices.keys.sorted() }
    /// The key of a created identity (tests use it to reconnect after a reboot).
    public func identityKeyForTests(_ identity: String) -> String? { identities.key(for: identity) }

    func memberIDs(of group: JSON) -> [Int] {
        group[GatewayKey.groupMembers]?[GatewayKey.groupMemberLink]?[GatewayKey.instanceID]?.arrayValue?
            .compactMap(\.intValue) ?? []
    }
}
