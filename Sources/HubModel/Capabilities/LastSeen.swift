/// When the hub last heard from a device: MQTT `last_seen` (ISO 8601, UTC), a Home Assistant
/// timestamp sensor (diagnostic; off by default unless the device has nothing else to show).
public enum LastSeen {
    public static func state(_ seconds: Int?, into state: inout [String: JSON]) {
        if let seconds, seconds > 0 { state["last_seen"] = .string(isoTime(seconds)) }
    }

    public static func homeAssistantEntities(state: String, enabledByDefault: Bool) -> [HomeAssistantEntity] {
        [
            HomeAssistantEntity(
                "sensor", "last_seen", name: "Last seen",
                [
                    "state_topic": .string(state), "value_template": "{{ value_json.last_seen | default('None') }}",
                    "device_class": "timestamp", "entity_category": "diagnostic",
                    "enabled_by_default": .bool(enabledByDefault),
                ])
        ]
    }

    /// "2022-01-13T22:09:23Z" (UTC), as Foundation's `.iso8601` style prints it; computed by hand
    /// because it runs for every published device state.
    public static func isoTime(_ seconds: Int) -> String {
        let days = seconds >= 0 ? seconds / 86400 : (seconds - 86399) / 86400
        let secondOfDay = seconds - days * 86400
        // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
        let shifted = days + 719_468
        let era = (shifted >= 0 ? shifted : shifted - 146_096) / 146_097
        let dayOfEra = shifted - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let monthIndex = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * monthIndex + 2) / 5 + 1
        let month = monthIndex < 10 ? monthIndex + 3 : monthIndex - 9
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        var text: [UInt8] = []
        text.reserveCapacity(20)
        func append(_ value: Int, digits: Int) {
            var divisor = 1
            for _ in 1..<digits { divisor *= 10 }
            var rest = value
            while divisor > 0 {
                text.append(UInt8(ascii: "0") + UInt8(rest / divisor % 10))
                rest %= divisor
                divisor /= 10
            }
        }
        append(year, digits: 4)
        text.append(UInt8(ascii: "-"))
        append(month, digits: 2)
        text.append(UInt8(ascii: "-"))
        append(day, digits: 2)
        text.append(UInt8(ascii: "T"))
        append(secondOfDay / 3600, digits: 2)
        text.append(UInt8(ascii: ":"))
        append(secondOfDay / 60 % 60, digits: 2)
        text.append(UInt8(ascii: ":"))
        append(secondOfDay % 60, digits: 2)
        text.append(UInt8(ascii: "Z"))
        return String(decoding: text, as: UTF8.self)
    }
}
