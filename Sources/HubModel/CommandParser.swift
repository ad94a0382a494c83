import Foundation

/// What a command is for: a device, or a group with its member devices.
public enum CommandTarget: Sendable {
    case device(HubDevice)
    case group(HubGroup, members: [HubDevice])
}

/// MQTT payloads → `DeviceCommand`s. Each capability reads its own attributes (`Light.command`,
/// `OnOff.command`, …); this dispatches to the capability a device has and composes the group
/// command from the lights, covers and scenes of a group.
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
    ) throws(CommandError) -> DeviceCommand {
        switch target {
        case .device(let device):
            if let light = device.light {
                return try Light.command(attributes, light: light, name: device.name, expected: expected)
            }
            if device.onOff != nil { return try OnOff.command(attributes, expected: expected) }
            if device.cover != nil { return try Cover.command(attributes) }
            if device.airPurifier != nil { return try AirPurifier.command(attributes) }
            throw CommandError(
                "'\(device.name)' is a \(device.type) and has nothing to set: remotes, sensors and repeaters only report their battery through the gateway"
            )
        case .group(let group, let members):
            return try groupCommand(attributes, group: group, members: members, expected: expected)
        }
    }

    // MARK: Groups

    /// A group takes what its lights take (sent to the group, or to each member bulb that can
    /// take a colour), `position` for its covers, and `scene` (a name, or an id).
    private static func groupCommand(
        _ attributes: [String: JSON], group: HubGroup, members: [HubDevice], expected: ExpectedState
    ) throws(CommandError) -> DeviceCommand {
        try CommandReader.checkKnown(attributes, Light.attributes + ["scene", "position"], what: "a group")
        var command = DeviceCommand()
        try CommandReader.readSwitch(attributes, into: &command, expected: expected)
        try Light.readBrightness(attributes, into: &command, expected: expected)
        try Light.readTransition(attributes, into: &command)
        if let colour = try Light.readColour(attributes) {
            guard members.contains(where: { ($0.light?.spectrum ?? .white) != .white }) else {
                throw CommandError("group '\(group.name)' has no lights with colour or colour temperature")
            }
            command.colour = colour
        }
        if let value = attributes["position"] {
            guard members.contains(where: { $0.cover != nil }) else {
                throw CommandError("group '\(group.name)' has no blinds")
            }
            command.position = Int(try CommandReader.number(value, "position", 0...100).rounded())
        }
        if let value = attributes["scene"] {
            let scenes = group.scenes
            let match: HubScene? =
                if let id = value.intValue {
                    scenes.first { $0.id.local == String(id) }
                } else if let name = value
                    .stringValue
                {
                    scenes.first { $0.name == name } ?? scenes.first { $0.name.lowercased() == name.lowercased() }
                        ?? scenes.first { $0.id.local == name }
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

/// What the capabilities share to read their attributes.
enum CommandReader {
    /// Keys that clients send alongside commands and that carry no command of their own.
    static let ignored: Set<String> = ["transaction", "color_mode", "linkquality", "last_seen", "update"]

    static func checkKnown(_ attributes: [String: JSON], _ known: [String], what: String) throws(CommandError) {
        for key in attributes.keys.sorted() where !known.contains(key) && !ignored.contains(key) {
            throw CommandError("unknown attribute '\(key)' for \(what) (known: \(known.joined(separator: ", ")))")
        }
    }

    /// `state` ON, OFF or TOGGLE (true/false too).
    static func readSwitch(
        _ attributes: [String: JSON], into command: inout DeviceCommand, expected: ExpectedState
    ) throws(CommandError) {
        guard let value = attributes["state"] else { return }
        switch value.boolValue.map({ $0 ? "ON" : "OFF" }) ?? value.stringValue?.uppercased() {
        case "ON": command.on = true
        case "OFF": command.on = false
        case "TOGGLE": command.on = !(expected.on ?? false)
        default: throw CommandError("state must be ON, OFF or TOGGLE (got \(value))")
        }
    }

    static func number(_ value: JSON, _ name: String, _ range: ClosedRange<Double>) throws(CommandError) -> Double {
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
    static func format(_ value: Double) -> String {
        value.rounded() == value && abs(value) < 1e15 ? String(Int(value)) : String(value)
    }
}
