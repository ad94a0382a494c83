import Foundation

/// Topic-safe, unique names for devices and groups, derived from the names in the IKEA app.
///
/// Rules: lower case ASCII letters, digits and `_` (accents dropped: "Kök" → "kok"); devices
/// keep the plain name in id order, a group that collides with a device becomes `<name>_group`,
/// any remaining collision gets `_2`, `_3`…; an empty name becomes `<type>_<id>`; names the bridge
/// uses itself (`bridge`, `set`, `get`, …) get the id appended. The numeric id is always accepted
/// on command topics as well.
public struct FriendlyNames: Sendable, Equatable {
    public enum Entity: Hashable, Sendable {
        case device(Int)
        case group(Int)
    }

    public private(set) var names: [Entity: String] = [:]
    private var entities: [String: Entity] = [:]

    static let reserved: Set<String> = ["bridge", "set", "get", "availability", "response", "action", "request"]

    public init() {}

    /// Assigns names to all devices and groups. Deterministic: the same inventory always gives the
    /// same names.
    public init(devices: [(id: Int, name: String, kind: String)], groups: [(id: Int, name: String)]) {
        for device in devices.sorted(by: { $0.id < $1.id }) {
            assign(
                .device(device.id), base: Self.slug(device.name, fallback: "\(device.kind)_\(device.id)"),
                id: device.id, groupSuffix: false)
        }
        for group in groups.sorted(by: { $0.id < $1.id }) {
            assign(
                .group(group.id), base: Self.slug(group.name, fallback: "group_\(group.id)"), id: group.id,
                groupSuffix: true)
        }
    }

    public subscript(entity: Entity) -> String? { names[entity] }

    /// The entity a command topic names: a friendly name or a numeric id.
    public func entity(named name: String) -> Entity? {
        if let entity = entities[name] { return entity }
        guard let id = Int(name) else { return nil }
        if names[.device(id)] != nil { return .device(id) }
        if names[.group(id)] != nil { return .group(id) }
        return nil
    }

    private mutating func assign(_ entity: Entity, base: String, id: Int, groupSuffix: Bool) {
        var candidate = Self.reserved.contains(base) ? "\(base)_\(id)" : base
        if entities[candidate] != nil, groupSuffix { candidate = base + "_group" }
        var counter = 2
        let stem = candidate
        while entities[candidate] != nil || Int(candidate) != nil {
            candidate = "\(stem)_\(counter)"
            counter += 1
        }
        names[entity] = candidate
        entities[candidate] = entity
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
