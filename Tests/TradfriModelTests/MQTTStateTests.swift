import HubModel
import Testing

@testable import TradfriModel

/// Gateway payloads → the bridge's devices → their MQTT state.
@Suite struct MQTTStateTests {
    static let hub = "gateway"

    func device(_ text: String) throws -> Device { try Device(payload: Array(text.utf8)) }

    func payload(_ device: Device) -> JSON { MQTTState.payload(for: device.hubDevice(hub: Self.hub)) }

    func payload(_ group: Group, members: [Device]) -> JSON {
        MQTTState.payload(
            for: group.hubGroup(hub: Self.hub, scenes: []), members: members.map { $0.hubDevice(hub: Self.hub) })
    }

    @Test func whiteSpectrumLightLooksLikeZigbee2MQTT() throws {
        let state = payload(try device(GatewayPayloads.whiteSpectrumSpot))
        #expect(state["state"] == "ON")
        #expect(state["brightness"] == 188)
        #expect(state["color_mode"] == "color_temp")
        #expect(state["color_temp"] == 345)
        #expect(state["color_temp_kelvin"] == 2899)
        #expect(state["color"]?["x"]?.doubleValue == 0.4439)
        #expect(state["color"]?["hex"]?.stringValue?.hasPrefix("#") == true)
        #expect(state["power_on_behavior"] == "on")
        #expect(state["last_seen"] == "2022-01-13T22:09:23Z")
    }

    @Test func colourLightReportsXYAndHueSaturation() throws {
        let state = payload(try device(GatewayPayloads.colorBulb))
        #expect(state["color_mode"] == "xy")
        #expect(state["color"]?["hue"] == 275)
        #expect(state["color"]?["saturation"] == 100)
        #expect(state["color_temp"] == nil)
    }

    @Test func dimmableWhiteNamesItsOnlyModeAndNoColour() throws {
        let state = payload(try device(GatewayPayloads.dimmableWhite))
        #expect(state["state"] == "OFF")
        #expect(state["color_mode"] == "brightness", "Home Assistant shows brightness only with a colour mode")
        #expect(state["color"] == nil && state["color_temp"] == nil)
    }

    /// A white-spectrum bulb that reports only xy still names its temperature (the nearest on
    /// the white curve, within the bulb's range); a colour bulb with only hue and saturation its xy.
    @Test func lightsWithPartialColourDataStillNameTheirMode() throws {
        var spot = try device(GatewayPayloads.whiteSpectrumSpot)
        spot.light?.colorTemperature = nil
        let white = payload(spot)
        #expect(white["color_mode"] == "color_temp")
        let mireds = try #require(white["color_temp"]?.intValue)
        #expect((330...360).contains(mireds), "xy (0.4439, 0.4078) is about 2900 K: \(mireds)")
        var lamp = try device(GatewayPayloads.colorBulb)
        lamp.light?.x = nil
        lamp.light?.y = nil
        let colour = payload(lamp)
        #expect(colour["color_mode"] == "xy")
        #expect(colour["color"]?["x"]?.doubleValue != nil && colour["color"]?["y"]?.doubleValue != nil)
    }

    @Test func blindPositionIsInvertedSo100IsOpen() throws {
        let state = payload(try device(GatewayPayloads.blind))
        #expect(state["position"] == 69)
        #expect(state["state"] == "OPEN")
        #expect(state["battery"] == 77)
    }

    @Test func plugRemoteAndAirPurifier() throws {
        #expect(payload(try device(GatewayPayloads.plug))["state"] == "ON")
        let remote = payload(try device(GatewayPayloads.remote))
        #expect(remote["battery"] == 87 && remote["state"] == nil)
        let purifier = payload(try device(GatewayPayloads.airPurifier))
        #expect(purifier["fan_mode"] == "auto")
        #expect(purifier["fan_state"] == "ON")
        #expect(purifier["pm25"] == 5)
        #expect(purifier["air_quality"] == "good")
        #expect(purifier["led_enable"] == true)
        #expect(purifier["child_lock"] == "UNLOCK")
        #expect(purifier["replace_filter"] == false)
        #expect(purifier["filter_remaining"] == 259198)
    }

