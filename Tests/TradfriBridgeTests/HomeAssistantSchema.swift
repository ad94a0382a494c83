import HubModel
import TradfriBridge
import TradfriModel

/// Home Assistant's MQTT discovery schema for the platforms the bridge uses, as documented
/// (home-assistant.io `light.mqtt` JSON schema, `switch.mqtt`, `cover.mqtt`, `fan.mqtt`,
/// `sensor.mqtt`, `binary_sensor.mqtt`, `button.mqtt`, `scene.mqtt`, and the shared entity,
/// availability, device and origin options), written down from Home Assistant core's
/// `components/mqtt/*` schemas (2024.3 to 2026.11). Home Assistant silently drops keys it does
/// not know, so a typo would go unnoticed without this check.
///
/// A quick check only: what proves the configs is `HomeAssistantCoreTests`, which runs the real
/// Home Assistant.
enum HomeAssistantSchema {
    // MARK: Keys

    static let common: Set<String> = [
        // MQTT_BASE_SCHEMA
        "qos", "encoding",
        // MQTT_ENTITY_COMMON_SCHEMA
        "device", "origin", "enabled_by_default", "entity_category", "icon", "json_attributes_topic",
        "json_attributes_template", "object_id", "default_entity_id", "unique_id", "entity_picture",
        // MQTT_AVAILABILITY_SCHEMA
        "availability_topic", "availability_template", "payload_available", "payload_not_available",
        "availability_mode", "availability",
    ]

    struct Platform {
        var required: Set<String>
        var optional: Set<String>
        var known: Set<String> { required.union(optional).union(HomeAssistantSchema.common) }
    }

    static let platforms: [String: Platform] = [
        "light": Platform(
            required: ["command_topic", "schema"],
            optional: [
                "name", "optimistic", "retain", "state_topic", "brightness", "brightness_scale", "color_mode",
                "color_temp_kelvin",
                "effect", "effect_list", "flash", "flash_time_long", "flash_time_short", "max_mireds", "min_mireds",
                "max_kelvin", "min_kelvin", "supported_color_modes", "transition", "white_scale",
            ]),
        "switch": Platform(
            required: ["command_topic"],
            optional: [
                "name", "optimistic", "retain", "state_topic", "payload_on", "payload_off", "state_on", "state_off",
                "value_template", "device_class", "command_template",
            ]),
        "cover": Platform(
            required: [],
            optional: [
                "command_topic", "device_class", "position_topic", "name", "optimistic", "payload_close",
                "payload_open",
                "payload_stop", "payload_stop_tilt", "position_closed", "position_open", "retain",
                "set_position_template",
                "set_position_topic", "state_closed", "state_closing", "state_open", "state_opening", "state_stopped",
                "state_topic", "tilt_closed_value", "tilt_command_topic", "tilt_max", "tilt_min", "tilt_opened_value",
                "tilt_optimistic", "tilt_status_topic", "tilt_status_template", "value_template", "position_template",
                "tilt_command_template",
            ]),
        "fan": Platform(
            required: ["command_topic"],
            optional: [
                "name", "optimistic", "retain", "state_topic", "command_template", "direction_command_topic",
                "direction_command_template", "direction_state_topic", "direction_value_template",
                "oscillation_command_topic", "oscillation_command_template", "oscillation_state_topic",
                "oscillation_value_template", "percentage_command_topic", "percentage_command_template",
                "percentage_state_topic", "percentage_value_template", "preset_mode_command_topic", "preset_modes",
                "preset_mode_command_template", "preset_mode_state_topic", "preset_mode_value_template",
                "speed_range_min", "speed_range_max", "payload_reset_percentage", "payload_reset_preset_mode",
                "payload_off", "payload_on", "payload_oscillation_off", "payload_oscillation_on",
                "state_value_template",
            ]),
        "sensor": Platform(
            required: ["state_topic"],
            optional: [
                "value_template", "device_class", "expire_after", "force_update", "last_reset_value_template", "name",
                "options", "suggested_display_precision", "state_class", "unit_of_measurement",
            ]),
        "binary_sensor": Platform(
            required: ["state_topic"],
            optional: [
                "value_template", "device_class", "expire_after", "force_update", "name", "off_delay", "payload_off",
                "payload_on",
            ]),
        "button": Platform(
            required: ["command_topic"],
            optional: [
                "command_template", "device_class", "name", "payload_press", "retain",
            ]),
        "scene": Platform(required: ["command_topic"], optional: ["name", "payload_on", "retain"]),
    ]

