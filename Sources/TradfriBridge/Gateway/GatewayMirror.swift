import CoAP
import Foundation
import HubModel
import Logging
import TradfriModel

/// The bridge's copy of everything on the gateway, kept equal to it.
///
/// Contract:
/// - Everything is observed (CoAP Observe): the gateway's details and notifications, the device,
///   group and scene lists, and every item on them. In every session (`serve()`, run by the link
///   for as long as the session lasts) each observation is registered afresh, one request at a
///   time at background priority (`GatewayMirror+Work`); a registration that fails is tried
///   again until the session ends, so an interrupted first sync completes. `.synced` is reported
///   once per session, when every listed item is observed.
/// - Convergence does not depend on every notification arriving. An item whose copy may be
///   stale is read again by registering its observation once more (same token, so the gateway
///   keeps a single observation and re-creates one it dropped): after a command the gateway did
///   not confirm with a notification within `confirmWindow`, on request (`resync`,
///   `<name>/get`), and on a slow rolling schedule (every item once per `auditInterval`). A
///   difference found that way is applied like a notification and reported as `.repaired`.
/// - List notifications are diffed: new ids are observed, vanished ids removed. A 4.04 on an
///   item removes it once its list, read again, confirms it is gone (a gateway shutting down
///   sends 4.04 too). Unparseable or odd bodies (`{"r":"06"}`, empty) are logged and ignored: the
///   last good state stays.
/// - Identical notifications report nothing.
@CoAPActor
public final class GatewayMirror {
    public enum Change: Sendable {
        case details(GatewayDetails)
        case deviceAdded(Device)
        case deviceChanged(Device, previous: Device)
        case deviceRemoved(Device)
        case groupAdded(Group)
        case groupChanged(Group, previous: Group)
        case groupRemoved(Group)
        case scenesChanged(groupID: Int)
        /// The gateway announced it is rebooting (notification 1003).
        case rebootAnnounced
        /// A full sync finished: the copy equals the gateway.
        case synced
        /// Everything was read again in full (after `.synced`, and after each `resync`).
        case fullRead
        /// Reading an item again found it different from the copy (the change above was reported
        /// first): a notification had been lost or the observation had ended silently.
        case repaired(Repair)
        /// The gateway stopped notifying something it should have (a periodic check found a change
        /// no notification had brought): every observation is being registered again.
        case notificationsStalled(String)
    }

    /// What a re-read corrected, and why the item was read.
    public struct Repair: Sendable {
        public var kind: String
        public var id: Int
        public var name: String?
        public var reason: RereadReason
    }

    /// Why an item is read again.
    public enum RereadReason: String, Sendable {
        case command = "no notification after a command"
        case audit = "periodic check"
        case resync = "resync"
        case request = "read on request"
        case gone = "checking a 4.04"
        case ended = "the observation ended"
        case stall = "observing everything again after a missed notification"
    }

    public struct Settings: Sendable {
        /// How long after a command's answer the gateway has to notify the change before the
        /// device is read again.
        public var confirmWindow: Duration = .seconds(2)
        /// Every observed item is read again once in this time (nil: never).
        public var auditInterval: Duration? = .seconds(600)
        public init() {}
    }

    public private(set) var details: GatewayDetails?
    public private(set) var devices: [Int: Device] = [:]
    public private(set) var groups: [Int: Group] = [:]
    public private(set) var scenes: [Int: [Int: Scene]] = [:]

    let link: GatewayLink
    public var settings: Settings
    let logger = Logger(label: "gateway")
    var onChange: @CoAPActor (Change) -> Void = { _ in }
    private var seenNotifications: Set<Int> = []
    /// The ids the lists named last (an item not listed any more is not observed again).
    var listedDevices: Set<Int> = []
    var listedGroups: Set<Int> = []
    var listedScenes: [Int: Set<Int>] = [:]

