/// A device's or group's state → the JSON it publishes on `<base>/<name>`, following
/// Zigbee2MQTT's conventions so existing tools (Home Assistant, Node-RED, dashboards) work
/// unchanged. Each capability writes its own keys (`Capabilities/`); this composes them, and
/// derives a group's state from its members.
public enum MQTTState {
    public static func payload(for device: HubDevice) -> JSON {
        var state: [String: JSON] = [:]
        device.light?.state(into: &state)
        device.onOff?.state(into: &state)
        device.cover?.state(into: &state)
        device.airPurifier?.state(into: &state)
        device.battery?.state(into: &state)
        LastSeen.state(device.lastSeen, into: &state)
        return .object(state)
    }

    /// A group's state derived from its members (a TRÅDFRI gateway never notifies a group's on/off
    /// or level): ON when any member light or on/off device is on, `brightness` the highest among
    /// the lit members, and for a room with lights or on/off devices always a `color_mode` it
    /// supports (see `groupColour`), `position` when its covers agree.
    public static func payload(for group: HubGroup, members: [HubDevice]) -> JSON {
        let switches = members.filter { $0.light != nil || $0.onOff != nil }
        let lit = members.filter { $0.isOn == true }
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
        let covers = members.compactMap(\.cover)
        if !covers.isEmpty {
            let open = covers.map(\.openPercent)
            if Set(open).count == 1 { state["position"] = .int(open[0]) }
        }
        return .object(state)
    }

    /// The colour a room shows, in one of its `modes`, from its lit colour-capable bulbs (all of
    /// them while none is lit):
    /// - `color_temp` when the white-spectrum bulbs agree and the colour bulbs show that white
    ///   (what a colour temperature sent to the room leaves);
    /// - otherwise `xy` of the first colour bulb (or of the first bulb with an xy);
    /// - otherwise (white spectrum only, disagreeing) the temperature most of them have.
    /// A room of dimmable bulbs is `brightness`, a room of on/off devices `onoff`.
    static func groupColour(_ modes: [ColorMode], lights: [Light]) -> [String: JSON] {
        if modes == [.onOff] || modes == [.brightness] { return ["color_mode": .string(modes[0].rawValue)] }
        let capable = lights.filter { $0.spectrum != .white }
        let candidates = capable.contains(where: \.on) ? capable.filter(\.on) : capable
        let temperatures = candidates.filter { $0.spectrum == .whiteSpectrum }.compactMap(\.colorTemperature)
        let colours = candidates.filter { $0.spectrum == .color }.compactMap(\.xy)
        if modes.contains(.colorTemperature), let first = temperatures.first, Set(temperatures).count == 1 {
            let white = Color.xy(fromKelvin: Double(Color.kelvin(fromMireds: first)))
            let showWhite = colours.allSatisfy { abs($0.x - white.x) < 0.02 && abs($0.y - white.y) < 0.02 }
            if showWhite || !modes.contains(.xy) { return Light.colorTemperatureState(first) }
        }
        if modes.contains(.xy), let xy = colours.first ?? candidates.lazy.compactMap(\.xy).first {
            return ["color_mode": .string(ColorMode.xy.rawValue), "color": Light.colour(xy: xy, hueSaturation: nil)]
        }
        let counts = Dictionary(temperatures.map { ($0, 1) }, uniquingKeysWith: +)
        if let common = temperatures.first(where: { counts[$0] == counts.values.max() }) {
            return Light.colorTemperatureState(common)
        }
        return [:]
    }
}