    static let deviceKeys: Set<String> = [
        // Not `model_id`: Home Assistant 2024.3 refuses the whole entity for it.
        "identifiers", "connections", "manufacturer", "model", "name", "hw_version", "serial_number",
        "sw_version", "via_device", "suggested_area", "configuration_url",
    ]
    static let originKeys: Set<String> = ["name", "sw_version", "support_url"]
    static let availabilityKeys: Set<String> = [
        "topic", "payload_available", "payload_not_available", "value_template",
    ]

    // MARK: Values

    static let colorModes: Set<String> = [
        "onoff", "brightness", "color_temp", "hs", "xy", "rgb", "rgbw", "rgbww", "white",
    ]
    static let deviceClasses: [String: Set<String>] = [
        "switch": ["outlet", "switch"],
        "cover": ["awning", "blind", "curtain", "damper", "door", "garage", "gate", "shade", "shutter", "window"],
        "binary_sensor": ["battery", "connectivity", "problem", "running", "update", "power", "plug", "safety"],
        "button": ["identify", "restart", "update"],
        "sensor": ["battery", "duration", "pm25", "pm10", "timestamp", "aqi", "temperature", "humidity"],
    ]
    static let units: [String: Set<String>] = [
        "battery": ["%"], "pm25": ["µg/m³"], "duration": ["d", "h", "min", "s", "ms"],
    ]
    static let stateClasses: Set<String> = ["measurement", "total", "total_increasing", "measurement_angle"]

