/// A battery level: MQTT `battery` (percent), a Home Assistant battery sensor (diagnostic).
public struct Battery: Sendable, Hashable {
    /// 0…100, nil while not reported.
    public var level: Int?

    public init(level: Int?) {
        self.level = level
    }

    public func state(into state: inout [String: JSON]) {
        if let level { state["battery"] = .int(level) }
    }

    public static func homeAssistantEntities(state: String) -> [HomeAssistantEntity] {
        [
            HomeAssistantEntity(
                "sensor", "battery", name: "Battery",
                [
                    "state_topic": .string(state), "value_template": "{{ value_json.battery | default('None') }}",
                    "device_class": "battery", "unit_of_measurement": "%", "state_class": "measurement",
                    "entity_category": "diagnostic",
                ])
        ]
    }
}
