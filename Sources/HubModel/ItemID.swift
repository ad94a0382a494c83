/// A device, group or scene of one hub: the hub's configured name and the item's own id there
/// (a TRÅDFRI instance id such as "65537"; other hubs use other kinds of id). What the bridge's
/// features key everything by: two gateways may both have a device 65537.
public struct ItemID: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var hub: String
    public var local: String

    public init(hub: String, local: String) {
        self.hub = hub
        self.local = local
    }

    public init(hub: String, _ number: Int) {
        self.init(hub: hub, local: String(number))
    }

    /// The local id as a number, for hubs that number their items.
    public var number: Int? { Int(local) }

    /// By hub, then numerically where both ids are numbers, else as text.
    public static func < (lhs: ItemID, rhs: ItemID) -> Bool {
        if lhs.hub != rhs.hub { return lhs.hub < rhs.hub }
        if let left = lhs.number, let right = rhs.number { return left < right }
        return lhs.local < rhs.local
    }

    /// "home/65537".
    public var description: String { "\(hub)/\(local)" }
}
