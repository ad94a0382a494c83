import CoAP
import HubModel
import Logging
import ServiceLifecycle
import Synchronization

/// The bridge with `takeover.enabled`: runs a `Bridge` only while this instance drives at least
/// one gateway, and in it only the hubs of the gateways it drives (`GatewayOwnership` decides).
///
/// Contract:
/// - Put the coordinator **before** this service in the `ServiceGroup`: on graceful shutdown this
///   one stops first (devices and `bridge/state` offline, broker disconnected, as a bridge without
///   takeover stops), then the coordinator releases the gateways, so the next owner starts after.
/// - `ownershipChanged(_:)` is the coordinator's handler: it only records the new set and
///   returns; the run loop applies it (a hub given up is cancelled at once and publishes nothing
///   more; the last one given up ends the bridge without publishing `bridge/state` offline).
/// - A bridge that cannot be built when a gateway is acquired (the broker's password file became
///   unreadable, say) ends `run()` with that error: put this service in the group with
///   `failureTerminationBehavior: .gracefullyShutdownGroup`, so the coordinator releases the
///   gateways for another instance and the process exits with an error (systemd restarts it).
/// - While it drives nothing (standby), nothing of the bridge runs: no MQTT connection besides the
///   coordinator's, no subscription, nothing published. Each active spell builds a fresh `Bridge`
///   (its MQTT client is single-use) with fresh hubs from `makeBridge`.
public final class TakeoverBridge: Service, Sendable {
    /// Builds the bridge for one active spell, with every configured hub (only driven ones run).
    public typealias MakeBridge = @Sendable () async throws -> Bridge

    private let hubNames: [String: String]
    private let makeBridge: MakeBridge
    private let owned = Mutex<Set<String>>([])
    private let status = Mutex<GatewayOwnership.Status?>(nil)
    /// The owners last logged as standing by for (so the line comes once per change).
    private let standbyLogged = Mutex<String?>(nil)
    private let changes: AsyncStream<Set<String>>
    private let continuation: AsyncStream<Set<String>>.Continuation
    private let logger = Logger(label: "takeover")
    private let systemd: SystemdChannel?
    /// The bridge of the current active spell (for the watchdog's probe).
    private let current = Mutex<Bridge?>(nil)

    /// - Parameters:
    ///   - hubNames: the configured gateways' hub names by gateway id.
    ///   - systemd: told `STATUS=` when this instance goes back to standing by (the bridge's
    ///     own `ServiceStatus` speaks while it drives).
    public init(hubNames: [String: String], systemd: SystemdChannel? = nil, makeBridge: @escaping MakeBridge) {
        self.hubNames = hubNames
        self.systemd = systemd
        self.makeBridge = makeBridge
        // Only the newest set matters: it is the whole state.
        (changes, continuation) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(1))
    }

    /// The coordinator's handler (returns at once).
    public func ownershipChanged(_ event: GatewayOwnership.Event) {
        let hubs: Set<String>? = owned.withLock { owned in
            switch event {
            case .acquired(let id):
                guard let name = hubNames[id] else { return nil }
                owned.insert(name)
            case .lost(let id, _):
                guard let name = hubNames[id] else { return nil }
                owned.remove(name)
            case .statusChanged(let status):
                logStandby(status, driving: !owned.isEmpty)
                self.status.withLock { $0 = status }
            }
            return owned
        }
        if let hubs { continuation.yield(hubs) }
    }

    /// `systemctl status` while this instance drives no gateway.
    public static let standingBy = "takeover: standing by, another instance drives the gateways"

    /// `takeover` in `bridge/info`: this instance, the instances present, and per gateway id its
    /// owner, since when, and this instance's role.
    static func json(_ status: GatewayOwnership.Status) -> JSON {
        var gateways: [String: JSON] = [:]
        for (id, gateway) in status.gateways {
            gateways[id] = [
                "owner": gateway.owner.map(JSON.string) ?? .null, "since": gateway.since.map(JSON.string) ?? .null,
                "role": .string(gateway.role.rawValue),
            ]
        }
        return [
            "instance": .string(status.instanceID), "instances": .array(status.instances.map(JSON.string)),
            "gateways": .object(gateways),
        ]
    }

    /// "standing by: another instance drives the gateways", once each time this instance drives nothing while others do.
    private func logStandby(_ status: GatewayOwnership.Status, driving: Bool) {
        let owners = status.gateways.sorted { $0.key < $1.key }.compactMap { id, gateway -> String? in
            guard gateway.role == .standby, gateway.ownerConnected, let owner = gateway.owner,
                owner != status.instanceID
            else { return nil }
            return "\(id)=\(owner)"
        }
        let line = status.synced && !driving && !owners.isEmpty ? owners.joined(separator: ",") : nil
        let changed = standbyLogged.withLock { logged in
            defer { logged = line }
            return logged != line
        }
        if changed, let line {
            logger.info("standing by: another instance drives the gateways", metadata: ["takeover.owners": "\(line)"])
        }
    }

    /// The watchdog's probe: runs on the libcoap executor (so it returns only while that
    /// turns), and refreshes the status line of the bridge that drives, if any.
    @CoAPActor func probe() {
        current.withLock { $0 }?.probe()
    }

    public func run() async throws {
        let changes = self.changes
        let continuation = self.continuation
        var active: (bridge: Bridge, run: Task<Void, Never>)?
        var failure: (any Error)?
        await withGracefulShutdownHandler {
            for await hubs in changes {
                if let current = active {
                    await current.bridge.drive(hubs)
                    if let status = status.withLock({ $0 }) { await current.bridge.takeoverChanged(Self.json(status)) }
                    if hubs.isEmpty {
                        await current.run.value
                        active = nil
                        self.current.withLock { $0 = nil }
                        logger.info("standing by: this instance drives no gateway")
                        systemd?.send([], status: Self.standingBy)
                    }
                } else if !hubs.isEmpty {
                    do {
                        let bridge = try await makeBridge()
                        if let status = status.withLock({ $0 }) { await bridge.takeoverChanged(Self.json(status)) }
                        active = (bridge, Task { await bridge.run(driving: hubs) })
                        self.current.withLock { $0 = bridge }
                    } catch {
                        // Holding the gateways without driving them would leave them to nobody.
                        logger.error(
                            "cannot build the bridge; stopping, so that another instance drives the gateways",
                            metadata: ["error": "\(error)"])
                        failure = error
                        break
                    }
                }
            }
        } onGracefulShutdown: {
            continuation.finish()
        }
        if let active {
            await active.bridge.stop()
            await active.run.value
        }
        if let failure { throw failure }
    }
}
