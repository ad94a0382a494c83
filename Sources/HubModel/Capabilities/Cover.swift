/// A blind or curtain: MQTT `position` 0 (closed) … 100 (open) and `state` OPEN/CLOSE, commands
/// `position` and `state` OPEN/CLOSE/STOP, a Home Assistant cover (shade).
public struct Cover: Sendable, Hashable {
    /// 0 = closed … 100 = open (Zigbee2MQTT's scale).
    public var openPercent: Int

    public init(openPercent: Int) {
        self.openPercent = min(max(openPercent, 0), 100)
    }

    public func state(into state: inout [String: JSON]) {
        state["position"] = .int(openPercent)
        state["state"] = .string(openPercent > 0 ? "OPEN" : "CLOSE")
    }

    static func command(_ attributes: [String: JSON]) throws(CommandError) -> DeviceCommand {
        try CommandReader.checkKnown(attributes, ["state", "position"], what: "a blind")
        var command = DeviceCommand()
        if let value = attributes["position"] {
            command.position = Int(try CommandReader.number(value, "position", 0...100).rounded())
        }
        if let value = attributes["state"] {
            switch value.stringValue?.uppercased() {
            case "OPEN": command.position = 100
            case "CLOSE": command.position = 0
            case "STOP": command.stop = true
            default: throw CommandError("state of a blind must be OPEN, CLOSE or STOP (got \(value))")
            }
        }
        guard !command.isEmpty else { throw CommandError("nothing to do: give position or state OPEN, CLOSE, STOP") }
        return command
    }

    public func homeAssistantEntities(state: String) -> [HomeAssistantEntity] {
        [
            HomeAssistantEntity(
                "cover", "cover", name: nil,
                [
                    "device_class": "shade", "command_topic": .string(state + "/set"),
                    "payload_open": "OPEN", "payload_close": "CLOSE", "payload_stop": "STOP",
                    "position_topic": .string(state), "position_template": "{{ value_json.position }}",
                    "set_position_topic": .string(state + "/set"),
                    "set_position_template": #"{"position": {{ position }}}"#,
                    "position_open": 100, "position_closed": 0,
                ])
        ]
    }
}
