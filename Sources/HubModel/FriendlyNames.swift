import Foundation

/// Topic-safe, unique names for devices and groups, derived from the names in the hubs' apps.
///
/// Rules, within one hub: lower case ASCII letters, digits and `_` (accents dropped: "Kök" →
/// "kok"); devices keep the plain name in id order, a group that collides with a device becomes
/// `<name>_group`, any remaining collision gets `_2`, `_3`…; an empty name becomes
/// `<type>_<id>`; names the bridge uses itself (`bridge`, `set`, `get`, …) get the id appended.
///
/// Several hubs: each hub's names are made by those rules and then put under the hub's `prefix`
/// (`garden/hallway`), so a name two hubs both use stays unique, and whatever happens on one hub
/// never changes a name on another. A hub without a prefix (the only hub of a one-gateway set-up)
/// keeps plain names. An entity is also found by its id: `<id>` on a hub without prefix,
/// `<prefix>/<id>` on one with a prefix.
public struct FriendlyNames: Sendable, Equatable {
    public enum Entity: Hashable, Sendable {
        case device(ItemID)
        case group(ItemID)

        public var id: ItemID {
            switch self {
            case .device(let id), .group(let id): id
            }
        }
    }

    /// One hub's inventory, for naming.
    public struct Inventory: Sendable {
        public var hub: String
        /// Names go under "<prefix>/"; nil for plain names.
        public var prefix: String?
        public var devices: [(id: ItemID, name: String, kind: String)]
        public var groups: [(id: ItemID, name: String)]

        public init(
            hub: String, prefix: String?, devices: [(id: ItemID, name: String, kind: String)],
            groups: [(id: ItemID, name: String)]
        ) {
            self.hub = hub
            self.prefix = prefix
            self.devices = devices
            self.groups = groups
        }
    }

    public private(set) var names: [Entity: String] = [:]
    private var entities: [String: Entity] = [:]
    /// Prefix → hub, and the hub without a prefix (for ids on command topics).
    private var prefixes: [String: String] = [:]
    private var plainHub: String?

    static let reserved: Set<String> = ["bridge", "set", "get", "availability", "response", "action", "request"]

    public init() {}

    /// Assigns names to every device and group of every hub. Deterministic: the same inventories
    /// always give the same names.
    public init(_ inventories: [Inventory]) {
        for inventory in inventories {
            if let prefix = inventory.prefix { prefixes[prefix] = inventory.hub } else { plainHub = inventory.hub }
            var hubNames = HubNames()
            for device in inventory.devices.sorted(by: { $0.id < $1.id }) {
                hubNames.assign(
                    .device(device.id),
                    base: Self.slug(device.name, fallback: "\(device.kind)_\(device.id.local)"), id: device.id.local,
                    groupSuffix: false)
            }
            for group in inventory.groups.sorted(by: { $0.id < $1.id }) {
                hubNames.assign(
                    .group(group.id), base: Self.slug(group.name, fallback: "group_\(group.id.local)"),
                    id: group.id.local, groupSuffix: true)
            }
            for (entity, name) in hubNames.names {
                let full = inventory.prefix.map { "\($0)/\(name)" } ?? name
                names[entity] = full
                entities[full] = entity
            }
        }
    }

    public subscript(entity: Entity) -> String? { names[entity] }

    /// The entity a command topic names: a friendly name, `<id>` (hub without prefix) or
    /// `<prefix>/<id>`.
    public func entity(named name: String) -> Entity? {
        if let entity = entities[name] { return entity }
        let hub: String?
        let local: Substring
        if let slash = name.lastIndex(of: "/") {
            hub = prefixes[String(name[..<slash])]
            local = name[name.index(after: slash)...]
        } else {
            hub = plainHub
            local = name[...]
        }
        guard let hub, Int(local) != nil else { return nil }
        let id = ItemID(hub: hub, local: String(local))
        if names[.device(id)] != nil { return .device(id) }
        if names[.group(id)] != nil { return .group(id) }
        return nil
    }

    /// One hub's names while they are assigned.
    private struct HubNames {
        var names: [Entity: String] = [:]
        var taken: Set<String> = []

        mutating func assign(_ entity: Entity, base: String, id: String, groupSuffix: Bool) {
            var candidate = FriendlyNames.reserved.contains(base) ? "\(base)_\(id)" : base
            if taken.contains(candidate), groupSuffix { candidate = base + "_group" }
            var counter = 2
            let stem = candidate
            while taken.contains(candidate) || Int(candidate) != nil {
                candidate = "\(stem)_\(counter)"
                counter += 1
            }
            names[entity] = candidate
            taken.insert(candidate)
        }
    }

    /// "Living room – Ceiling (2)" → "living_room_ceiling_2".
    public static func slug(_ name: String, fallback: String) -> String {
        var result = ""
        var pendingSeparator = false
        for scalar in name.decomposedStringWithCanonicalMapping.unicodeScalars {
            if scalar.properties.generalCategory == .nonspacingMark { continue }
            let mapped: String?
            switch scalar {
            case "a"..."z", "0"..."9": mapped = String(scalar)
            case "A"..."Z": mapped = String(scalar).lowercased()
            case "ß": mapped = "ss"
            case "ø", "Ø": mapped = "o"
            case "æ", "Æ": mapped = "ae"
            default: mapped = nil
            }
            if let mapped {
                if pendingSeparator, !result.isEmpty { result += "_" }
                pendingSeparator = false
                result += mapped
            } else {
                pendingSeparator = true
            }
        }
        return result.isEmpty ? fallback : result
    }
}
