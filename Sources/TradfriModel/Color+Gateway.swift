import HubModel

/// The TRÅDFRI gateway's colour scales and the IKEA app's presets.
extension Color {
    /// The gateway's maximum for hue and saturation; hue above it makes colour bulbs go dark.
    public static let maxHueSat = 65279
    /// White-spectrum bulbs accept 250 (cold, 4000 K) … 454 (warm, 2200 K) mireds.
    public static let whiteSpectrumMireds = 250...454

    // MARK: Gateway scales

    public static func gatewayXY(_ xy: XY) -> (x: Int, y: Int) {
        (Int((min(max(xy.x, 0), 1) * 65535).rounded()), Int((min(max(xy.y, 0), 1) * 65535).rounded()))
    }

    public static func xy(gatewayX: Int, gatewayY: Int) -> XY {
        XY(x: Double(gatewayX) / 65535, y: Double(gatewayY) / 65535)
    }

    /// Degrees (0…360) to the gateway's 0…65279 hue scale.
    public static func gatewayHue(degrees: Double) -> Int {
        let normalised = (degrees.truncatingRemainder(dividingBy: 360) + 360).truncatingRemainder(dividingBy: 360)
        return min(Int((normalised / 360 * Double(maxHueSat)).rounded()), maxHueSat)
    }

    public static func degrees(gatewayHue: Int) -> Double {
        Double(min(max(gatewayHue, 0), maxHueSat)) / Double(maxHueSat) * 360
    }

    /// Percent (0…100) to the gateway's 0…65279 saturation scale.
    public static func gatewaySaturation(percent: Double) -> Int {
        Int((min(max(percent, 0), 100) / 100 * Double(maxHueSat)).rounded())
    }

    public static func percent(gatewaySaturation: Int) -> Double {
        Double(min(max(gatewaySaturation, 0), maxHueSat)) / Double(maxHueSat) * 100
    }

    // MARK: Presets

    /// The hex colours the IKEA app offers to white-spectrum bulbs, with their mireds.
    public static let whiteSpectrumPresets: [(hex: String, mireds: Int)] = [
        ("f5faf6", 250), ("f2eccf", 300), ("f3f3e3", 285), ("f1e0b5", 370), ("efd275", 454),
    ]

    /// The hex colours the IKEA app offers to colour bulbs.
    public static let colorPresets: [String] = [
        "4a418a", "6c83ba", "8f2686", "a9d62b", "c984bb", "d6e44b", "d9337c", "da5d41", "dc4b31", "dcf0f8",
        "e491af", "e57345", "e78834", "e8bedd", "eaf6fb", "ebb63e", "efd275", "f1e0b5", "f2eccf", "f5faf6",
    ]

    /// The white-spectrum preset closest to `mireds`.
    public static func nearestWhitePreset(mireds: Int) -> String {
        whiteSpectrumPresets.min { abs($0.mireds - mireds) < abs($1.mireds - mireds) }!.hex
    }
}
