import Foundation

/// A command for one device or group, validated against what the target can do and normalised,
/// so that rapid commands to the same target can be merged (the latest value of each attribute
/// wins) before anything is sent.
public struct Command: Sendable, Equatable {
    public enum Colour: Sendable, Equatable {
        case temperature(mireds: Int)
        case xy(Color.XY)
        /// Hue in degrees (0…360), saturation in percent (0…100).
        case hueSaturation(hue: Double, saturation: Double)
    }

    public var on: Bool?
    /// 1…254 (a request for 0 becomes `on = false`).
    public var brightness: Int?
    public var colour: Colour?
    /// Seconds.
    public var transition: Double?
    /// Blinds: 0 (closed) … 100 (open).
    public var position: Int?
    public var stop = false
    /// Air purifier: the gateway's 5900 value (0 off, 1 auto, 10…50 levels).
    public var fanMode: Int?
    public var ledEnable: Bool?
    public var childLock: Bool?
    /// Groups: the scene to activate.
    public var scene: Int?

    public init() {}

    public var isEmpty: Bool {
        on == nil && brightness == nil && colour == nil && position == nil && !stop && fanMode == nil
            && ledEnable == nil && childLock == nil && scene == nil
    }

    /// Merges a later command into this one: each attribute the later one sets wins.
    public mutating func merge(_ later: Command) {
        if let value = later.on { on = value }
        if let value = later.brightness { brightness = value }
        if let value = later.colour { colour = value }
        if let value = later.transition { transition = value }
        if let value = later.position {
            position = value
            stop = false
        }
        if later.stop {
            stop = true
            position = nil
        }
        if let value = later.fanMode { fanMode = value }
        if let value = later.ledEnable { ledEnable = value }
        if let value = later.childLock { childLock = value }
        if let value = later.scene { scene = value }
    }
}

/// Why a command cannot be carried out; the bridge reports it on `bridge/event` with the topic.
public struct CommandError: Error, Sendable, Equatable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// What a command is for, and what the bridge currently expects its state to be (the gateway's
/// last report with commands still queued applied), for TOGGLE and brightness steps.
public enum CommandTarget: Sendable {
    case device(Device)
    case group(Group, members: [Device], scenes: [Scene])
}

public struct ExpectedState: Sendable, Equatable {
    public var on: Bool?
    public var brightness: Int?
    public init(on: Bool? = nil, brightness: Int? = nil) {
        self.on = on
        self.brightness = brightness
    }
}

// MARK: - Parsing MQTT payloads

public enum CommandParser {
    /// Largest accepted command payload.
    public static let maxPayload = 4096

    /// The attributes of a message on `<name>/set` (JSON object, or plain ON / OFF / TOGGLE /
    /// OPEN / CLOSE / STOP / LOCK / UNLOCK) or `<name>/set/<attribute>` (a raw value, JSON if it
    /// parses, text otherwise).
    public static func attributes(payload: [UInt8], attribute: String?) throws(CommandError) -> [String: JSON] {
        guard payload.count <= maxPayload else {
            throw CommandError("payload of \(payload.count) bytes is too large (at most \(maxPayload))")
        }
        let text = String(decoding: payload, as: UTF8.self).trimmingPrefix(while: \.isWhitespace)
        guard !text.isEmpty else { throw CommandError("empty payload") }
        if let attribute {
            guard !attribute.isEmpty else { throw CommandError("empty attribute name") }
            let value = (try? JSON(parsing: String(text))) ?? .string(String(text))
            return [attribute: value]
        }
        if text.first == "{" {
            do {
                let json = try JSON(parsing: String(text), limits: .init(maxDepth: 8, maxBytes: maxPayload))
                guard let object = json.objectValue else { throw CommandError("expected a JSON object") }
                return object
            } catch let error as JSONError {
                throw CommandError("malformed JSON: \(error)")
            } catch {
                throw CommandError("malformed JSON")
            }
        }
        let word = String(text).trimmingCharacters(in: .whitespacesAndNewlines).uppercased()
        if ["ON", "OFF", "TOGGLE", "OPEN", "CLOSE", "STOP", "LOCK", "UNLOCK"].contains(word) {
            return ["state": .string(word)]
        }
        throw CommandError("expected a JSON object or ON, OFF, TOGGLE, OPEN, CLOSE or STOP")
    }

