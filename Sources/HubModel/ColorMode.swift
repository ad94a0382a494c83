/// How a light's colour is described, as Zigbee2MQTT and Home Assistant's JSON light name it
/// (`color_mode` in a state, `supported_color_modes` in a discovery config).
///
/// One place decides which modes a bulb or a room has, and which one a state names, so the two
/// always agree: Home Assistant shows a light's brightness and colour only when its state names a
/// mode the light supports, with that mode's colour data (`color_temp`, or `color` {x, y}).
public enum ColorMode: String, Sendable, Hashable, CaseIterable {
    /// A room of plugs: on/off only.
    case onOff = "onoff"
    /// Dimmable white bulbs.
    case brightness
    /// White spectrum: colour temperature in mireds.
    case colorTemperature = "color_temp"
    /// Colour bulbs (CIE xy).
    case xy

    /// What a bulb can do: colour bulbs report their colour as xy and take a colour temperature
    /// as a colour (the TRÅDFRI gateway has no colour temperature for them).
    public static func supported(by spectrum: LightSpectrum) -> [ColorMode] {
        switch spectrum {
        case .white: [.brightness]
        case .whiteSpectrum: [.colorTemperature]
        case .color: [.xy]
        }
    }

    /// What a room can do: colour if any member has colour, colour temperature if any member is
    /// white spectrum (commands go to each member that can take them), brightness for dimmable
    /// lights only, on/off for on/off devices only; nil without lights or on/off devices (no light
    /// at all). `onoff` and `brightness` are never combined with another mode (Home Assistant
    /// refuses that).
    public static func supported(byGroupOf members: [HubDevice]) -> [ColorMode]? {
        let spectra = Set(members.compactMap(\.light?.spectrum))
        var modes: [ColorMode] = []
        if spectra.contains(.color) { modes.append(.xy) }
        if spectra.contains(.whiteSpectrum) { modes.append(.colorTemperature) }
        if !modes.isEmpty { return modes }
        if !spectra.isEmpty { return [.brightness] }
        return members.contains { $0.onOff != nil } ? [.onOff] : nil
    }
}
