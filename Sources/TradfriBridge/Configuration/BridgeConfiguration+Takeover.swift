extension BridgeConfiguration {
    /// Several bridges for the same gateways: one drives each gateway, the others stand by and take
    /// over when it dies (README, "Two bridges: standby and takeover"; `GatewayOwnership`).
    public struct Takeover: Sendable, Equatable {
        /// Coordinate with the other bridges on the broker before driving a gateway.
        public var enabled = false
        /// This bridge's name among the bridges sharing `mqtt.base_topic`; nil: `mqtt.client_id`.
        public var instanceID: String?
    }

    /// The name this bridge goes by in the ownership records: `takeover.instance_id`, else
    /// `mqtt.client_id`.
    public var takeoverInstanceID: String { takeover.instanceID ?? mqtt.clientID }
}

extension BridgeConfiguration.Takeover {
    mutating func read(_ node: ConfigNode) throws(ConfigurationError) {
        let keys = try node.members(allowed: ["enabled", "instance_id"])
        if let value = keys["enabled"] { enabled = try value.bool() }
        if let value = keys["instance_id"] {
            guard let id = try value.optionalString() else {
                instanceID = nil
                return
            }
            guard OwnershipTopics.isValidLevel(id) else {
                throw value.error("must be 1…128 characters without '/', '+', '#' or spaces")
            }
            instanceID = id
        }
    }
}

extension BridgeConfiguration {
    /// Checks of the takeover section that need other keys.
    func validateTakeover(file: String) throws(ConfigurationError) {
        if takeover.enabled, pairing.enabled {
            throw ConfigurationError(
                file: file, line: nil, key: "takeover.enabled",
                message: "cannot be combined with pairing.enabled yet (only one bridge may hand out broker credentials)"
            )
        }
        guard takeover.enabled, takeover.instanceID == nil else { return }
        guard OwnershipTopics.isValidLevel(mqtt.clientID) else {
            throw ConfigurationError(
                file: file, line: nil, key: "takeover.instance_id",
                message: "mqtt.client_id '\(mqtt.clientID)' cannot name this bridge in topics; set takeover.instance_id"
            )
        }
    }
}
