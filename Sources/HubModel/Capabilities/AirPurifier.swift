/// How fast a fan runs.
public enum FanMode: Sendable, Hashable {
    case off
    case auto
    /// A manual level, 1…5.
    case level(Int)

    /// "off", "auto" or "1"…"5" (MQTT `fan_mode`).
    public var name: String {
        switch self {
        case .off: "off"
        case .auto: "auto"
        case .level(let level): String(level)
        }
    }
}

/// An air purifier (IKEA STARKVIND): its fan, PM2.5, filter, status LEDs and child lock.
///
/// MQTT state: `fan_state` ON/OFF, `fan_mode` off/auto/1…5, `fan_speed`, `pm25` and
/// `air_quality`, `led_enable`, `child_lock` LOCK/UNLOCK, `replace_filter`, `filter_age`,
/// `filter_remaining` (minutes). Commands: `fan_mode`, `fan_state`, `led_enable`, `child_lock`.
/// Home Assistant: a fan with five speeds and an `auto` preset, PM2.5 and filter sensors, and
/// switches for the LEDs and the lock.
public struct AirPurifier: Sendable, Hashable {
    public var fanMode: FanMode
    /// Current motor speed, 0 when off.
    public var fanSpeed: Int?
    /// PM2.5 in µg/m³; nil when unknown.
    public var pm25: Int?
    public var ledsOn: Bool?
    public var childLock: Bool?
    public var replaceFilter: Bool?
    /// Minutes the filter has run.
    public var filterAge: Int?
    /// Minutes left; may go negative.
    public var filterRemaining: Int?

    public init(
        fanMode: FanMode, fanSpeed: Int? = nil, pm25: Int? = nil, ledsOn: Bool? = nil, childLock: Bool? = nil,
        replaceFilter: Bool? = nil, filterAge: Int? = nil, filterRemaining: Int? = nil
    ) {
        self.fanMode = fanMode
        self.fanSpeed = fanSpeed
        self.pm25 = pm25
        self.ledsOn = ledsOn
        self.childLock = childLock
        self.replaceFilter = replaceFilter
        self.filterAge = filterAge
        self.filterRemaining = filterRemaining
    }

    // MARK: MQTT state

    public func state(into state: inout [String: JSON]) {
        state["fan_state"] = .string(fanMode == .off ? "OFF" : "ON")
        state["fan_mode"] = .string(fanMode.name)
        if let fanSpeed { state["fan_speed"] = .int(fanSpeed) }
        if let pm25 {
            state["pm25"] = .int(pm25)
            state["air_quality"] = .string(pm25 <= 35 ? "good" : pm25 <= 85 ? "ok" : "poor")
        } else {
            state["pm25"] = .null
            state["air_quality"] = "unknown"
        }
        if let ledsOn { state["led_enable"] = .bool(ledsOn) }
        if let childLock { state["child_lock"] = .string(childLock ? "LOCK" : "UNLOCK") }
        if let replaceFilter { state["replace_filter"] = .bool(replaceFilter) }
        if let filterAge { state["filter_age"] = .int(filterAge) }
        if let filterRemaining { state["filter_remaining"] = .int(filterRemaining) }
    }

    // MARK: Commands

    static func command(_ attributes: [String: JSON]) throws(CommandError) -> DeviceCommand {
        try CommandReader.checkKnown(
            attributes, ["fan_mode", "fan_state", "led_enable", "child_lock"], what: "an air purifier")
        var command = DeviceCommand()
        if let value = attributes["fan_state"] {
            switch value.boolValue.map({ $0 ? "ON" : "OFF" }) ?? value.stringValue?.uppercased() {
            case "ON": command.fanMode = .auto
            case "OFF": command.fanMode = .off
            default: throw CommandError("fan_state must be ON or OFF (got \(value))")
            }
        }
        if let value = attributes["fan_mode"] {
            let text = value.stringValue?.lowercased() ?? value.intValue.map(String.init) ?? ""
            switch text {
            case "off": command.fanMode = .off
            case "auto": command.fanMode = .auto
            case "1", "2", "3", "4", "5": command.fanMode = .level(Int(text) ?? 1)
            default: throw CommandError("fan_mode must be off, auto or a level 1…5 (got \(value))")
            }
        }
        if let value = attributes["led_enable"] {
            guard let enabled = value.boolValue else {
                throw CommandError("led_enable must be true or false (got \(value))")
            }
            command.ledEnable = enabled
        }
        if let value = attributes["child_lock"] {
            switch value.boolValue.map({ $0 ? "LOCK" : "UNLOCK" }) ?? value.stringValue?.uppercased() {
            case "LOCK": command.childLock = true
            case "UNLOCK": command.childLock = false
            default: throw CommandError("child_lock must be LOCK or UNLOCK (got \(value))")
            }
        }
        guard !command.isEmpty else {
            throw CommandError("nothing to do: give fan_mode, fan_state, led_enable or child_lock")
        }
        return command
    }

