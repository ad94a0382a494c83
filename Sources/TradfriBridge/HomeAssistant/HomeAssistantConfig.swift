import HubModel

/// One Home Assistant MQTT discovery config: a retained JSON payload on
/// `<prefix>/<component>/<node_id>/<object_id>/config`.
///
/// The topic never changes for an entity (node and object ids come from the gateway id and the
/// TRÅDFRI instance id, never from a name), so a renamed device updates its config in place and
/// Home Assistant keeps the same entity.
public struct HomeAssistantConfig: Sendable, Equatable {
    /// `light`, `switch`, `cover`, `fan`, `sensor`, `binary_sensor`, `button` or `scene`.
    public var component: String
    /// `tradfri_<gatewayId>_<instanceId>`, or `tradfri_<gatewayId>_gateway` for the gateway.
    public var nodeID: String
    /// What the entity is within its device: `light`, `battery`, `scene_196609`, …
    public var objectID: String
    public var payload: JSON
    public var topic: String

    public init(prefix: String, component: String, nodeID: String, objectID: String, payload: JSON) {
        self.component = component
        self.nodeID = nodeID
        self.objectID = objectID
        self.payload = payload
        self.topic = "\(prefix)/\(component)/\(nodeID)/\(objectID)/config"
    }

    public var uniqueID: String? { payload["unique_id"]?.stringValue }
}
