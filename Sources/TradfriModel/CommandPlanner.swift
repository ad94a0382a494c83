import HubModel

/// TRÅDFRI: a hub-neutral `DeviceCommand` → the gateway's PUTs, with IKEA's rules.

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
    public static func plan(
        _ command: DeviceCommand, for device: Device
    ) -> (write: GatewayWrite?, remainder: DeviceCommand?) {
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
            if let mode = command.fanMode { body[GatewayKey.fanMode] = .int(fanModeValue(mode)) }
            if let enabled = command.ledEnable { body[GatewayKey.ledsOff] = .int(enabled ? 0 : 1) }
            if let locked = command.childLock { body[GatewayKey.controlsLocked] = .int(locked ? 1 : 0) }
            if !body.isEmpty {
                return (GatewayWrite(path: path, body: [GatewayKey.airPurifierCapability: [.object(body)]]), nil)
            }
        }
        return (nil, nil)
    }

    private static func lightPlan(
        _ command: DeviceCommand, light: LightState
    ) -> (body: [String: JSON], remainder: DeviceCommand?) {
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
            var remainder = DeviceCommand()
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

    /// The gateway's 5900 value of a fan mode (0 off, 1 auto, 10…50 the levels).
    static func fanModeValue(_ mode: FanMode) -> Int {
        switch mode {
        case .off: 0
        case .auto: 1
        case .level(let level): min(max(level, 1), 5) * 10
        }
    }

    /// The gateway keys for a colour on a bulb of `spectrum`.
    static func colourKeys(_ colour: DeviceCommand.Colour, spectrum: LightSpectrum) -> [String: JSON] {
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
        _ command: DeviceCommand, for group: Group, members: [Device]
    ) -> (group: DeviceCommand?, members: [Int: DeviceCommand]) {
        let (write, memberCommands) = plan(command, for: group, members: members)
        guard write != nil else { return (nil, memberCommands) }
        var groupPart = command
        groupPart.colour = nil
        groupPart.position = nil
        if command.colour != nil, command.on != false { groupPart.transition = nil }
        return (groupPart, memberCommands)
    }

    public static func plan(
        _ command: DeviceCommand, for group: Group, members: [Device]
    )
        -> (write: GatewayWrite?, memberCommands: [Int: DeviceCommand])
    {
        var body: [String: JSON] = [:]
        let tenths = command.transition.map { Int(($0 * 10).rounded()) } ?? 0
        if let scene = command.scene?.number {
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
        var memberCommands: [Int: DeviceCommand] = [:]
        if let colour = command.colour, command.on != false {
            for member in members where (member.light?.spectrum ?? .white) != .white {
                var memberCommand = DeviceCommand()
                memberCommand.colour = colour
                memberCommand.transition = command.transition
                memberCommands[member.id] = memberCommand
            }
        }
        if let position = command.position {
            for member in members where member.blind != nil {
                var memberCommand = DeviceCommand()
                memberCommand.position = position
                memberCommands[member.id] = memberCommand
            }
        }
        let write = body.isEmpty ? nil : GatewayWrite(path: GatewayPath.group(group.id), body: .object(body))
        return (write, memberCommands)
    }
}