    // State of the work (GatewayMirror+Work).
    var observations: [ObservedResource: Observation] = [:]
    var queue: [Work] = []
    var queued: Set<ObservedResource> = []
    /// The worker waits here while there is nothing to do.
    var workerWake: CheckedContinuation<Void, Never>?
    /// The worker is observing or reading something.
    var working = false
    var generation = 0
    var isConnected = false
    var isSynced = false
    var rereadReasons: [ObservedResource: RereadReason] = [:]
    var confirmations: [ObservedResource: CoAPTimer] = [:]
    var auditTimer: CoAPTimer?
    var drainWaiters: [Int: CheckedContinuation<Bool, Never>] = [:]
    var waiterCount = 0
    var fullReadPending = false
    var syncStarted = ContinuousClock.now
    var notFoundCounts: [ObservedResource: Int] = [:]
    /// When the last full read (sync or resync) completed.
    public internal(set) var lastFullRead: Date?
    /// Differences found by reading items again, since start.
    public internal(set) var repairs = 0
    /// When every observation was last registered again after a missed notification (see
    /// `.notificationsStalled`).
    var lastStallRecovery: ContinuousClock.Instant?
    /// Items read again, since start (commands not confirmed, audit, resync, requests).
    public internal(set) var rereads = 0

    public init(link: GatewayLink, settings: Settings = Settings()) {
        self.link = link
        self.settings = settings
    }

    public func onChange(_ handler: @escaping @CoAPActor (Change) -> Void) {
        onChange = handler
    }

    // MARK: Content

    /// Applies a notification or a re-read answer of `resource`; true when the copy changed.
    @discardableResult
    func apply(_ payload: [UInt8], of resource: ObservedResource) -> Bool {
        switch resource {
        case .details: return detailsChanged(payload)
        case .notifications: return notificationsChanged(payload)
        case .deviceList: return listed(payload, "device").map { devicesListed($0) } ?? false
        case .groupList: return listed(payload, "group").map { groupsListed($0) } ?? false
        case .device(let id): return deviceChanged(id, payload)
        case .group(let id): return groupChanged(id, payload)
        case .sceneList(let group): return listed(payload, "scene").map { scenesListed($0, group: group) } ?? false
        case .scene(let id, let group): return sceneChanged(id, group: group, payload)
        }
    }

    private func listed(_ payload: [UInt8], _ what: String) -> [Int]? {
        do {
            return try IDList.parse(payload, what: what)
        } catch {
            logger.warning("ignoring an unreadable list from the gateway", metadata: ["error": "\(error)"])
            return nil
        }
    }

    private func detailsChanged(_ payload: [UInt8]) -> Bool {
        do {
            let details = try GatewayDetails(payload: payload)
            // The clock (9059) ticks on every read; report only real changes.
            var comparable = details
            comparable.time = nil
            var previous = self.details
            previous?.time = nil
            self.details = details
            guard previous != comparable else { return false }
            onChange(.details(details))
            return true
        } catch {
            logger.warning("ignoring unreadable gateway details", metadata: ["error": "\(error)"])
            return false
        }
    }

    private func notificationsChanged(_ payload: [UInt8]) -> Bool {
        guard let list = try? GatewayNotification.list(payload: payload) else { return false }
        for notification in list where notification.event == GatewayEvent.rebooting && notification.isActive {
            let stamp = notification.timestamp ?? 0
            guard !seenNotifications.contains(stamp) else { continue }
            seenNotifications.insert(stamp)
            logger.notice(
                "the gateway announced a reboot", metadata: ["reason": "\(notification.details["9052"] ?? "?")"])
            onChange(.rebootAnnounced)
        }
        return false
    }

    // MARK: Lists

    /// The device list: what left it goes, what joined it is observed.
    private func devicesListed(_ ids: [Int]) -> Bool {
        listedDevices = Set(ids)
        var changed = false
        for id in Set(devices.keys).subtracting(ids) {
            removeDevice(id)
            changed = true
        }
        for id in ids.sorted() where observations[.device(id)] == nil { enqueue(.device(id)) }
        return changed
    }

    private func groupsListed(_ ids: [Int]) -> Bool {
        listedGroups = Set(ids)
        var changed = false
        for id in Set(groups.keys).subtracting(ids) {
            removeGroup(id)
            changed = true
        }
        for id in ids.sorted() where observations[.group(id)] == nil { enqueue(.group(id)) }
        return changed
    }