    // MARK: Home Assistant

    public func homeAssistantEntities(state: String) -> [HomeAssistantEntity] {
        let set = JSON.string(state + "/set")
        let topic = JSON.string(state)
        return [
            HomeAssistantEntity(
                "fan", "fan", name: nil,
                [
                    "command_topic": set, "command_template": #"{"fan_state": "{{ value }}"}"#,
                    "state_topic": topic, "state_value_template": "{{ value_json.fan_state }}",
                    "payload_on": "ON", "payload_off": "OFF",
                    "percentage_command_topic": set,
                    "percentage_command_template":
                        #"{% if value == 0 %}{"fan_state": "OFF"}{% else %}{"fan_mode": "{{ value }}"}{% endif %}"#,
                    "percentage_state_topic": topic,
                    "percentage_value_template":
                        "{% if value_json.fan_mode == 'off' %}0{% elif value_json.fan_mode == 'auto' %}None{% else %}{{ value_json.fan_mode }}{% endif %}",
                    "speed_range_min": 1, "speed_range_max": 5,
                    "preset_mode_command_topic": set, "preset_mode_command_template": #"{"fan_mode": "{{ value }}"}"#,
                    "preset_mode_state_topic": topic,
                    "preset_mode_value_template": "{{ 'auto' if value_json.fan_mode == 'auto' else 'None' }}",
                    "preset_modes": ["auto"],
                ]),
            HomeAssistantEntity(
                "sensor", "pm25", name: "PM2.5",
                [
                    "state_topic": topic, "value_template": "{{ value_json.pm25 }}", "device_class": "pm25",
                    "unit_of_measurement": "µg/m³", "state_class": "measurement",
                ]),
            HomeAssistantEntity(
                "sensor", "filter_remaining", name: "Filter remaining",
                [
                    "state_topic": topic, "value_template": "{{ value_json.filter_remaining | default('None') }}",
                    "device_class": "duration", "unit_of_measurement": "min", "entity_category": "diagnostic",
                ]),
            HomeAssistantEntity(
                "binary_sensor", "replace_filter", name: "Replace filter",
                [
                    "state_topic": topic, "value_template": "{{ 'ON' if value_json.replace_filter else 'OFF' }}",
                    "device_class": "problem", "entity_category": "diagnostic",
                ]),
            HomeAssistantEntity(
                "switch", "led_enable", name: "Status LEDs",
                [
                    "command_topic": set, "state_topic": topic, "icon": "mdi:led-on", "entity_category": "config",
                    "payload_on": #"{"led_enable": true}"#, "payload_off": #"{"led_enable": false}"#,
                    "value_template": "{{ 'ON' if value_json.led_enable else 'OFF' }}", "state_on": "ON",
                    "state_off": "OFF",
                ]),
            HomeAssistantEntity(
                "switch", "child_lock", name: "Child lock",
                [
                    "command_topic": set, "state_topic": topic, "icon": "mdi:lock", "entity_category": "config",
                    "payload_on": #"{"child_lock": "LOCK"}"#, "payload_off": #"{"child_lock": "UNLOCK"}"#,
                    "value_template": "{{ 'ON' if value_json.child_lock == 'LOCK' else 'OFF' }}", "state_on": "ON",
                    "state_off": "OFF",
                ]),
        ]
    }
}