    /// Validates `attributes` for `target` and turns them into a command.
    public static func command(
        from attributes: [String: JSON], for target: CommandTarget, expected: ExpectedState
    ) throws(CommandError) -> Command {
        switch target {
        case .device(let device):
            if let light = device.light {
                return try lightCommand(attributes, light: light, name: device.name, expected: expected)
            }
            if device.plug != nil { return try plugCommand(attributes, expected: expected) }
            if device.blind != nil { return try blindCommand(attributes) }
            if device.airPurifier != nil { return try airPurifierCommand(attributes) }
            throw CommandError(
                "'\(device.name)' is a \(device.kind) and has nothing to set: remotes, sensors and repeaters only report their battery through the gateway"
            )
        case .group(let group, let members, let scenes):
            return try groupCommand(attributes, group: group, members: members, scenes: scenes, expected: expected)
        }
    }

    private static func checkKnown(_ attributes: [String: JSON], _ known: [String], what: String) throws(CommandError) {
        for key in attributes.keys.sorted() where !known.contains(key) && !ignored.contains(key) {
            throw CommandError("unknown attribute '\(key)' for \(what) (known: \(known.joined(separator: ", ")))")
        }
    }

    /// Keys that clients send alongside commands and that carry no command of their own.
    static let ignored: Set<String> = ["transaction", "color_mode", "linkquality", "last_seen", "update"]

    // MARK: Lights

    static let lightAttributes = [
        "state", "brightness", "brightness_percent", "brightness_step", "color_temp",
        "color_temp_kelvin", "color", "transition",
    ]

    private static func lightCommand(
        _ attributes: [String: JSON], light: LightState, name: String, expected: ExpectedState
    ) throws(CommandError) -> Command {
        try checkKnown(attributes, lightAttributes, what: "a light")
        var command = Command()
        try readSwitch(attributes, into: &command, expected: expected)
        try readBrightness(attributes, into: &command, expected: expected)
        try readTransition(attributes, into: &command)
        if let colour = try readColour(attributes) {
            switch (light.spectrum, colour) {
            case (.white, _):
                throw CommandError("'\(name)' is a dimmable white bulb: it has no colour or colour temperature")
            case (.whiteSpectrum, .temperature), (.whiteSpectrum, .xy), (.whiteSpectrum, .hueSaturation), (.color, _):
                command.colour = colour
            }
        }
        guard !command.isEmpty else { throw CommandError("nothing to do: give state, brightness, color_temp or color") }
        return command
    }

    private static func readSwitch(
        _ attributes: [String: JSON], into command: inout Command,
        expected: ExpectedState
    ) throws(CommandError) {
        guard let value = attributes["state"] else { return }
        switch value.boolValue.map({ $0 ? "ON" : "OFF" }) ?? value.stringValue?.uppercased() {
        case "ON": command.on = true
        case "OFF": command.on = false
        case "TOGGLE": command.on = !(expected.on ?? false)
        default: throw CommandError("state must be ON, OFF or TOGGLE (got \(value))")
        }
    }

    private static func number(
        _ value: JSON, _ name: String, _ range: ClosedRange<Double>
    ) throws(CommandError) -> Double {
        let number = value.doubleValue ?? value.stringValue.flatMap { Double($0) }
        guard let number, number.isFinite else {
            throw CommandError(
                "\(name) must be a number from \(format(range.lowerBound)) to \(format(range.upperBound)) (got \(value))"
            )
        }
        guard range.contains(number) else {
            throw CommandError(
                "\(name) \(format(number)) is out of range (\(format(range.lowerBound))…\(format(range.upperBound)))")
        }
        return number
    }

    /// "254" for whole numbers a person would type; anything else (1e300) as Swift prints a Double.
    private static func format(_ value: Double) -> String {
        value.rounded() == value && abs(value) < 1e15 ? String(Int(value)) : String(value)
    }

