#if canImport(Glibc)
import Glibc
#endif

/// The colour abilities of a bulb.
public enum LightSpectrum: String, Sendable, Hashable {
    /// Dimmable white: on/off and brightness only.
    case white
    /// White spectrum: adds colour temperature.
    case whiteSpectrum = "white_spectrum"
    /// Colour: CIE xy and hue/saturation.
    case color
}

/// A light: on/off, brightness, and colour temperature or colour as its spectrum allows.
///
/// Everything the bridge does with a light lives here: the keys of its MQTT state (Zigbee2MQTT's:
/// `state`, `brightness` 0–254, `color_mode` always, `color_temp` in mireds with
/// `color_temp_kelvin`, `color` {x, y, hex, hue, saturation}, `power_on_behavior`), the
/// attributes its commands take, and its Home Assistant entity (JSON schema).
public struct Light: Sendable, Hashable {
    public enum PowerOnBehavior: String, Sendable, Hashable {
        case on, previous
    }

    public struct HueSaturation: Sendable, Hashable {
        /// Degrees, 0…360.
        public var hue: Double
        /// Percent, 0…100.
        public var saturation: Double
        public init(hue: Double, saturation: Double) {
            self.hue = hue
            self.saturation = saturation
        }
    }

    public var on: Bool
    /// 0…254.
    public var brightness: Int
    public var spectrum: LightSpectrum
    /// Mireds (white spectrum): as reported, or the nearest temperature of the reported colour.
    public var colorTemperature: Int?
    /// The mireds the bulb accepts (white spectrum).
    public var colorTemperatureRange: ClosedRange<Int>
    /// As reported, or from hue and saturation.
    public var xy: Color.XY?
    /// Colour bulbs that report hue and saturation.
    public var hueSaturation: HueSaturation?
    public var powerOnBehavior: PowerOnBehavior?

    public init(
        on: Bool, brightness: Int, spectrum: LightSpectrum, colorTemperature: Int? = nil,
        colorTemperatureRange: ClosedRange<Int> = 250...454, xy: Color.XY? = nil,
        hueSaturation: HueSaturation? = nil, powerOnBehavior: PowerOnBehavior? = nil
    ) {
        self.on = on
        self.brightness = brightness
        self.spectrum = spectrum
        self.colorTemperature = colorTemperature
        self.colorTemperatureRange = colorTemperatureRange
        self.xy = xy
        self.hueSaturation = hueSaturation
        self.powerOnBehavior = powerOnBehavior
    }

    // MARK: MQTT state

    /// A light's state always names its `color_mode` with that mode's colour data (Home Assistant
    /// shows brightness and colour only then): `brightness` for dimmable bulbs, `color_temp` (plus
    /// `color_temp_kelvin`) for white spectrum, `xy` with `color` for colour bulbs.
    public func state(into state: inout [String: JSON]) {
        state["state"] = .string(on ? "ON" : "OFF")
        state["brightness"] = .int(brightness)
        if let powerOnBehavior { state["power_on_behavior"] = .string(powerOnBehavior.rawValue) }
        switch spectrum {
        case .white:
            state["color_mode"] = .string(ColorMode.brightness.rawValue)
        case .whiteSpectrum:
            if let colorTemperature {
                state.merge(Self.colorTemperatureState(colorTemperature)) { _, new in new }
            }
            if let xy { state["color"] = Self.colour(xy: xy, hueSaturation: nil) }
        case .color:
            if let xy {
                state["color_mode"] = .string(ColorMode.xy.rawValue)
                state["color"] = Self.colour(xy: xy, hueSaturation: hueSaturation)
            }
        }
    }

    static func colorTemperatureState(_ mireds: Int) -> [String: JSON] {
        [
            "color_mode": .string(ColorMode.colorTemperature.rawValue), "color_temp": .int(mireds),
            "color_temp_kelvin": .int(Color.kelvin(fromMireds: mireds)),
        ]
    }

