import Logging
import MQTT

extension GatewayOwnership {
    /// The coordinator the configuration asks for (`takeover.instance_id`, `mqtt.base_topic`), on
    /// the broker the bridge uses. The caller runs it only when `takeover.enabled`.
    /// - Parameters:
    ///   - mqtt: the bridge's own connection settings (`Bridge.mqttConfiguration`); the coordinator
    ///     replaces the client id, will, keepalive and reconnect policy.
    ///   - gatewayIDs: the ids of the configured gateways (from their credentials).
    public convenience init(
        configuration: BridgeConfiguration, mqtt: MQTTConfiguration, gatewayIDs: [String],
        settings: Settings = Settings(), logger: Logger = Logger(label: "takeover"),
        onChange: @escaping @Sendable (Event) async -> Void
    ) throws(GatewayOwnershipError) {
        try self.init(
            mqtt: mqtt, baseTopic: configuration.mqtt.baseTopic, instanceID: configuration.takeoverInstanceID,
            gatewayIDs: gatewayIDs, settings: settings, logger: logger, onChange: onChange)
    }
}
