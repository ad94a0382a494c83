import Foundation

/// Gateway state → the JSON a device or group publishes on `<base>/<name>`, following
/// Zigbee2MQTT's conventions so existing tools (Home Assistant, Node-RED, dashboards) work
/// unchanged: `state` ON/OFF, `brightness` 0–254, `color_temp` mireds and `color_temp_kelvin`,
/// `color` {x, y, hue, saturation, hex}, `color_mode` (always, for lights and rooms), blinds `position` 100 = open, `battery`,
/// `last_seen`, air purifier fan and filter values.
public enum MQTTState {
    public static func payload(for device: Device) -> JSON {
        var state: [String: JSON] = [:]
        if let light = device.light {
            state.merge(lightState(light)) { _, new in new }
        }
        if let plug = device.plug {
            state["state"] = .string(plug.on ? "ON" : "OFF")
        }
        if let blind = device.blind {
            let position = blind.openPercent
            state["position"] = .int(position)
            state["state"] = .string(position > 0 ? "OPEN" : "CLOSE")
        }
        if let purifier = device.airPurifier {
            state.merge(airPurifierState(purifier)) { _, new in new }
        }
        if let battery = device.info.battery {
            state["battery"] = .int(battery)
        }
        if let lastSeen = device.lastSeen, lastSeen > 0 {
            state["last_seen"] = .string(isoTime(lastSeen))
        }
        return .object(state)
    }

    /// A light's state always names its `color_mode` with that mode's colour data (Home Assistant
    /// shows brightness and colour only then): `brightness` for dimmable bulbs, `color_temp` (plus
    /// `color_temp_kelvin`) for white spectrum, `xy` with `color` for colour bulbs.
    static func lightState(_ light: LightState) -> [String: JSON] {
        var state: [String: JSON] = [
            "state": .string(light.on ? "ON" : "OFF"),
            "brightness": .int(light.brightness),
        ]
        if let behaviour = light.powerOnBehavior {
            state["power_on_behavior"] = .string(behaviour == 4 ? "previous" : "on")
        }
        switch light.spectrum {
        case .white:
            state["color_mode"] = .string(ColorMode.brightness.rawValue)
        case .whiteSpectrum:
            if let mireds = mireds(of: light) {
                state.merge(colorTemperature(mireds)) { _, new in new }
            }
            if let xy = xy(of: light) {
                state["color"] = colour(xy: xy, hueSaturation: nil)
            }
        case .color:
            if let xy = xy(of: light) {
                let hs = light.hue.flatMap { hue in light.saturation.map { (hue, $0) } }
                state["color_mode"] = .string(ColorMode.xy.rawValue)
                state["color"] = colour(xy: xy, hueSaturation: hs)
            }
        }
        return state
    }

    static func colorTemperature(_ mireds: Int) -> [String: JSON] {
        [
            "color_mode": .string(ColorMode.colorTemperature.rawValue), "color_temp": .int(mireds),
            "color_temp_kelvin": .int(Color.kelvin(fromMireds: mireds)),
        ]
    }

    /// The light's CIE xy: as reported, else from hue and saturation.
    static func xy(of light: LightState) -> Color.XY? {
        if let x = light.x, let y = light.y { return Color.xy(gatewayX: x, gatewayY: y) }
        guard let hue = light.hue, let saturation = light.saturation else { return nil }
        return Color.xy(
            fromRGB: Color.rgb(
                hue: Color.degrees(gatewayHue: hue), saturation: Color.percent(gatewaySaturation: saturation) / 100))
    }

    /// A white-spectrum bulb's mireds: as reported, else the nearest temperature of its xy.
    static func mireds(of light: LightState) -> Int? {
        if let mireds = light.colorTemperature { return mireds }
        guard let xy = xy(of: light) else { return nil }
        let mireds = Color.mireds(fromKelvin: Color.kelvin(fromXY: xy))
        return min(max(mireds, Color.whiteSpectrumMireds.lowerBound), Color.whiteSpectrumMireds.upperBound)
    }

    static func colour(xy: Color.XY, hueSaturation: (Int, Int)?) -> JSON {
        var colour: [String: JSON] = [
            "x": .double(rounded(xy.x, 4)), "y": .double(rounded(xy.y, 4)),
            "hex": .string("#" + Color.rgb(fromXY: xy).hex),
        ]
        if let (hue, saturation) = hueSaturation {
            colour["hue"] = .int(Int(Color.degrees(gatewayHue: hue).rounded()))
            colour["saturation"] = .int(Int(Color.percent(gatewaySaturation: saturation).rounded()))
        }
        return .object(colour)
    }