    static func colour(xy: Color.XY, hueSaturation: HueSaturation?) -> JSON {
        var colour: [String: JSON] = [
            "x": .double(rounded(xy.x, 4)), "y": .double(rounded(xy.y, 4)),
            "hex": .string("#" + Color.rgb(fromXY: xy).hex),
        ]
        if let hueSaturation {
            colour["hue"] = .int(Int(hueSaturation.hue.rounded()))
            colour["saturation"] = .int(Int(hueSaturation.saturation.rounded()))
        }
        return .object(colour)
    }

    static func rounded(_ value: Double, _ digits: Int) -> Double {
        let scale = pow(10, Double(digits))
        return (value * scale).rounded() / scale
    }

    // MARK: Commands

    public static let attributes = [
        "state", "brightness", "brightness_percent", "brightness_step", "color_temp",
        "color_temp_kelvin", "color", "transition",
    ]

    static func command(
        _ attributes: [String: JSON], light: Light, name: String, expected: ExpectedState
    ) throws(CommandError) -> DeviceCommand {
        try CommandReader.checkKnown(attributes, Self.attributes, what: "a light")
        var command = DeviceCommand()
        try CommandReader.readSwitch(attributes, into: &command, expected: expected)
        try readBrightness(attributes, into: &command, expected: expected)
        try readTransition(attributes, into: &command)
        if let colour = try readColour(attributes) {
            guard light.spectrum != .white else {
                throw CommandError("'\(name)' is a dimmable white bulb: it has no colour or colour temperature")
            }
            command.colour = colour
        }
        guard !command.isEmpty else { throw CommandError("nothing to do: give state, brightness, color_temp or color") }
        return command
    }

    /// `brightness` 0–254, `brightness_percent` 0–100 or `brightness_step` ±255 (from the
    /// expected level); 0 means off, anything else also switches on.
    static func readBrightness(
        _ attributes: [String: JSON], into command: inout DeviceCommand, expected: ExpectedState
    ) throws(CommandError) {
        var level: Int?
        if let value = attributes["brightness"] {
            level = Int(try CommandReader.number(value, "brightness", 0...254).rounded())
        } else if let value = attributes["brightness_percent"] {
            level = Int((try CommandReader.number(value, "brightness_percent", 0...100) / 100 * 254).rounded())
        } else if let value = attributes["brightness_step"] {
            let step = Int(try CommandReader.number(value, "brightness_step", -255...255).rounded())
            let base = (expected.on ?? false) ? (expected.brightness ?? 0) : 0
            level = min(max(base + step, 1), 254)
        }
        guard let level else { return }
        if level == 0 {
            command.on = false
        } else {
            command.brightness = level
            if command.on == nil { command.on = true }
        }
    }

    static func readTransition(_ attributes: [String: JSON], into command: inout DeviceCommand) throws(CommandError) {
        guard let value = attributes["transition"] else { return }
        command.transition = try CommandReader.number(value, "transition", 0...6553)
    }

    static let temperaturePresets = ["coolest": 250, "cool": 250, "neutral": 370, "warm": 454, "warmest": 454]

