#if canImport(Glibc)
import Glibc
#endif

/// Colour conversions between what MQTT users send and what devices report: Kelvin, mireds,
/// CIE xy, hue/saturation, RGB, hex. Hub-neutral: a hub's own scales live with the hub.
public enum Color {

    public struct XY: Sendable, Hashable {
        public var x: Double
        public var y: Double
        public init(x: Double, y: Double) {
            self.x = x
            self.y = y
        }
    }

    public struct RGB: Sendable, Hashable {
        /// 0…255 each.
        public var red: Int
        public var green: Int
        public var blue: Int
        public init(red: Int, green: Int, blue: Int) {
            self.red = red
            self.green = green
            self.blue = blue
        }

        public init?(hex: String) {
            var text = hex.hasPrefix("#") ? String(hex.dropFirst()) : hex
            if text.count == 3 { text = text.map { "\($0)\($0)" }.joined() }
            guard text.count == 6, let value = Int(text, radix: 16) else { return nil }
            self.init(red: value >> 16 & 0xFF, green: value >> 8 & 0xFF, blue: value & 0xFF)
        }

        /// Lower-case, no '#', as the gateway writes it ("efd275").
        public var hex: String {
            let value = red << 16 | green << 8 | blue
            let text = String(value, radix: 16)
            return String(repeating: "0", count: 6 - text.count) + text
        }
    }

    // MARK: Temperature

    /// Mireds of a colour temperature; anything outside 1000…20000 K (or not a number) is taken
    /// as the nearest end of that range.
    public static func mireds(fromKelvin kelvin: Double) -> Int {
        let kelvin = kelvin.isNaN ? 4000 : min(max(kelvin, 1000), 20000)
        return Int((1_000_000 / kelvin).rounded())
    }

    public static func kelvin(fromMireds mireds: Int) -> Int {
        Int((1_000_000 / Double(max(mireds, 1))).rounded())
    }

    /// The CIE xy of a black body at `kelvin` (Kim et al. cubic approximation of the Planckian
    /// locus, 1667 K … 25000 K).
    public static func xy(fromKelvin kelvin: Double) -> XY {
        let t = min(max(kelvin, 1667), 25000)
        let x: Double
        if t <= 4000 {
            x = -0.2661239e9 / (t * t * t) - 0.2343589e6 / (t * t) + 0.8776956e3 / t + 0.179910
        } else {
            x = -3.0258469e9 / (t * t * t) + 2.1070379e6 / (t * t) + 0.2226347e3 / t + 0.240390
        }
        let y: Double
        if t <= 2222 {
            y = -1.1063814 * x * x * x - 1.34811020 * x * x + 2.18555832 * x - 0.20219683
        } else if t <= 4000 {
            y = -0.9549476 * x * x * x - 1.37418593 * x * x + 2.09137015 * x - 0.16748867
        } else {
            y = 3.0817580 * x * x * x - 5.87338670 * x * x + 3.75112997 * x - 0.37001483
        }
        return XY(x: x, y: y)
    }

    /// Correlated colour temperature of an xy point (McCamy), in Kelvin. Points far from the
    /// white curve, where the formula has no meaning (it divides by 0.1858 - y), give NaN or
    /// infinity: callers clamp (see `mireds(fromKelvin:)`).
    public static func kelvin(fromXY xy: XY) -> Double {
        let n = (xy.x - 0.3320) / (0.1858 - xy.y)
        return 449 * n * n * n + 3525 * n * n + 6823.3 * n + 5520.33
    }

    // MARK: RGB ↔ xy (sRGB, D65)

    public static func xy(fromRGB rgb: RGB) -> XY {
        func linear(_ channel: Int) -> Double {
            let value = Double(channel) / 255
            return value > 0.04045 ? pow((value + 0.055) / 1.055, 2.4) : value / 12.92
        }
        let r = linear(rgb.red), g = linear(rgb.green), b = linear(rgb.blue)
        let X = r * 0.4124 + g * 0.3576 + b * 0.1805
        let Y = r * 0.2126 + g * 0.7152 + b * 0.0722
        let Z = r * 0.0193 + g * 0.1192 + b * 0.9505
        let sum = X + Y + Z
        guard sum > 0 else { return XY(x: 0.3127, y: 0.3290) }  // black: use the white point
        return XY(x: X / sum, y: Y / sum)
    }

    /// The brightest sRGB colour with chromaticity `xy`.
    public static func rgb(fromXY xy: XY) -> RGB {
        let y = max(xy.y, 0.0001)
        let Y = 1.0
        let X = Y / y * xy.x
        let Z = Y / y * (1 - xy.x - xy.y)
        var r = X * 3.2406 - Y * 1.5372 - Z * 0.4986
        var g = -X * 0.9689 + Y * 1.8758 + Z * 0.0415
        var b = X * 0.0557 - Y * 0.2040 + Z * 1.0570
        r = max(r, 0); g = max(g, 0); b = max(b, 0)
        let peak = max(r, g, b, 1e-9)
        func gamma(_ value: Double) -> Int {
            let v = value / peak
            let encoded = v <= 0.0031308 ? 12.92 * v : 1.055 * pow(v, 1 / 2.4) - 0.055
            return Int((min(max(encoded, 0), 1) * 255).rounded())
        }
        return RGB(red: gamma(r), green: gamma(g), blue: gamma(b))
    }

    // MARK: RGB ↔ hue/saturation

    /// Hue in degrees 0..<360 and saturation 0…1 of an RGB colour (HSV).
    public static func hueSaturation(fromRGB rgb: RGB) -> (hue: Double, saturation: Double) {
        let r = Double(rgb.red) / 255, g = Double(rgb.green) / 255, b = Double(rgb.blue) / 255
        let high = max(r, g, b), low = min(r, g, b), delta = high - low
        var hue = 0.0
        if delta > 0 {
            if high == r {
                hue = 60 * ((g - b) / delta).truncatingRemainder(dividingBy: 6)
            } else if high == g {
                hue = 60 * ((b - r) / delta + 2)
            } else {
                hue = 60 * ((r - g) / delta + 4)
            }
        }
        if hue < 0 { hue += 360 }
        return (hue, high > 0 ? delta / high : 0)
    }

    /// The full-value RGB colour of a hue (degrees) and saturation (0…1).
    public static func rgb(hue: Double, saturation: Double) -> RGB {
        let h = (hue.truncatingRemainder(dividingBy: 360) + 360).truncatingRemainder(dividingBy: 360) / 60
        let s = min(max(saturation, 0), 1)
        let c = s, x = c * (1 - abs(h.truncatingRemainder(dividingBy: 2) - 1)), m = 1 - c
        let (r, g, b): (Double, Double, Double)
        switch Int(h) {
        case 0: (r, g, b) = (c, x, 0)
        case 1: (r, g, b) = (x, c, 0)
        case 2: (r, g, b) = (0, c, x)
        case 3: (r, g, b) = (0, x, c)
        case 4: (r, g, b) = (x, 0, c)
        default: (r, g, b) = (c, 0, x)
        }
        return RGB(
            red: Int(((r + m) * 255).rounded()), green: Int(((g + m) * 255).rounded()),
            blue: Int(((b + m) * 255).rounded()))
    }
}
