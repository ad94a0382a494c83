import CoAP
import Foundation
import HubModel
import Logging
import TradfriModel

/// What a hub needs to know about its gateway: its name, credentials, where to find it, and the
/// per-gateway settings of the configuration.
public struct HubSetup: Sendable {
    public var name: String
    public var credentials: GatewayCredentials
    public var keepAlive: Double
    public var requestTimeout: Double
    public var commandSpacing: Double
    public var reconnectMaxDelay: Double
    public var auditInterval: Double

    public init(
        name: String, credentials: GatewayCredentials, keepAlive: Double = 10, requestTimeout: Double = 10,
        commandSpacing: Double = 0.5, reconnectMaxDelay: Double = 60, auditInterval: Double = 600
    ) {
        self.name = name
        self.credentials = credentials
        self.keepAlive = keepAlive
        self.requestTimeout = requestTimeout
        self.commandSpacing = commandSpacing
        self.reconnectMaxDelay = reconnectMaxDelay
        self.auditInterval = auditInterval
    }
}

/// One TRÅDFRI gateway as a `Hub`: its DTLS session (`GatewayLink`), its copy (`GatewayMirror`),
/// its command queue and its locator, with the translation between the gateway's model and the
/// hub-neutral one. Everything TRÅDFRI-specific the features need ends here.
@CoAPActor
public final class TradfriHub: Hub {
    public let name: String
    public let kind = "tradfri"
    public let link: GatewayLink
    public let mirror: GatewayMirror
    let queue: CommandQueue
    private let locator: GatewayLocator
    private let credentialsGatewayID: String
    private let logger = Logger(label: "gateway")
    private var handler: @CoAPActor (HubEvent) -> Void = { _ in }
    /// Short work started by events (ended when `run()` ends).
    private let tasks = Tasks()
    public private(set) var devices: [ItemID: HubDevice] = [:]
    public private(set) var groups: [ItemID: HubGroup] = [:]
    public private(set) var address: String?
    public private(set) var needsPairing = false
    /// Silent stalls found (a half-dead session, notifications that stopped) and recovered from.
    public private(set) var stallsDetected = 0

    public init(_ setup: HubSetup, locator: GatewayLocator) {
        name = setup.name
        credentialsGatewayID = setup.credentials.gatewayID
        self.locator = locator
        var settings = GatewayLink.Settings()
        settings.keepAlive = .seconds(setup.keepAlive)
        settings.pingTimeout = .seconds(min(5, setup.keepAlive))
        settings.requestTimeout = .seconds(setup.requestTimeout)
        settings.handshakeTimeout = .seconds(max(setup.requestTimeout, 5))
        settings.reconnectMaxDelay = .seconds(setup.reconnectMaxDelay)
        link = GatewayLink(identity: setup.credentials.identity, key: setup.credentials.psk, settings: settings) {
            try await locator.resolve()
        }
        var mirrorSettings = GatewayMirror.Settings()
        mirrorSettings.auditInterval = setup.auditInterval > 0 ? .seconds(setup.auditInterval) : nil
        let mirror = GatewayMirror(link: link, settings: mirrorSettings)
        self.mirror = mirror
        queue = CommandQueue(link: link, spacing: .seconds(setup.commandSpacing)) { [weak mirror] target, command in
            guard let mirror else { return (nil, nil) }
            switch target {
            case .device(let id):
                guard let device = mirror.devices[id] else { return (nil, nil) }
                return CommandPlanner.plan(command, for: device)
            case .group(let id):
                guard let group = mirror.groups[id] else { return (nil, nil) }
                // A group part (CommandPlanner.split) becomes one write; members have their own commands.
                return (CommandPlanner.plan(command, for: group, members: []).write, nil)
            }
        }
    }

    public var hardwareID: String { mirror.details?.id ?? credentialsGatewayID }
    public var connected: Bool { link.isConnected }
    public var firmware: String? { mirror.details?.firmware }
    public var lastContact: Date? { link.lastContact }

    public func setEventHandler(_ handler: @escaping @CoAPActor (HubEvent) -> Void) {
        self.handler = handler
    }

