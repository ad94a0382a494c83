import HubModel

/// Devices and groups of a hub built directly, as any hub's translation would make them (the
/// values match the TRÅDFRI captures the TradfriModel tests use, so the two read alike).
enum HubFixtures {
    static let hub = "home"

    static func id(_ number: Int, hub: String = hub) -> ItemID { ItemID(hub: hub, number) }

    /// A white-spectrum spot, on at 188, 345 mireds (xy 0.4439, 0.4078).
    static var spot: HubDevice {
        var device = HubDevice(
            id: id(65550), name: "Spot A1", type: .light, manufacturer: "IKEA of Sweden",
            model: "TRADFRIbulbGU10WS345lm", firmware: "1.0.012")
        device.reachable = true
        device.lastSeen = 1_642_111_763
        device.light = Light(
            on: true, brightness: 188, spectrum: .whiteSpectrum, colorTemperature: 345,
            xy: Color.XY(x: 0.4439, y: 0.4078), powerOnBehavior: .on)
        return device
    }

    /// A colour bulb, on at 254, xy (0.3067, 0.1241), hue 275°, saturation 100 %.
    static var colourBulb: HubDevice {
        var device = HubDevice(id: id(65539), name: "Reading lamp", type: .light)
        device.light = Light(
            on: true, brightness: 254, spectrum: .color, xy: Color.XY(x: 0.3067, y: 0.1241),
            hueSaturation: Light.HueSaturation(hue: 275.1, saturation: 100))
        return device
    }

    /// A dimmable white bulb, off.
    static var dimmableWhite: HubDevice {
        var device = HubDevice(id: id(65537), name: "Hallway", type: .light)
        device.light = Light(on: false, brightness: 1, spectrum: .white)
        return device
    }

    static var plug: HubDevice {
        var device = HubDevice(id: id(65543), name: "Coffee maker", type: .plug)
        device.onOff = OnOff(on: true)
        return device
    }

    /// A blind 69 % open, battery 77 %.
    static var blind: HubDevice {
        var device = HubDevice(id: id(65546), name: "Bedroom blind", type: .blind, batteryPowered: true)
        device.cover = Cover(openPercent: 69)
        device.battery = Battery(level: 77)
        return device
    }

    static var remote: HubDevice {
        var device = HubDevice(id: id(65536), name: "Remote", type: .remote, batteryPowered: true)
        device.battery = Battery(level: 87)
        return device
    }

    /// An air purifier in auto, PM2.5 5 µg/m³.
    static var airPurifier: HubDevice {
        var device = HubDevice(id: id(65547), name: "Air purifier", type: .airPurifier)
        device.airPurifier = AirPurifier(
            fanMode: .auto, fanSpeed: 10, pm25: 5, ledsOn: true, childLock: false, replaceFilter: false,
            filterAge: 2, filterRemaining: 259_198)
        return device
    }

    static let relax = HubScene(id: id(196_609), name: "RELAX")
    static let focus = HubScene(id: id(196_610), name: "Focus")

    /// A room with two scenes.
    static func group(_ members: [HubDevice], scenes: [HubScene] = [relax, focus]) -> HubGroup {
        HubGroup(id: id(131_073), name: "Living room", members: members.map(\.id), scenes: scenes)
    }
}