    /// What Home Assistant would refuse or silently ignore in `config`; empty when it is valid.
    static func problems(_ config: HomeAssistantConfig) -> [String] {
        var problems: [String] = []
        func problem(_ text: String) { problems.append("\(config.topic): \(text)") }
        guard let platform = platforms[config.component] else { return ["\(config.topic): unknown component"] }
        guard let payload = config.payload.objectValue else { return ["\(config.topic): not a JSON object"] }
        for key in payload.keys.sorted() where !platform.known.contains(key) { problem("unknown key '\(key)'") }
        for key in platform.required.sorted() where payload[key] == nil { problem("missing required key '\(key)'") }
        if config.component == "light", payload["schema"] != "json" { problem("schema must be json") }

        // Types of the shared keys.
        for key in [
            "unique_id", "command_topic", "state_topic", "value_template", "icon", "device_class",
            "entity_category", "unit_of_measurement", "state_class", "payload_on", "payload_off",
            "payload_press", "position_topic", "set_position_topic", "set_position_template",
            "position_template", "command_template", "state_value_template",
        ]
        where payload[key] != nil && payload[key]?.stringValue == nil {
            problem("'\(key)' must be text")
        }
        for key in ["command_topic", "set_position_topic", "percentage_command_topic", "preset_mode_command_topic"] {
            if let topic = payload[key]?.stringValue, topic.isEmpty || topic.contains("+") || topic.contains("#") {
                problem("'\(key)' is not a topic one can publish to")
            }
        }
        if let category = payload["entity_category"]?.stringValue, !["config", "diagnostic"].contains(category) {
            problem("entity_category \(category)")
        }
        if let mode = payload["availability_mode"], !["all", "any", "latest"].contains(mode.stringValue ?? "") {
            problem("availability_mode \(mode)")
        }
        if payload["availability"] != nil, payload["availability_topic"] != nil {
            problem("availability and availability_topic are exclusive")
        }
        for entry in payload["availability"]?.arrayValue ?? [] {
            guard let entry = entry.objectValue else { problem("availability entries must be objects"); continue }
            if entry["topic"]?.stringValue == nil { problem("availability entry without topic") }
            for key in entry.keys where !availabilityKeys.contains(key) { problem("unknown availability key '\(key)'") }
        }
        if let device = payload["device"] {
            guard let members = device.objectValue else {
                return problems + ["\(config.topic): device must be an object"]
            }
            for key in members.keys.sorted() where !deviceKeys.contains(key) { problem("unknown device key '\(key)'") }
            if (members["identifiers"]?.arrayValue ?? []).isEmpty, (members["connections"]?.arrayValue ?? []).isEmpty {
                problem("the device needs identifiers or connections")
            }
            for (key, value) in members where key != "identifiers" && key != "connections" && value.stringValue == nil {
                problem("device '\(key)' must be text")
            }
        }
        if let origin = payload["origin"] {
            let members = origin.objectValue ?? [:]
            if members["name"]?.stringValue == nil { problem("origin needs a name") }
            for key in members.keys.sorted() where !originKeys.contains(key) { problem("unknown origin key '\(key)'") }
        }
        if let deviceClass = payload["device_class"]?.stringValue,
            let valid = deviceClasses[config.component], !valid.contains(deviceClass)
        {
            problem("device_class \(deviceClass) is not one of \(config.component)'s")
        }

        switch config.component {
        case "light":
            let modes = (payload["supported_color_modes"]?.arrayValue ?? []).compactMap(\.stringValue)
            if modes.isEmpty { problem("supported_color_modes is empty") }
            for mode in modes where !colorModes.contains(mode) { problem("unknown color mode \(mode)") }
            if modes.count > 1, modes.contains("onoff") || modes.contains("brightness") {
                problem("onoff and brightness must be the only color mode")
            }
            if Set(modes).count != modes.count { problem("color modes repeat") }
            // Home Assistant 2024.3 takes supported_color_modes only with the color_mode flag, and
            // sends brightness in its commands only with brightness: true.
            if payload["color_mode"] != true { problem("color_mode: true must go with supported_color_modes") }
            if modes != ["onoff"], payload["brightness"] != true { problem("brightness: true is missing") }
            // Kelvin options are read as mireds by 2024.3.
            for key in ["color_temp_kelvin", "min_kelvin", "max_kelvin"] where payload[key] != nil {
                problem("\(key) is not understood by Home Assistant 2024.3")
            }
            if modes.contains("white"), modes.count == 1 { problem("white needs another mode") }
            if let scale = payload["brightness_scale"], (scale.intValue ?? 0) < 1 { problem("brightness_scale") }
            if let low = payload["min_mireds"]?.intValue, let high = payload["max_mireds"]?.intValue, low >= high {
                problem("min_mireds must be below max_mireds")
            }
        case "sensor":
            if let deviceClass = payload["device_class"]?.stringValue, let unitsAllowed = units[deviceClass],
                !unitsAllowed.contains(payload["unit_of_measurement"]?.stringValue ?? "")
            {
                problem("unit for \(deviceClass)")
            }
            if let stateClass = payload["state_class"]?.stringValue {
                if !stateClasses.contains(stateClass) { problem("state_class \(stateClass)") }
                if payload["device_class"]?.stringValue == "timestamp" { problem("a timestamp has no state_class") }
            }
        case "fan":
            let low = payload["speed_range_min"]?.intValue ?? 1
            let high = payload["speed_range_max"]?.intValue ?? 100
            if low <= 0 || low >= high { problem("speed range") }
            let presets = (payload["preset_modes"]?.arrayValue ?? []).compactMap(\.stringValue)
            if (payload["preset_mode_command_topic"] == nil) != presets.isEmpty {
                problem("preset_mode_command_topic and preset_modes go together")
            }
            if presets.contains(payload["payload_reset_preset_mode"]?.stringValue ?? "None") {
                problem("preset_modes must not contain the reset payload")
            }
        case "cover":
            if payload["set_position_topic"] != nil, payload["position_topic"] == nil {
                problem("set_position_topic needs position_topic")
            }
            if payload["value_template"] != nil, payload["state_topic"] == nil {
                problem("value_template needs state_topic")
            }
            if payload["position_template"] != nil, payload["position_topic"] == nil {
                problem("position_template needs position_topic")
            }
            if payload["set_position_template"] != nil, payload["set_position_topic"] == nil {
                problem("set_position_template needs set_position_topic")
            }
        default:
            break
        }
        return problems
    }
}