    static func airPurifierState(_ purifier: AirPurifierState) -> [String: JSON] {
        var state: [String: JSON] = [
            "fan_state": .string(purifier.fanMode == 0 ? "OFF" : "ON"),
            "fan_mode": .string(fanModeName(purifier.fanMode)),
        ]
        if let speed = purifier.fanSpeed { state["fan_speed"] = .int(speed) }
        if let pm25 = purifier.airQuality {
            state["pm25"] = .int(pm25)
            state["air_quality"] = .string(pm25 <= 35 ? "good" : pm25 <= 85 ? "ok" : "poor")
        } else {
            state["pm25"] = .null
            state["air_quality"] = "unknown"
        }
        if let ledsOff = purifier.ledsOff { state["led_enable"] = .bool(!ledsOff) }
        if let locked = purifier.controlsLocked { state["child_lock"] = .string(locked ? "LOCK" : "UNLOCK") }
        if let replace = purifier.filterNeedsReplacement { state["replace_filter"] = .bool(replace) }
        if let runtime = purifier.filterRuntime { state["filter_age"] = .int(runtime) }
        if let remaining = purifier.filterRemaining { state["filter_remaining"] = .int(remaining) }
        return state
    }

    /// "off", "auto", or the manual level "1"…"5" (gateway 10…50; other values rounded).
    public static func fanModeName(_ mode: Int) -> String {
        switch mode {
        case 0: "off"
        case 1: "auto"
        default: String(min(max((mode + 5) / 10, 1), 5))
        }
    }

    /// A group's state derived from its members, because the gateway never notifies a group's
    /// on/off or level: ON when any member light or plug is on, `brightness` the highest among the
    /// lit members, and for a room with lights or plugs always a `color_mode` it supports (see
    /// `groupColour`), `position` when its blinds agree.
    public static func payload(for group: Group, members: [Device], activeScene: String?) -> JSON {
        let switches = members.filter { $0.light != nil || $0.plug != nil }
        let lit = members.filter { $0.light?.on == true || $0.plug?.on == true }
        var state: [String: JSON] = [:]
        if !switches.isEmpty {
            state["state"] = .string(lit.isEmpty ? "OFF" : "ON")
        }
        let levels = lit.compactMap(\.light?.brightness)
        if let highest = levels.max() {
            state["brightness"] = .int(highest)
        }
        if let modes = ColorMode.supported(byGroupOf: members) {
            state.merge(groupColour(modes, lights: members.compactMap(\.light))) { _, new in new }
        }
        let blinds = members.compactMap(\.blind)
        if !blinds.isEmpty {
            let open = blinds.map(\.openPercent)
            if Set(open).count == 1 { state["position"] = .int(open[0]) }
        }
        if let activeScene { state["scene"] = .string(activeScene) }
        return .object(state)
    }

    /// The colour a room shows, in one of its `modes`, from its lit colour-capable bulbs (all of
    /// them while none is lit):
    /// - `color_temp` when the white-spectrum bulbs agree and the colour bulbs show that white
    ///   (what a colour temperature sent to the room leaves);
    /// - otherwise `xy` of the first colour bulb (or of the first bulb with an xy);
    /// - otherwise (white spectrum only, disagreeing) the temperature most of them have.
    /// A room of dimmable bulbs is `brightness`, a room of plugs `onoff`.
    static func groupColour(_ modes: [ColorMode], lights: [LightState]) -> [String: JSON] {
        if modes == [.onOff] || modes == [.brightness] { return ["color_mode": .string(modes[0].rawValue)] }
        let capable = lights.filter { $0.spectrum != .white }
        let candidates = capable.contains(where: \.on) ? capable.filter(\.on) : capable
        let temperatures = candidates.filter { $0.spectrum == .whiteSpectrum }.compactMap(mireds(of:))
        let colours = candidates.filter { $0.spectrum == .color }.compactMap(xy(of:))
        if modes.contains(.colorTemperature), let first = temperatures.first, Set(temperatures).count == 1 {
            let white = Color.xy(fromKelvin: Double(Color.kelvin(fromMireds: first)))
            let showWhite = colours.allSatisfy { abs($0.x - white.x) < 0.02 && abs($0.y - white.y) < 0.02 }
            if showWhite || !modes.contains(.xy) { return colorTemperature(first) }
        }
        if modes.contains(.xy), let xy = colours.first ?? candidates.lazy.compactMap(xy(of:)).first {
            return ["color_mode": .string(ColorMode.xy.rawValue), "color": colour(xy: xy, hueSaturation: nil)]
        }
        let counts = Dictionary(temperatures.map { ($0, 1) }, uniquingKeysWith: +)
        if let common = temperatures.first(where: { counts[$0] == counts.values.max() }) {
            return colorTemperature(common)
        }
        return [:]
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

    static func rounded(_ value: Double, _ digits: Int) -> Double {
        let scale = pow(10, Double(digits))
        return (value * scale).rounded() / scale
    }
}
