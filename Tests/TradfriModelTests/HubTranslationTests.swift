import HubModel
import Testing

@testable import TradfriModel

/// Gateway payloads → the hub-neutral devices and groups the bridge's features use.
@Suite struct HubTranslationTests {
    static let hub = "gateway"

    func device(_ text: String) throws -> HubDevice {
        try Device(payload: Array(text.utf8)).hubDevice(hub: Self.hub)
    }

    @Test func whiteSpectrumSpot() throws {
        let spot = try device(GatewayPayloads.whiteSpectrumSpot)
        #expect(spot.id == ItemID(hub: "gateway", local: "65550"))
        #expect(spot.name == "Spot A1" && spot.type == .light)
        #expect(spot.manufacturer == "IKEA of Sweden" && spot.model == "TRADFRIbulbGU10WS345lm")
        #expect(spot.firmware == "1.0.012")
        #expect(spot.reachable == true && spot.lastSeen == 1_642_111_763)
        #expect(!spot.batteryPowered && spot.battery == nil)
        #expect(spot.onOff == nil && spot.cover == nil && spot.airPurifier == nil)
        let light = try #require(spot.light)
        #expect(light.on && light.brightness == 188 && light.spectrum == .whiteSpectrum)
        #expect(light.colorTemperature == 345 && light.colorTemperatureRange == 250...454)
        #expect(light.xy == Color.XY(x: 29090 / 65535, y: 26728 / 65535), "the gateway's xy × 65535")
        #expect(light.hueSaturation == nil)
        #expect(light.powerOnBehavior == .on, "5849 = 2: on")
    }

    @Test func colourBulbHueAndSaturationInDegreesAndPercent() throws {
        let light = try #require(try device(GatewayPayloads.colorBulb).light)
        #expect(light.spectrum == .color && light.colorTemperature == nil)
        #expect(light.xy == Color.XY(x: 20101 / 65535, y: 8135 / 65535))
        let hueSaturation = try #require(light.hueSaturation)
        #expect(abs(hueSaturation.hue - 275.1) < 0.01, "49885 of 65279")
        #expect(hueSaturation.saturation == 100)
        #expect(light.powerOnBehavior == nil)
    }

    @Test func powerOnBehaviourPreviousIs4() throws {
        let text = GatewayPayloads.whiteSpectrumSpot.replacing(#""5849":2"#, with: #""5849":4"#)
        #expect(try device(text).light?.powerOnBehavior == .previous)
    }

    @Test func plugBlindAndBatteryDevices() throws {
        let plug = try device(GatewayPayloads.plug)
        #expect(plug.type == .plug && plug.onOff == OnOff(on: true) && plug.light == nil && plug.battery == nil)
        let blind = try device(GatewayPayloads.blind)
        #expect(blind.type == .blind && blind.cover == Cover(openPercent: 69), "gateway 31 % closed = 69 % open")
        #expect(blind.batteryPowered && blind.battery == Battery(level: 77))
        let remote = try device(GatewayPayloads.remote)
        #expect(remote.type == .remote && remote.battery == Battery(level: 87))
        let sensor = try device(GatewayPayloads.motionSensor)
        #expect(sensor.type == .motionSensor && sensor.type.description == "motion_sensor")
        #expect(sensor.battery == Battery(level: 60))
        let repeater = try device(GatewayPayloads.repeater)
        #expect(repeater.type == .repeater && !repeater.batteryPowered && repeater.battery == nil)
        let unknown = try device(GatewayPayloads.repeater.replacing(#""5750":6"#, with: #""5750":99"#))
        #expect(unknown.type == .unknown("unknown_99") && unknown.type.description == "unknown_99")
    }

    @Test func batteryDevicesHaveABatteryBeforeTheyReportALevel() throws {
        let text = GatewayPayloads.remote.replacing(#""6":3,"9":87"#, with: #""6":3"#)
        let remote = try device(text)
        #expect(remote.batteryPowered && remote.battery == Battery(level: nil))
    }

    @Test func airPurifierFanModes() throws {
        let purifier = try #require(try device(GatewayPayloads.airPurifier).airPurifier)
        #expect(
            purifier
                == AirPurifier(
                    fanMode: .auto, fanSpeed: 10, pm25: 5, ledsOn: true, childLock: false, replaceFilter: false,
                    filterAge: 2, filterRemaining: 259_198))
        func mode(_ value: Int) throws -> FanMode? {
            let text = GatewayPayloads.airPurifier.replacing(#""5900":1"#, with: "\"5900\":\(value)")
            return try device(text).airPurifier?.fanMode
        }
        #expect(try mode(0) == .off)
        #expect(try mode(10) == .level(1))
        #expect(try mode(20) == .level(2))
        #expect(try mode(50) == .level(5))
        #expect(try mode(34) == .level(3), "other values are rounded to a level")
        for level in 1...5 {
            #expect(try mode(CommandPlanner.fanModeValue(.level(level))) == .level(level))
        }
    }

    @Test func groupWithItsMembersAndScenesOnTheHub() throws {
        let group = try Group(payload: Array(GatewayPayloads.group.utf8))
        let relax = try Scene(payload: Array(GatewayPayloads.scene.utf8))
        let focus = try Scene(
            payload: Array(
                GatewayPayloads.scene.replacing(#""9001":"RELAX""#, with: #""9001":"FOCUS""#)
                    .replacing(#""9003":196609"#, with: #""9003":196608"#).utf8))
        let hubGroup = group.hubGroup(hub: Self.hub, scenes: [relax, focus])
        #expect(hubGroup.id == ItemID(hub: Self.hub, 131073) && hubGroup.name == "Living room")
        #expect(hubGroup.members == [65537, 65550, 65539].map { ItemID(hub: Self.hub, $0) })
        #expect(
            hubGroup.scenes == [
                HubScene(id: ItemID(hub: Self.hub, 196608), name: "FOCUS"),
                HubScene(id: ItemID(hub: Self.hub, 196609), name: "RELAX"),
            ], "sorted by id")
    }

    /// Two gateways may both have a device 65537: the hub's name keeps them apart.
    @Test func theHubNameKeepsTheSameIDApart() throws {
        let bulb = try Device(payload: Array(GatewayPayloads.dimmableWhite.utf8))
        let home = bulb.hubDevice(hub: "home"), shed = bulb.hubDevice(hub: "shed")
        #expect(home.id != shed.id && home.id.local == shed.id.local)
        #expect(home.id.description == "home/65537" && shed.id.description == "shed/65537")
    }
}
