import HubModel
import Testing

@testable import TradfriModel

@Suite struct GatewayModelTests {
    func device(_ text: String) throws -> Device {
        try Device(payload: Array(text.utf8))
    }

    /// The one-word summary of listings, from the device as the bridge sees it.
    func summary(_ device: Device) -> String { device.hubDevice(hub: "gateway").stateSummary }

    @Test func whiteSpectrumSpotFromARealCapture() throws {
        let spot = try device(GatewayPayloads.whiteSpectrumSpot)
        #expect(spot.id == 65550)
        #expect(spot.name == "Spot A1")
        #expect(spot.kind == .light)
        #expect(spot.info.model == "TRADFRIbulbGU10WS345lm")
        #expect(spot.info.firmware == "1.0.012")
        #expect(spot.reachable == true)
        #expect(spot.lastSeen == 1642111763)
        let light = try #require(spot.light)
        #expect(light.spectrum == .whiteSpectrum)
        #expect(light.on)
        #expect(light.brightness == 188)
        #expect(light.colorTemperature == 345)
        #expect(light.x == 29090 && light.y == 26728)
        #expect(light.powerOnBehavior == 2)
        #expect(summary(spot) == "on 74%")
    }

    @Test func dimmableWhiteBulb() throws {
        let bulb = try device(GatewayPayloads.dimmableWhite)
        #expect(bulb.light?.spectrum == .white)
        #expect(bulb.light?.on == false)
        #expect(summary(bulb) == "off")
    }

    @Test func colourBulb() throws {
        let bulb = try device(GatewayPayloads.colorBulb)
        let light = try #require(bulb.light)
        #expect(light.spectrum == .color)
        #expect(light.hue == 49885 && light.saturation == 65279)
        #expect(light.colorHex == "4a418a")
        #expect(light.colorTemperature == nil)
    }

    @Test func plug() throws {
        let plug = try device(GatewayPayloads.plug)
        #expect(plug.kind == .plug)
        #expect(plug.plug?.on == true)
        #expect(plug.light == nil)
    }

    @Test func blindWithBattery() throws {
        let blind = try device(GatewayPayloads.blind)
        #expect(blind.kind == .blind)
        #expect(blind.blind?.position == 31)
        #expect(blind.info.battery == 77)
        #expect(blind.kind.isBatteryPowered)
        #expect(summary(blind) == "69% open")
    }

    @Test func batteryOnlyDevices() throws {
        let remote = try device(GatewayPayloads.remote)
        #expect(remote.kind == .remote)
        #expect(remote.info.battery == 87)
        #expect(summary(remote) == "battery 87%")
        let sensor = try device(GatewayPayloads.motionSensor)
        #expect(sensor.kind == .motionSensor)
        #expect(sensor.info.battery == 60)
        let repeater = try device(GatewayPayloads.repeater)
        #expect(repeater.kind == .repeater)
        #expect(repeater.info.battery == nil)
    }

    @Test func airPurifier() throws {
        let purifier = try device(GatewayPayloads.airPurifier)
        let state = try #require(purifier.airPurifier)
        #expect(purifier.kind == .airPurifier)
        #expect(state.fanMode == 1)
        #expect(state.fanSpeed == 10)
        #expect(state.airQuality == 5)
        #expect(state.filterRemaining == 259198)
        #expect(state.filterNeedsReplacement == false)
        #expect(state.ledsOff == false && state.controlsLocked == false)
        #expect(summary(purifier) == "auto")
    }

    @Test func airQualityUnknownIsNil() throws {
        let text = GatewayPayloads.airPurifier.replacing(#""5907":5"#, with: #""5907":65535"#)
        #expect(try device(text).airPurifier?.airQuality == nil)
    }

    @Test func group() throws {
        let group = try Group(payload: Array(GatewayPayloads.group.utf8))
        #expect(group.id == 131073)
        #expect(group.name == "Living room")
        #expect(group.memberIDs == [65537, 65550, 65539])
        #expect(group.sceneID == 196609)
    }

    @Test func scene() throws {
        let scene = try Scene(payload: Array(GatewayPayloads.scene.utf8))
        #expect(scene.name == "RELAX")
        #expect(scene.isPredefined == true)
        #expect(scene.lightSettings.count == 2)
        #expect(scene.lightSettings[1].colorTemperature == 454)
        #expect(scene.lightSettings[0].colorHex == "efd275")
    }

    @Test func gatewayDetails() throws {
        let details = try GatewayDetails(payload: Array(GatewayPayloads.gatewayDetails.utf8))
        #expect(details.id == "7e11515204400072")
        #expect(details.firmware == "1.13.19")
        #expect(details.time == 1604050219)
    }

    @Test func rebootNotification() throws {
        let list = try GatewayNotification.list(payload: Array(GatewayPayloads.rebootNotification.utf8))
        #expect(list.first?.event == GatewayEvent.rebooting)
        #expect(list.first?.details["9052"] == "1")
    }

    @Test func unknownKeysAreTolerated() throws {
        let text = GatewayPayloads.dimmableWhite.replacing(
            #""9054":0"#, with: #""9054":0,"99999":{"new":[1,2]},"5717":"surprise""#)
        #expect(try device(text).name == "Hallway")
    }

    @Test func brokenJSONIsRejectedWithAClearError() {
        #expect {
            try device(#"{"9003":65537,"9001":"x""#)
        } throws: { error in
            "\(error)".contains("invalid JSON")
        }
    }

    @Test func missingIDIsRejectedNamingTheKey() {
        #expect {
            try device(#"{"9001":"no id"}"#)
        } throws: { error in
            error as? ModelError == .missingKey("9003", in: "device")
        }
    }

    @Test func wrongTypeIsRejectedNamingTheKey() {
        #expect {
            try device(#"{"9003":"65537"}"#)
        } throws: { error in
            "\(error)".contains("key 9003 should be an integer")
        }
    }

    @Test func idListsParse() throws {
        #expect(try IDList.parse(Array("[65536,65537]".utf8), what: "device") == [65536, 65537])
        #expect(throws: ModelError.self) { try IDList.parse(Array(#"{"r":"06"}"#.utf8), what: "device") }
    }
}
