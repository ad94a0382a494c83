import CoAP
import Logging
import TradfriModel

/// The bridge's copy of everything on the gateway, kept equal to it by CoAP Observe.
///
/// Contract:
/// - `sync()` runs after every (re)connect: it observes gateway details, notifications, the
///   device, group and scene lists and every item on them, then drops what is no longer there, so
///   after any outage the copy equals the gateway. Changes are reported as they are found.
/// - List notifications are diffed: new ids are observed, vanished ids removed. A 4.04 on an item
///   removes it once the list confirms it is gone (a gateway shutting down sends 4.04 too). Unparseable or odd bodies (`{"r":"06"}`, empty) are logged and ignored: the last
///   good state stays.
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
    }

    public private(set) var details: GatewayDetails?
    public private(set) var devices: [Int: Device] = [:]
    public private(set) var groups: [Int: Group] = [:]
    public private(set) var scenes: [Int: [Int: Scene]] = [:]

    private let link: GatewayLink
    private let logger = Logger(label: "gateway")
    private var onChange: @CoAPActor (Change) -> Void = { _ in }
    /// Observation tokens by path for the current session.
    private var observed: [String: [UInt8]] = [:]
    /// Bumped on every sync: work belonging to an older session is abandoned.
    private var generation = 0
    private var seenNotifications: Set<Int> = []
    /// While a sync runs, list notifications only record the ids; the sync observes them.
    private var syncing = false
    /// Items whose observation ended with 4.04, by list path, while the list is read to confirm.
    private var goneUnconfirmed: [String: [[Int]]] = [:]

    public init(link: GatewayLink) {
        self.link = link
    }

    public func onChange(_ handler: @escaping @CoAPActor (Change) -> Void) {
        onChange = handler
    }

    // MARK: Sync

    /// Observes everything afresh (after a connect). Returns false if the session ended midway.
    @discardableResult
    public func sync() async -> Bool {
        generation += 1
        let current = generation
        observed.removeAll()
        goneUnconfirmed.removeAll()
        syncing = true
        defer { if current == generation { syncing = false } }
        do {
            try await observeDetails()
            try await observe(GatewayPath.notifications) { [weak self] payload in self?.notificationsChanged(payload) }
            var deviceIDs: [Int] = []
            try await observe(GatewayPath.devices) { [weak self] payload in
                if current == self?.generation, let ids = self?.ids(payload, "device") {
                    deviceIDs = ids
                    self?.listChanged(ids, GatewayPath.devices)
                }
            }
            // Observe every listed device; the list may grow while we do.
            while current == generation, let id = deviceIDs.first(where: { observed[GatewayPath.device($0)] == nil }) {
                try await observeDevice(id)
            }
            var groupIDs: [Int] = []
            try await observe(GatewayPath.groups) { [weak self] payload in
                if current == self?.generation, let ids = self?.ids(payload, "group") {
                    groupIDs = ids
                    self?.listChanged(ids, GatewayPath.groups)
                }
            }
            while current == generation, let id = groupIDs.first(where: { observed[GatewayPath.group($0)] == nil }) {
                try await observeGroup(id)
            }
            guard current == generation else { return false }
            // What the gateway no longer has.
            for id in Set(devices.keys).subtracting(deviceIDs) { removeDevice(id) }
            for id in Set(groups.keys).subtracting(groupIDs) { removeGroup(id) }
            onChange(.synced)
            return true
        } catch {
            logger.warning("sync with the gateway interrupted", metadata: ["error": "\(error)"])
            return false
        }
    }

    /// Re-reads and re-observes everything on a live session (`bridge/request/resync`): cancels
    /// every current observation (the gateway forgets them), then runs `sync()`. Changes found
    /// are reported like any others. Returns false if the session ended midway.
    @discardableResult
    public func resync() async -> Bool {
        for path in observed.keys.sorted() { stopObserving(path) }
        return await sync()
    }

    /// Observes `path`; `handler` gets each good payload (the first response included).
    /// Returns false if the resource does not exist.
    @discardableResult
    private func observe(_ path: String, handler: @escaping @CoAPActor ([UInt8]) -> Void) async throws -> Bool {
        let current = generation
        let (token, initial) = try await link.observe(path) { [weak self] event in
            guard let self, current == self.generation else { return }
            switch event {
            case .notification(let response):
                self.link.heard()
                if response.code.isSuccess {
                    if !response.payload.isEmpty { handler(response.payload) }
                } else if response.code == .notFound {
                    self.resourceGone(path)
                }
            case .ended:
                break
            }
        }
        guard initial.code.isSuccess else {
            if initial.code != .notFound {
                logger.warning(
                    "gateway refused an observation", metadata: ["path": "\(path)", "code": "\(initial.code)"])
            }
            return false
        }
        observed[path] = token
        if !initial.payload.isEmpty { handler(initial.payload) }
        return true
    }

    private func stopObserving(_ path: String) {
        if let token = observed.removeValue(forKey: path) { link.cancelObservation(token: token) }
    }

    private func ids(_ payload: [UInt8], _ what: String) -> [Int]? {
        do {
            return try IDList.parse(payload, what: what)
        } catch {
            logger.warning("ignoring an unreadable list from the gateway", metadata: ["error": "\(error)"])
            return nil
        }
    }

    // MARK: Gateway details and notifications

    private func observeDetails() async throws {
        try await observe(GatewayPath.gatewayDetails) { [weak self] payload in
            guard let self else { return }
            do {
                let details = try GatewayDetails(payload: payload)
                // The clock (9059) ticks on every read; report only real changes.
                var comparable = details
                comparable.time = nil
                var previous = self.details
                previous?.time = nil
                self.details = details
                if previous != comparable { self.onChange(.details(details)) }
            } catch {
                self.logger.warning("ignoring unreadable gateway details", metadata: ["error": "\(error)"])
            }
        }
    }

    private func notificationsChanged(_ payload: [UInt8]) {
        guard let list = try? GatewayNotification.list(payload: payload) else { return }
        for notification in list where notification.event == GatewayEvent.rebooting && notification.isActive {
            let stamp = notification.timestamp ?? 0
            guard !seenNotifications.contains(stamp) else { continue }
            seenNotifications.insert(stamp)
            logger.notice(
                "the gateway announced a reboot", metadata: ["reason": "\(notification.details["9052"] ?? "?")"])
            onChange(.rebootAnnounced)
        }
    }

    // MARK: Devices

    /// The device or group list (`list`) was notified: forget what left it; observe what joined
    /// it, unless the sync loop is still going through the first listing itself.
    private func listChanged(_ ids: [Int], _ list: String) {
        let isDevices = list == GatewayPath.devices
        let held = isDevices ? Set(devices.keys) : Set(groups.keys)
        for id in held.subtracting(ids) {
            if isDevices { removeDevice(id) } else { removeGroup(id) }
        }
        let observedIDs = observed.keys.compactMap { path -> Int? in
            let parts = path.split(separator: "/")
            return parts.count == 2 && parts[0] == list ? Int(parts[1]) : nil
        }
        let added = Set(ids).subtracting(held.union(observedIDs))
        guard !added.isEmpty, !syncing else { return }
        let current = generation
        Task { [weak self] in
            for id in added.sorted() {
                guard let self, current == self.generation else { return }
                if isDevices { try? await self.observeDevice(id) } else { try? await self.observeGroup(id) }
            }
        }
    }

    private func observeDevice(_ id: Int) async throws {
        let path = GatewayPath.device(id)
        guard observed[path] == nil else { return }
        try await observe(path) { [weak self] payload in self?.deviceChanged(id, payload) }
    }

    private func deviceChanged(_ id: Int, _ payload: [UInt8]) {
        guard let (device, previous) = store(payload, id, in: &devices, "device") else { return }
        onChange(previous.map { .deviceChanged(device, previous: $0) } ?? .deviceAdded(device))
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

    private func removeDevice(_ id: Int) {
        stopObserving(GatewayPath.device(id))
        guard let device = devices.removeValue(forKey: id) else { return }
        onChange(.deviceRemoved(device))
    }

    /// Asks the gateway for a device again (for `<name>/get`); the answer is handled like a
    /// notification and returned.
    public func reread(device id: Int) async throws -> Device? {
        let response = try await link.request(.get, GatewayPath.device(id), priority: .command)
        guard response.code == .content else {
            if response.code == .notFound { removeDevice(id) }
            return nil
        }
        deviceChanged(id, response.payload)
        return devices[id]
    }

    // MARK: Groups and scenes

    private func observeGroupItself(_ id: Int) async throws {
        let path = GatewayPath.group(id)
        guard observed[path] == nil else { return }
        try await observe(path) { [weak self] payload in self?.groupChanged(id, payload) }
    }

    private func observeGroup(_ id: Int) async throws {
        guard observed[GatewayPath.group(id)] == nil else { return }
        try await observeGroupItself(id)
        let current = generation
        var sceneIDs: [Int] = []
        let hasScenes = try await observe(GatewayPath.scenes(ofGroup: id)) { [weak self] payload in
            guard let self, current == self.generation, let list = self.ids(payload, "scene") else { return }
            sceneIDs = list
            self.sceneListChanged(group: id, list)
        }
        if !hasScenes, scenes.removeValue(forKey: id) != nil { onChange(.scenesChanged(groupID: id)) }
        for sceneID in sceneIDs where current == generation { try await observeScene(sceneID, group: id) }
        let stale = Set(scenes[id]?.keys ?? [:].keys).subtracting(sceneIDs)
        if !stale.isEmpty {
            for sceneID in stale { scenes[id]?[sceneID] = nil }
            onChange(.scenesChanged(groupID: id))
        }
    }

    private func groupChanged(_ id: Int, _ payload: [UInt8]) {
        guard let (group, previous) = store(payload, id, in: &groups, "group") else { return }
        onChange(previous.map { .groupChanged(group, previous: $0) } ?? .groupAdded(group))
    }

    private func removeGroup(_ id: Int) {
        stopObserving(GatewayPath.group(id))
        stopObserving(GatewayPath.scenes(ofGroup: id))
        for sceneID in scenes[id]?.keys ?? [:].keys { stopObserving(GatewayPath.scene(sceneID, ofGroup: id)) }
        scenes[id] = nil
        guard let group = groups.removeValue(forKey: id) else { return }
        onChange(.groupRemoved(group))
    }

    private func sceneListChanged(group: Int, _ ids: [Int]) {
        var changed = false
        for sceneID in Set(scenes[group]?.keys ?? [:].keys).subtracting(ids) {
            stopObserving(GatewayPath.scene(sceneID, ofGroup: group))
            scenes[group]?[sceneID] = nil
            changed = true
        }
        if changed { onChange(.scenesChanged(groupID: group)) }
        let added = ids.filter { observed[GatewayPath.scene($0, ofGroup: group)] == nil && scenes[group]?[$0] == nil }
        guard !added.isEmpty, !syncing else { return }
        let current = generation
        Task { [weak self] in
            for sceneID in added {
                guard let self, current == self.generation else { return }
                try? await self.observeScene(sceneID, group: group)
            }
        }
    }

    private func observeScene(_ id: Int, group: Int) async throws {
        let path = GatewayPath.scene(id, ofGroup: group)
        guard observed[path] == nil else { return }
        try await observe(path) { [weak self] payload in
            guard let self, let scene = try? Scene(payload: payload), scene.id == id else { return }
            guard self.scenes[group]?[id] != scene else { return }
            self.scenes[group, default: [:]][id] = scene
            self.onChange(.scenesChanged(groupID: group))
        }
    }

    /// An item's observation ended with 4.04. A gateway also says that to every observer as it
    /// shuts down, so the item goes only once its list confirms it (one read per list for a burst
    /// of them); an item still listed is observed again. If the list cannot be read, the
    /// connection is going: the sync after the reconnect settles it.
    private func resourceGone(_ path: String) {
        observed[path] = nil
        let parts = path.split(separator: "/").compactMap { Int($0) }
        let list: String
        switch parts.count {
        case 2 where parts[0] == 15001: list = GatewayPath.devices
        case 2 where parts[0] == 15004: list = GatewayPath.groups
        case 3 where parts[0] == 15005: list = GatewayPath.scenes(ofGroup: parts[1])
        default: return
        }
        let first = goneUnconfirmed[list] == nil
        goneUnconfirmed[list, default: []].append(parts)
        guard first else { return }
        let current = generation
        Task { [weak self] in await self?.confirmGone(list: list, generation: current) }
    }

    private func confirmGone(list path: String, generation current: Int) async {
        let listed: [Int]?
        do {
            let response = try await link.request(.get, path)
            if response.code == .notFound {
                listed = []
            } else if response.code.isSuccess {
                listed = ids(response.payload, "item")
            } else {
                listed = nil
            }
        } catch {
            listed = nil
        }
        guard current == generation else { return }  // the sync of the new session settles it
        let items = goneUnconfirmed.removeValue(forKey: path) ?? []
        guard let listed else {
            logger.debug(
                "an observation ended with 4.04 and its list is unreadable; the next sync decides",
                metadata: ["path": "\(path)"])
            return
        }
        for parts in items {
            let id = parts[parts.count - 1]
            if listed.contains(id) {
                logger.info(
                    "an observation ended with 4.04 but the item is still listed; observing it again",
                    metadata: ["path": "\(parts.map(String.init).joined(separator: "/"))"])
                switch parts.count {
                case 2 where parts[0] == 15001: try? await observeDevice(id)
                case 2: try? await observeGroupItself(id)
                default: try? await observeScene(id, group: parts[1])
                }
                continue
            }
            switch parts.count {
            case 2 where parts[0] == 15001: removeDevice(id)
            case 2: removeGroup(id)
            default:
                if scenes[parts[1]]?.removeValue(forKey: id) != nil { onChange(.scenesChanged(groupID: parts[1])) }
            }
        }
    }
}