    private func scenesListed(_ ids: [Int], group: Int) -> Bool {
        listedScenes[group] = Set(ids)
        var changed = false
        for id in Set(scenes[group]?.keys ?? [:].keys).subtracting(ids) {
            stopObserving(.scene(id, group: group))
            scenes[group]?[id] = nil
            changed = true
        }
        if changed { onChange(.scenesChanged(groupID: group)) }
        for id in ids.sorted() where observations[.scene(id, group: group)] == nil {
            enqueue(.scene(id, group: group))
        }
        return changed
    }

    /// Whether `resource` is still on its list (the gateway's own resources and lists always are).
    func isListed(_ resource: ObservedResource) -> Bool {
        switch resource {
        case .device(let id): listedDevices.contains(id)
        case .group(let id): listedGroups.contains(id)
        case .sceneList(let group): listedGroups.contains(group)
        case .scene(let id, let group): listedScenes[group]?.contains(id) ?? false
        default: true
        }
    }

    // MARK: Items

    private func deviceChanged(_ id: Int, _ payload: [UInt8]) -> Bool {
        guard let (device, previous) = store(payload, id, in: &devices, "device") else { return false }
        onChange(previous.map { .deviceChanged(device, previous: $0) } ?? .deviceAdded(device))
        return true
    }

    private func groupChanged(_ id: Int, _ payload: [UInt8]) -> Bool {
        guard let (group, previous) = store(payload, id, in: &groups, "group") else { return false }
        onChange(previous.map { .groupChanged(group, previous: $0) } ?? .groupAdded(group))
        return true
    }

    private func sceneChanged(_ id: Int, group: Int, _ payload: [UInt8]) -> Bool {
        guard let scene = try? Scene(payload: payload), scene.id == id else { return false }
        guard scenes[group]?[id] != scene else { return false }
        scenes[group, default: [:]][id] = scene
        onChange(.scenesChanged(groupID: group))
        return true
    }

    /// Decodes a notified device or group and stores it. Returns it and what it replaced, or nil
    /// when nothing changed (unreadable, another id, or identical to what we hold).
    private func store<Item: GatewayResource & Identifiable<Int> & Equatable>(
        _ payload: [UInt8], _ id: Int, in items: inout [Int: Item], _ kind: String
    ) -> (Item, previous: Item?)? {
        let item: Item
        do {
            item = try Item(payload: payload)
        } catch {
            logger.warning(
                "ignoring an unreadable \(kind) from the gateway",
                metadata: ["\(kind).id": "\(id)", "error": "\(error)"])
            return nil
        }
        guard item.id == id else { return nil }
        let previous = items.updateValue(item, forKey: id)
        return previous == item ? nil : (item, previous)
    }

    func removeDevice(_ id: Int) {
        stopObserving(.device(id))
        guard let device = devices.removeValue(forKey: id) else { return }
        onChange(.deviceRemoved(device))
    }

    func removeGroup(_ id: Int) {
        stopObserving(.group(id))
        stopObserving(.sceneList(group: id))
        for sceneID in scenes[id]?.keys ?? [:].keys { stopObserving(.scene(sceneID, group: id)) }
        scenes[id] = nil
        listedScenes[id] = nil
        guard let group = groups.removeValue(forKey: id) else { return }
        onChange(.groupRemoved(group))
    }

    func removeScene(_ id: Int, group: Int) {
        stopObserving(.scene(id, group: group))
        if scenes[group]?.removeValue(forKey: id) != nil { onChange(.scenesChanged(groupID: group)) }
    }

    /// A group has no scene list (4.04 on 15005/<group>): it has no scenes.
    func sceneListMissing(group: Int) {
        listedScenes[group] = []
        guard let gone = scenes.removeValue(forKey: group) else { return }
        for id in gone.keys { stopObserving(.scene(id, group: group)) }
        onChange(.scenesChanged(groupID: group))
    }

    /// The name of an item, for reports.
    func name(of resource: ObservedResource) -> String? {
        switch resource {
        case .device(let id): devices[id]?.name
        case .group(let id): groups[id]?.name
        case .scene(let id, let group): scenes[group]?[id]?.name
        default: nil
        }
    }
}
