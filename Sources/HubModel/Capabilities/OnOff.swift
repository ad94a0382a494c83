/// A device that is only switched on and off (a plug, a control outlet): MQTT `state` ON/OFF,
/// commands `state` ON/OFF/TOGGLE, a Home Assistant switch (outlet).
public struct OnOff: Sendable, Hashable {
    public var on: Bool

    public init(on: Bool) {
        self.on = on
    }

    public func state(into state: inout [String: JSON]) {
        state["state"] = .string(on ? "ON" : "OFF")
    }

    static func command(_ attributes: [String: JSON], expected: ExpectedState) throws(CommandError) -> DeviceCommand {
        try CommandReader.checkKnown(attributes, ["state"], what: "a plug")
        var command = DeviceCommand()
        try CommandReader.readSwitch(attributes, into: &command, expected: expected)
        guard !command.isEmpty else { throw CommandError("nothing to do: give state ON, OFF or TOGGLE") }
        return command
    }

    public func homeAssistantEntities(state: String) -> [HomeAssistantEntity] {
        [
            HomeAssistantEntity(
                "switch", "switch", name: nil,
                [
                    "device_class": "outlet", "command_topic": .string(state + "/set"), "state_topic": .string(state),
                    "value_template": "{{ value_json.state }}", "payload_on": "ON", "payload_off": "OFF",
                ])
        ]
    }
}