    public func run() async {
        mirror.onChange { [weak self] change in self?.mirrorChanged(change) }
        queue.onResult { [weak self] result in self?.commandFinished(result) }
        await link.run(
            { [weak self] event in self?.linkEvent(event) },
            // While each session lasts: observe everything afresh and keep it equal.
            whileConnected: { [weak self] in await self?.mirror.serve() })
        tasks.cancelAll()
    }

    // MARK: The session

    private func linkEvent(_ event: GatewayLink.Event) {
        switch event {
        case .connected(let host, let port):
            address = "\(host):\(port)"
            if needsPairing {
                needsPairing = false
                handler(.change(.info))
            }
            // The locator remembers the address that worked (the next lookup tries it first).
            tasks.start { [locator] in await locator.connected(host: host, port: port) }
            handler(.connected(address: "\(host):\(port)"))
        case .disconnected(let reason):
            queue.discardAll(reason: "the gateway went offline before the command was sent")
            handler(.disconnected(reason: reason.map { "\($0)" } ?? "closed"))
        case .connectFailed(let error):
            if case .unknownIdentity = error {
                logger.error(
                    "the gateway no longer knows our identity; pair again with 'tradfri-bridge auth'",
                    metadata: ["gateway": "\(name)", "gateway.id": "\(credentialsGatewayID)"])
                if !needsPairing {
                    needsPairing = true
                    handler(.change(.info))
                }
            }
            handler(.connectFailed(reason: "\(error)"))
        case .stalled(let detail):
            stallsDetected += 1
            handler(.change(.stalled(detail + "; connecting afresh")))
        }
    }

    // MARK: The copy, translated

    private func mirrorChanged(_ change: GatewayMirror.Change) {
        switch change {
        case .details(let details):
            if details.id != credentialsGatewayID {
                logger.error(
                    "this gateway is not the one the credentials belong to",
                    metadata: [
                        "gateway": "\(name)", "gateway.id": "\(details.id)", "expected": "\(credentialsGatewayID)",
                    ])
            }
            handler(.change(.info))
        case .rebootAnnounced:
            link.reset(reason: "the gateway is rebooting")
        case .deviceAdded(let device), .deviceChanged(let device, _):
            let translated = device.hubDevice(hub: name)
            let previous = devices.updateValue(translated, forKey: translated.id)
            if let previous {
                if previous != translated { handler(.change(.deviceChanged(translated, previous: previous))) }
            } else {
                handler(.change(.deviceAdded(translated)))
            }
        case .deviceRemoved(let device):
            if let removed = devices.removeValue(forKey: ItemID(hub: name, device.id)) {
                handler(.change(.deviceRemoved(removed)))
            }
        case .groupAdded(let group), .groupChanged(let group, _):
            updateGroup(group)
        case .scenesChanged(let id):
            if let group = mirror.groups[id] { updateGroup(group) }
        case .groupRemoved(let group):
            if let removed = groups.removeValue(forKey: ItemID(hub: name, group.id)) {
                handler(.change(.groupRemoved(removed)))
            }
        case .synced:
            handler(.change(.synced))
        case .fullRead:
            handler(.change(.fullRead))
        case .repaired(let repair):
            handler(
                .change(
                    .repaired(
                        kind: repair.kind, id: ItemID(hub: name, repair.id), name: repair.name,
                        reason: repair.reason.rawValue)))
        case .notificationsStalled(let detail):
            stallsDetected += 1
            handler(.change(.stalled(detail + "; every observation is registered again")))
        }
    }

    private func updateGroup(_ group: Group) {
        let scenes = (mirror.scenes[group.id] ?? [:]).values.map { $0 }
        let translated = group.hubGroup(hub: name, scenes: scenes)
        let previous = groups.updateValue(translated, forKey: translated.id)
        if let previous {
            if previous != translated { handler(.change(.groupChanged(translated, previous: previous))) }
        } else {
            handler(.change(.groupAdded(translated)))
        }
    }

    // MARK: Commands