    @Test func groupStateIsDerivedFromMembers() throws {
        let group = try Group(payload: Array(GatewayPayloads.group.utf8))
        let on = try device(GatewayPayloads.whiteSpectrumSpot)
        let off = try device(GatewayPayloads.dimmableWhite)
        let remote = try device(GatewayPayloads.remote)
        var state = payload(group, members: [on, off, remote])
        #expect(state["state"] == "ON")
        #expect(state["brightness"] == 188)
        #expect(state["color_temp"] == 345)
        state = payload(group, members: [off, remote])
        #expect(state["state"] == "OFF")
        #expect(state["brightness"] == nil)
        #expect(state["color_mode"] == "brightness", "a room of dimmable bulbs")
    }

    /// A room always names a colour mode it supports (Home Assistant shows no brightness
    /// otherwise), with that mode's colour data, also when its bulbs disagree.
    @Test func aRoomAlwaysNamesOneOfItsColourModes() throws {
        let group = try Group(payload: Array(GatewayPayloads.group.utf8))
        var spot = try device(GatewayPayloads.whiteSpectrumSpot)  // 345 mireds, on
        var ceiling = spot
        ceiling.id = 65538
        ceiling.light?.colorTemperature = 400
        let lamp = try device(GatewayPayloads.colorBulb)  // xy (0.3067, 0.1241), on
        let hallway = try device(GatewayPayloads.dimmableWhite)
        let plug = try device(GatewayPayloads.plug)
        func state(_ members: [Device]) -> JSON { payload(group, members: members) }

        // White-spectrum bulbs that disagree, with a colour bulb: the colour bulb's xy.
        var mixed = state([spot, ceiling, lamp, hallway])
        #expect(mixed["color_mode"] == "xy")
        #expect(mixed["color"]?["x"]?.doubleValue == 0.3067 && mixed["color"]?["y"]?.doubleValue == 0.1241)
        #expect(mixed["brightness"] == 254)
        // Without the colour bulb: the temperature most of them have (the first on a tie).
        #expect(state([spot, ceiling])["color_mode"] == "color_temp" && state([spot, ceiling])["color_temp"] == 345)
        var third = ceiling
        third.id = 65551
        #expect(state([spot, ceiling, third])["color_temp"] == 400)
        // They agree, and the colour bulb shows that white (a temperature sent to the room): color_temp.
        ceiling.light?.colorTemperature = 345
        var white = lamp
        let xy = Color.gatewayXY(Color.xy(fromKelvin: Double(Color.kelvin(fromMireds: 345))))
        white.light?.x = xy.x
        white.light?.y = xy.y
        mixed = state([spot, ceiling, white])
        #expect(mixed["color_mode"] == "color_temp" && mixed["color_temp"] == 345)
        // They agree but the colour bulb shows a colour: xy.
        #expect(state([spot, ceiling, lamp])["color_mode"] == "xy")
        // Everything off: the same choice from every bulb, so the mode is never missing.
        spot.light?.on = false
        ceiling.light?.on = false
        let off = state([spot, ceiling])
        #expect(off["state"] == "OFF" && off["color_mode"] == "color_temp" && off["color_temp"] == 345)
        // Only a dimmable bulb lit in a room with white-spectrum bulbs: still their temperature.
        var lit = hallway
        lit.light?.on = true
        #expect(state([spot, lit])["color_mode"] == "color_temp")
        // A room of plugs.
        #expect(state([plug])["color_mode"] == "onoff" && state([plug])["state"] == "ON")
        // A room without lights or plugs has no light, and no colour mode.
        #expect(state([try device(GatewayPayloads.remote)])["color_mode"] == nil)
    }

    @Test func samePayloadGivesIdenticalBytes() throws {
        let a = payload(try device(GatewayPayloads.colorBulb)).description
        let b = payload(try device(GatewayPayloads.colorBulb)).description
        #expect(a == b)
    }
}
