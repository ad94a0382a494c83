/// What kind of thing a device is, whatever hub it is on.
public enum DeviceType: Sendable, Hashable, CustomStringConvertible {
    case light, plug, blind, remote, motionSensor, repeater, soundRemote, airPurifier
    case unknown(String)

    /// A lower-case name for listings and MQTT (`light`, `air_purifier`, …).
    public var description: String {
        switch self {
        case .light: "light"
        case .plug: "plug"
        case .blind: "blind"
        case .remote: "remote"
        case .motionSensor: "motion_sensor"
        case .repeater: "repeater"
        case .soundRemote: "sound_remote"
        case .airPurifier: "air_purifier"
        case .unknown(let name): name
        }
    }
}

/// A device as the bridge's features see it, whatever hub it lives on: who it is, and what it
/// can do and reports, one capability each (`Capabilities/`). A hub kind translates its own
/// payloads into this; publishing, commands, Home Assistant and the requests use nothing else.
public struct HubDevice: Sendable, Hashable, Identifiable {
    public var id: ItemID
    /// The name in the hub's app.
    public var name: String
    public var type: DeviceType
    public var manufacturer: String
    public var model: String
    public var serial: String
    public var firmware: String?
    /// Runs on batteries (it has a battery entity even before it reports a level).
    public var batteryPowered: Bool
    /// Whether the hub can reach it, as the hub says (TRÅDFRI keeps a powered-off bulb reachable
    /// until a command to it fails).
    public var reachable: Bool?
    /// When the hub last heard from it, unix seconds.
    public var lastSeen: Int?

    public var light: Light?
    public var onOff: OnOff?
    public var cover: Cover?
    public var airPurifier: AirPurifier?
    public var battery: Battery?

    public init(
        id: ItemID, name: String, type: DeviceType, manufacturer: String = "", model: String = "",
        serial: String = "", firmware: String? = nil, batteryPowered: Bool = false
    ) {
        self.id = id
        self.name = name
        self.type = type
        self.manufacturer = manufacturer
        self.model = model
        self.serial = serial
        self.firmware = firmware
        self.batteryPowered = batteryPowered
    }

    /// Whether it is on (a light or an on/off device), nil for anything else.
    public var isOn: Bool? { light?.on ?? onOff?.on }

    /// A one-word summary of the main state for listings: "on 80%", "closed", "auto", "battery 87%".
    public var stateSummary: String {
        if let light {
            guard light.on else { return "off" }
            return "on \(Int((Double(light.brightness) / 254 * 100).rounded()))%"
        }
        if let onOff { return onOff.on ? "on" : "off" }
        if let cover { return "\(cover.openPercent)% open" }
        if let airPurifier {
            switch airPurifier.fanMode {
            case .off: return "off"
            case .auto: return "auto"
            case .level(let level): return "speed \(level)"
            }
        }
        if let level = battery?.level { return "battery \(level)%" }
        return "-"
    }
}

/// A group of devices (a TRÅDFRI room), with its scenes.
public struct HubGroup: Sendable, Hashable, Identifiable {
    public var id: ItemID
    public var name: String
    public var members: [ItemID]
    /// Sorted by id.
    public var scenes: [HubScene]

    public init(id: ItemID, name: String, members: [ItemID], scenes: [HubScene] = []) {
        self.id = id
        self.name = name
        self.members = members
        self.scenes = scenes
    }
}

/// A stored scene of a group (a TRÅDFRI "mood").
public struct HubScene: Sendable, Hashable, Identifiable {
    public var id: ItemID
    public var name: String

    public init(id: ItemID, name: String) {
        self.id = id
        self.name = name
    }
}