    /// `color_temp` (mireds or a preset name), `color_temp_kelvin`, or `color` as {x, y},
    /// {hue, saturation}, {hex}, {r, g, b}, {rgb: "r,g,b"} or "#rrggbb".
    static func readColour(_ attributes: [String: JSON]) throws(CommandError) -> DeviceCommand.Colour? {
        let number = CommandReader.number
        if let value = attributes["color_temp"] {
            if let name = value.stringValue?.lowercased(), let mireds = temperaturePresets[name] {
                return .temperature(mireds: mireds)
            }
            return .temperature(mireds: Int(try number(value, "color_temp", 100...1000).rounded()))
        }
        if let value = attributes["color_temp_kelvin"] {
            return .temperature(mireds: Color.mireds(fromKelvin: try number(value, "color_temp_kelvin", 1000...10000)))
        }
        guard let value = attributes["color"] else { return nil }
        if let text = value.stringValue {
            guard let rgb = Color.RGB(hex: text) else { throw CommandError("color '\(text)' is not a #RRGGBB colour") }
            return .xy(Color.xy(fromRGB: rgb))
        }
        guard let colour = value.objectValue else {
            throw CommandError(
                "color must be an object such as {\"x\":0.3,\"y\":0.3}, {\"hue\":120,\"saturation\":80} or {\"hex\":\"#ff0000\"}"
            )
        }
        if let x = colour["x"], let y = colour["y"] {
            return .xy(Color.XY(x: try number(x, "color.x", 0...1), y: try number(y, "color.y", 0...1)))
        }
        if let hue = colour["hue"] ?? colour["h"], let saturation = colour["saturation"] ?? colour["s"] {
            return .hueSaturation(
                hue: try number(hue, "color.hue", 0...360),
                saturation: try number(saturation, "color.saturation", 0...100))
        }
        if colour["hue"] != nil || colour["h"] != nil || colour["saturation"] != nil || colour["s"] != nil {
            throw CommandError("color needs hue and saturation together")
        }
        if let hex = colour["hex"] {
            guard let text = hex.stringValue, let rgb = Color.RGB(hex: text) else {
                throw CommandError("color.hex must be a #RRGGBB colour (got \(hex))")
            }
            return .xy(Color.xy(fromRGB: rgb))
        }
        if let red = colour["r"], let green = colour["g"], let blue = colour["b"] {
            let rgb = Color.RGB(
                red: Int(try number(red, "color.r", 0...255)), green: Int(try number(green, "color.g", 0...255)),
                blue: Int(try number(blue, "color.b", 0...255)))
            return .xy(Color.xy(fromRGB: rgb))
        }
        if let text = colour["rgb"]?.stringValue {
            let parts = text.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard parts.count == 3, parts.allSatisfy({ (0...255).contains($0) }) else {
                throw CommandError("color.rgb must be \"R,G,B\" with values 0…255")
            }
            return .xy(Color.xy(fromRGB: Color.RGB(red: parts[0], green: parts[1], blue: parts[2])))
        }
        throw CommandError("color must give x and y, hue and saturation, hex, or r, g and b")
    }

    // MARK: Home Assistant

    /// The light entity: JSON schema on `<name>` / `<name>/set`, the bulb's colour modes.
    public func homeAssistantEntities(state: String) -> [HomeAssistantEntity] {
        [
            HomeAssistantEntity(
                "light", "light", name: nil,
                Self.homeAssistantKeys(
                    state: state, modes: ColorMode.supported(by: spectrum), mireds: colorTemperatureRange))
        ]
    }

    /// A JSON-schema light with brightness 0–254, colour temperature in mireds, the given modes.
    ///
    /// Accepted as is by Home Assistant 2024.3 up to the newest release: 2024.3 takes
    /// `supported_color_modes` only together with `color_mode: true` (later releases ignore that
    /// flag; 2025.3–2026.2 log an error line about it and go on) and sends brightness in its
    /// commands only with `brightness: true`; Kelvin options would be read as mireds by 2024.3.
    public static func homeAssistantKeys(
        state: String, modes: [ColorMode], mireds: ClosedRange<Int>
    ) -> [String: JSON] {
        var keys: [String: JSON] = [
            "schema": "json", "command_topic": .string(state + "/set"), "state_topic": .string(state),
            "color_mode": true, "supported_color_modes": .array(modes.map { .string($0.rawValue) }),
            "effect": false, "flash": false,
        ]
        if modes != [.onOff] {
            keys["brightness"] = true
            keys["brightness_scale"] = 254
        }
        if modes.contains(.colorTemperature) {
            keys["min_mireds"] = .int(mireds.lowerBound)
            keys["max_mireds"] = .int(mireds.upperBound)
        }
        return keys
    }
}
