import Testing

extension Trait where Self == ConditionTrait {
    /// Skips the test, saying why, where network namespaces cannot be made (not root, no `ip`).
    public static var needsNetworkLab: Self {
        .enabled(
            if: NetworkLab.availability.isAvailable,
            Comment(rawValue: "needs the network-namespace lab: \(NetworkLab.availability.reason)"))
    }
}