    private static func readBrightness(
        _ attributes: [String: JSON], into command: inout Command,
        expected: ExpectedState
    ) throws(CommandError) {
        var level: Int?
        if let value = attributes["brightness"] {
            level = Int(try number(value, "brightness", 0...254).rounded())
        } else if let value = attributes["brightness_percent"] {
            level = Int((try number(value, "brightness_percent", 0...100) / 100 * 254).rounded())
        } else if let value = attributes["brightness_step"] {
            let step = Int(try number(value, "brightness_step", -255...255).rounded())
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

    private static func readTransition(_ attributes: [String: JSON], into command: inout Command) throws(CommandError) {
        guard let value = attributes["transition"] else { return }
        command.transition = try number(value, "transition", 0...6553)
    }

    static let temperaturePresets = ["coolest": 250, "cool": 250, "neutral": 370, "warm": 454, "warmest": 454]

    private static func readColour(_ attributes: [String: JSON]) throws(CommandError) -> Command.Colour? {
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

    // MARK: Plugs, blinds, air purifier

    private static func plugCommand(
        _ attributes: [String: JSON], expected: ExpectedState
    ) throws(CommandError) -> Command {
        try checkKnown(attributes, ["state"], what: "a plug")
        var command = Command()
        try readSwitch(attributes, into: &command, expected: expected)
        guard !command.isEmpty else { throw CommandError("nothing to do: give state ON, OFF or TOGGLE") }
        return command
    }

    private static func blindCommand(_ attributes: [String: JSON]) throws(CommandError) -> Command {
        try checkKnown(attributes, ["state", "position"], what: "a blind")
        var command = Command()
        if let value = attributes["position"] {
            command.position = Int(try number(value, "position", 0...100).rounded())
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

    private static func airPurifierCommand(_ attributes: [String: JSON]) throws(CommandError) -> Command {
        try checkKnown(attributes, ["fan_mode", "fan_state", "led_enable", "child_lock"], what: "an air purifier")
        var command = Command()
        if let value = attributes["fan_state"] {
            switch value.boolValue.map({ $0 ? "ON" : "OFF" }) ?? value.stringValue?.uppercased() {
            case "ON": command.fanMode = 1
            case "OFF": command.fanMode = 0
            default: throw CommandError("fan_state must be ON or OFF (got \(value))")
            }
        }
        if let value = attributes["fan_mode"] {
            let text = value.stringValue?.lowercased() ?? value.intValue.map(String.init) ?? ""
            switch text {
            case "off": command.fanMode = 0
            case "auto": command.fanMode = 1
            case "1", "2", "3", "4", "5": command.fanMode = Int(text)! * 10
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

    // MARK: Groups

    private static func groupCommand(
        _ attributes: [String: JSON], group: Group, members: [Device], scenes: [Scene], expected: ExpectedState
    ) throws(CommandError) -> Command {
        try checkKnown(attributes, lightAttributes + ["scene", "position"], what: "a group")
        var command = Command()
        try readSwitch(attributes, into: &command, expected: expected)
        try readBrightness(attributes, into: &command, expected: expected)
        try readTransition(attributes, into: &command)
        if let colour = try readColour(attributes) {
            guard members.contains(where: { ($0.light?.spectrum ?? .white) != .white }) else {
                throw CommandError("group '\(group.name)' has no lights with colour or colour temperature")
            }
            command.colour = colour
        }
        if let value = attributes["position"] {
            guard members.contains(where: { $0.blind != nil }) else {
                throw CommandError("group '\(group.name)' has no blinds")
            }
            command.position = Int(try number(value, "position", 0...100).rounded())
        }
        if let value = attributes["scene"] {
            let match: Scene? =
                if let id = value.intValue { scenes.first { $0.id == id } } else if let name = value.stringValue {
                    scenes.first { $0.name == name } ?? scenes.first { $0.name.lowercased() == name.lowercased() }
                        ?? scenes.first { String($0.id) == name }
                } else { nil }
            guard let match else {
                let names = scenes.map(\.name).sorted().joined(separator: ", ")
                throw CommandError(
                    "group '\(group.name)' has no scene \(value)" + (names.isEmpty ? "" : " (scenes: \(names))"))
            }
            command.scene = match.id
        }
        guard !command.isEmpty else {
            throw CommandError("nothing to do: give state, brightness, scene, color_temp or color")
        }
        return command
    }
}

// MARK: - Planning gateway writes

/// One PUT to the gateway.
public struct GatewayWrite: Sendable, Equatable, CustomStringConvertible {
    public var path: String
    public var body: JSON
    public init(path: String, body: JSON) {
        self.path = path
        self.body = body
    }
    public var description: String { "PUT \(path) \(body)" }
}

public enum CommandPlanner {
    /// The next PUT that carries out (part of) `command` on `device`, and what is left for a later
    /// PUT. IKEA's rules: hue and saturation travel together; colour temperature for a colour bulb
    /// is sent as xy; hue is clamped to what bulbs accept; a bulb fades only one attribute at a
    /// time, so brightness plus colour with a transition becomes two PUTs (brightness at once,
    /// then the colour with the transition, as Zigbee2MQTT does); colour goes in the same PUT that
    /// turns the light on (it is ignored by a light that is off).
    public static func plan(_ command: Command, for device: Device) -> (write: GatewayWrite?, remainder: Command?) {
        let path = GatewayPath.device(device.id)
        if let light = device.light {
            let (body, remainder) = lightPlan(command, light: light)
            return (
                body.isEmpty ? nil : GatewayWrite(path: path, body: [GatewayKey.lightCapability: [.object(body)]]),
                remainder
            )
        }
        if device.plug != nil, let on = command.on {
            return (
                GatewayWrite(path: path, body: [GatewayKey.plugCapability: [[GatewayKey.on: .int(on ? 1 : 0)]]]), nil
            )
        }
        if device.blind != nil {
            if command.stop {
                return (
                    GatewayWrite(path: path, body: [GatewayKey.blindCapability: [[GatewayKey.blindTrigger: 0]]]), nil
                )
            }
            if let position = command.position {
                return (
                    GatewayWrite(
                        path: path,
                        body: [
                            GatewayKey.blindCapability: [
                                [
                                    GatewayKey.blindPosition: .double(Double(100 - position))
                                ]
                            ]
                        ]), nil
                )
            }
        }
        if device.airPurifier != nil {
            var body: [String: JSON] = [:]
            if let mode = command.fanMode { body[GatewayKey.fanMode] = .int(mode) }
            if let enabled = command.ledEnable { body[GatewayKey.ledsOff] = .int(enabled ? 0 : 1) }
            if let locked = command.childLock { body[GatewayKey.controlsLocked] = .int(locked ? 1 : 0) }
            if !body.isEmpty {
                return (GatewayWrite(path: path, body: [GatewayKey.airPurifierCapability: [.object(body)]]), nil)
            }
        }
        return (nil, nil)
    }

    private static func lightPlan(_ command: Command, light: LightState) -> (body: [String: JSON], remainder: Command?)
    {
        let tenths = command.transition.map { Int(($0 * 10).rounded()) } ?? 0
        if command.on == false {
            // A fade to off is a dim to 0 with a transition; on/off itself does not fade.
            return tenths > 0
                ? ([GatewayKey.dimmer: 0, GatewayKey.transitionTime: .int(tenths)], nil)
                : ([GatewayKey.on: 0], nil)
        }
        let colour = command.colour.map { colourKeys($0, spectrum: light.spectrum) } ?? [:]
        var body: [String: JSON] = [:]
        if command.on == true { body[GatewayKey.on] = 1 }
        if tenths > 0, !colour.isEmpty, let level = command.brightness {
            // Two attributes cannot fade together: brightness now, the colour with the transition next.
            body[GatewayKey.dimmer] = .int(level)
            var remainder = Command()
            remainder.colour = command.colour
            remainder.transition = command.transition
            return (body, remainder)
        }
        if let level = command.brightness { body[GatewayKey.dimmer] = .int(level) }
        body.merge(colour) { _, new in new }
        if tenths > 0, command.brightness != nil || !colour.isEmpty {
            body[GatewayKey.transitionTime] = .int(tenths)
        }
        return (body, nil)
    }

    /// The gateway keys for a colour on a bulb of `spectrum`.
    static func colourKeys(_ colour: Command.Colour, spectrum: LightSpectrum) -> [String: JSON] {
        switch spectrum {
        case .white:
            return [:]
        case .whiteSpectrum:
            let mireds: Int
            switch colour {
            case .temperature(let value): mireds = value
            case .xy(let xy): mireds = Color.mireds(fromKelvin: Color.kelvin(fromXY: xy))
            case .hueSaturation(let hue, let saturation):
                let xy = Color.xy(fromRGB: Color.rgb(hue: hue, saturation: saturation / 100))
                mireds = Color.mireds(fromKelvin: Color.kelvin(fromXY: xy))
            }
            let range = Color.whiteSpectrumMireds
            return [GatewayKey.colorTemperature: .int(min(max(mireds, range.lowerBound), range.upperBound))]
        case .color:
            switch colour {
            case .temperature(let mireds):
                let xy = Color.gatewayXY(Color.xy(fromKelvin: Double(Color.kelvin(fromMireds: mireds))))
                return [GatewayKey.colorX: .int(xy.x), GatewayKey.colorY: .int(xy.y)]
            case .xy(let value):
                let xy = Color.gatewayXY(value)
                return [GatewayKey.colorX: .int(xy.x), GatewayKey.colorY: .int(xy.y)]
            case .hueSaturation(let hue, let saturation):
                return [
                    GatewayKey.hue: .int(Color.gatewayHue(degrees: hue)),
                    GatewayKey.saturation: .int(Color.gatewaySaturation(percent: saturation)),
                ]
            }
        }
    }

    /// The group PUT (flat keys) and the per-member commands a group command needs: on/off,
    /// brightness and scenes go to the group (one Zigbee group command); colour and blind
    /// positions, which the gateway does not apply through groups, go to each member.
    /// A group command as the bridge queues it: the part for the group resource (on/off,
    /// brightness, scene, and the transition unless it is the members' colour that fades: one
    /// attribute fades at a time), and a command for each member that needs its own (colour,
    /// blind position). The group part is planned again into its write when its turn comes.
    public static func split(
        _ command: Command, for group: Group, members: [Device]
    ) -> (group: Command?, members: [Int: Command]) {
        let (write, memberCommands) = plan(command, for: group, members: members)
        guard write != nil else { return (nil, memberCommands) }
        var groupPart = command
        groupPart.colour = nil
        groupPart.position = nil
        if command.colour != nil, command.on != false { groupPart.transition = nil }
        return (groupPart, memberCommands)
    }

    public static func plan(
        _ command: Command, for group: Group, members: [Device]
    )
        -> (write: GatewayWrite?, memberCommands: [Int: Command])
    {
        var body: [String: JSON] = [:]
        let tenths = command.transition.map { Int(($0 * 10).rounded()) } ?? 0
        if let scene = command.scene {
            body[GatewayKey.on] = 1
            body[GatewayKey.sceneID] = .int(scene)
        } else {
            if let on = command.on {
                if !on, tenths > 0 {
                    body[GatewayKey.dimmer] = 0
                } else {
                    body[GatewayKey.on] = .int(on ? 1 : 0)
                }
            }
            if command.on != false, let level = command.brightness { body[GatewayKey.dimmer] = .int(level) }
            if tenths > 0, body[GatewayKey.dimmer] != nil, command.colour == nil {
                body[GatewayKey.transitionTime] = .int(tenths)
            }
        }
        var memberCommands: [Int: Command] = [:]
        if let colour = command.colour, command.on != false {
            for member in members where (member.light?.spectrum ?? .white) != .white {
                var memberCommand = Command()
                memberCommand.colour = colour
                memberCommand.transition = command.transition
                memberCommands[member.id] = memberCommand
            }
        }
        if let position = command.position {
            for member in members where member.blind != nil {
                var memberCommand = Command()
                memberCommand.position = position
                memberCommands[member.id] = memberCommand
            }
        }
        let write = body.isEmpty ? nil : GatewayWrite(path: GatewayPath.group(group.id), body: .object(body))
        return (write, memberCommands)
    }
}
