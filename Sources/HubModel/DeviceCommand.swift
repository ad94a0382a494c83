/// A command for one device or group, validated against what the target can do and normalised
/// (hub-neutral units), so that rapid commands to the same target can be merged (the latest
/// value of each attribute wins) before a hub turns it into its own requests.
public struct DeviceCommand: Sendable, Equatable {
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
    /// Covers: 0 (closed) … 100 (open).
    public var position: Int?
    public var stop = false
    public var fanMode: FanMode?
    public var ledEnable: Bool?
    public var childLock: Bool?
    /// Groups: the scene to activate.
    public var scene: ItemID?

    public init() {}

    public var isEmpty: Bool {
        on == nil && brightness == nil && colour == nil && position == nil && !stop && fanMode == nil
            && ledEnable == nil && childLock == nil && scene == nil
    }

    /// Merges a later command into this one: each attribute the later one sets wins.
    public mutating func merge(_ later: DeviceCommand) {
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

/// What the bridge currently expects a target's state to be (the hub's last report with commands
/// still queued applied), for TOGGLE and brightness steps.
public struct ExpectedState: Sendable, Equatable {
    public var on: Bool?
    public var brightness: Int?
    public init(on: Bool? = nil, brightness: Int? = nil) {
        self.on = on
        self.brightness = brightness
    }
}
