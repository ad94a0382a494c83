/// One Home Assistant entity a capability offers, before the bridge gives it an identity: its
/// component, its object id within the device, its name (nil for the device's main entity, which
/// Home Assistant names after the device) and the component's own keys. The Home Assistant
/// feature adds `unique_id`, the `device` block, availability, `origin` and the entity id.
public struct HomeAssistantEntity: Sendable, Equatable {
    public var component: String
    public var object: String
    public var name: String?
    public var keys: [String: JSON]

    public init(_ component: String, _ object: String, name: String?, _ keys: [String: JSON]) {
        self.component = component
        self.object = object
        self.name = name
        self.keys = keys
    }
}