    public func send(_ command: DeviceCommand, to target: ItemID, topic: String) {
        guard let id = target.number else { return }
        if mirror.devices[id] != nil {
            queue.enqueue(command, for: .device(id), topic: topic)
        } else if let group = mirror.groups[id] {
            let members = group.memberIDs.compactMap { mirror.devices[$0] }
            let split = CommandPlanner.split(command, for: group, members: members)
            if let groupPart = split.group {
                queue.enqueue(groupPart, for: .group(id), topic: topic)
            }
            for (member, memberCommand) in split.members.sorted(by: { $0.key < $1.key }) {
                queue.enqueue(memberCommand, for: .device(member), topic: topic)
            }
        }
    }

    public func pendingCommand(for target: ItemID) -> DeviceCommand? {
        guard let id = target.number else { return nil }
        return queue.pendingCommand(for: mirror.devices[id] != nil ? .device(id) : .group(id))
    }

    public func setCommandSpacing(_ spacing: Duration) {
        queue.spacing = spacing
    }

    private func commandFinished(_ result: CommandQueue.Result) {
        // The effect is confirmed by the gateway, not assumed: what it changed must notify, or
        // it is read again (also after a failure: a command that timed out may have arrived).
        if !result.write.path.isEmpty {
            mirror.expectNotification(from: mirror.affected(by: result.target))
        }
        handler(.commandFinished(topic: result.topic, error: result.error, description: "\(result.write)"))
    }

    // MARK: Requests

    public func reread(device: ItemID) async throws -> HubDevice? {
        guard let id = device.number else { return nil }
        _ = try await mirror.reread(device: id)
        return devices[device]
    }

    public func resync(within limit: Duration) async -> Bool {
        await mirror.resync(within: limit)
    }

    /// POST 15011/9030. The gateway answers, announces the reboot and drops every session; the
    /// link reconnects by itself.
    public func reboot() async throws {
        guard connected else { throw HubError("the gateway is offline") }
        let response: CoAPResponse
        do {
            response = try await link.request(.post, GatewayPath.reboot, priority: .command)
        } catch {
            throw HubError("the gateway did not answer: \(error)")
        }
        guard response.code.isSuccess else { throw HubError("the gateway refused to reboot (\(response.code))") }
    }

    /// PUT 9001 on the device or group, as the IKEA app does.
    public func rename(_ item: ItemID, to newName: String) async throws {
        guard let id = item.number else { throw HubError("no such item") }
        let path = mirror.devices[id] != nil ? GatewayPath.device(id) : GatewayPath.group(id)
        guard connected else { throw HubError("the gateway is offline") }
        let body: JSON = [GatewayKey.name: .string(newName)]
        let response: CoAPResponse
        do {
            response = try await link.request(.put, path, payload: body.bytes, priority: .command)
        } catch {
            throw HubError("the gateway did not answer: \(error)")
        }
        guard response.code.isSuccess else { throw HubError("the gateway refused the new name (\(response.code))") }
    }

    // MARK: Figures

    /// How fresh the copy is: when everything was last read in full, what still waits to be
    /// read, how long ago the least recently confirmed item was heard from, what re-reads found,
    /// and what the session learnt about the link.
    public var viewFigures: JSON {
        var view: [String: JSON] = [
            "observed": .int(mirror.observedCount),
            "pending_rereads": .int(mirror.pendingRereads),
            "rereads": .int(mirror.rereads),
            "repairs": .int(mirror.repairs),
            "stalls_detected": .int(stallsDetected),
        ]
        if let read = mirror.lastFullRead { view["last_full_read"] = .string(read.formatted(.iso8601)) }
        if let age = mirror.oldestCheck { view["oldest_check_seconds"] = .double((age.seconds * 10).rounded() / 10) }
        if let link = link.statistics {
            view["retransmission_timeout"] = .double((link.retransmissionTimeout * 1000).rounded() / 1000)
            if let roundTrip = link.roundTrip { view["round_trip"] = .double((roundTrip * 10000).rounded() / 10000) }
            view["retransmissions"] = .int(link.retransmissions)
            view["duplicates_acknowledged"] = .int(link.duplicatesAcknowledged)
            view["acknowledgements_repeated"] = .int(link.acknowledgementsRepeated)
        }
        return .object(view)
    }
}

/// Why a hub could not do what was asked; the message is for the person who asked.
public struct HubError: Error, Sendable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
