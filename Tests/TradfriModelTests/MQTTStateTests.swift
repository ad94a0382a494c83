import Foundation
import Testing

@testable import TradfriModel

@Suite struct MQTTStateTests {
    func device(_ text: String) throws -> Device { try Device(payload: Array(text.utf8)) }

    @Test func whiteSpectrumLightLooksLikeZigbee2MQTT() throws {
        let state = MQTTState.payload(for: try device(GatewayPayloads.whiteSpectrumSpot))
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
        let state = MQTTState.payload(for: try device(GatewayPayloads.colorBulb))
        #expect(state["color_mode"] == "xy")
        #expect(state["color"]?["hue"] == 275)
        #expect(state["color"]?["saturation"] == 100)
        #expect(state["color_temp"] == nil)
    }

    @Test func dimmableWhiteNamesItsOnlyModeAndNoColour() throws {
        let state = MQTTState.payload(for: try device(GatewayPayloads.dimmableWhite))
        #expect(state["state"] == "OFF")
        #expect(state["color_mode"] == "brightness", "Home Assistant shows brightness only with a colour mode")
        #expect(state["color"] == nil && state["color_temp"] == nil)
    }

    /// A white-spectrum bulb that reports only xy still names its temperature (the nearest on
    /// the white curve, within the bulb's range); a colour bulb with only hue and saturation its xy.
    @Test func lightsWithPartialColourDataStillNameTheirMode() throws {
        var spot = try device(GatewayPayloads.whiteSpectrumSpot)
        spot.light?.colorTemperature = nil
        let white = MQTTState.payload(for: spot)
        #expect(white["color_mode"] == "color_temp")
        let mireds = try #require(white["color_temp"]?.intValue)
        #expect((330...360).contains(mireds), "xy (0.4439, 0.4078) is about 2900 K: \(mireds)")
        var lamp = try device(GatewayPayloads.colorBulb)
        lamp.light?.x = nil
        lamp.light?.y = nil
        let colour = MQTTState.payload(for: lamp)
        #expect(colour["color_mode"] == "xy")
        #expect(colour["color"]?["x"]?.doubleValue != nil && colour["color"]?["y"]?.doubleValue != nil)
    }

    @Test func blindPositionIsInvertedSo100IsOpen() throws {
        let state = MQTTState.payload(for: try device(GatewayPayloads.blind))
        #expect(state["position"] == 69)
        #expect(state["state"] == "OPEN")
        #expect(state["battery"] == 77)
    }

    @Test func plugRemoteAndAirPurifier() throws {
        #expect(MQTTState.payload(for: try device(GatewayPayloads.plug))["state"] == "ON")
        let remote = MQTTState.payload(for: try device(GatewayPayloads.remote))
        #expect(remote["battery"] == 87 && remote["state"] == nil)
        let purifier = MQTTState.payload(for: try device(GatewayPayloads.airPurifier))
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
        var state = MQTTState.payload(for: group, members: [on, off, remote], activeScene: "RELAX")
        #expect(state["state"] == "ON")
        #expect(state["brightness"] == 188)
        #expect(state["color_temp"] == 345)
        #expect(state["scene"] == "RELAX")
        state = MQTTState.payload(for: group, members: [off, remote], activeScene: nil)
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
        func state(_ members: [Device]) -> JSON { MQTTState.payload(for: group, members: members, activeScene: nil) }

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
        let a = MQTTState.payload(for: try device(GatewayPayloads.colorBulb)).description
        let b = MQTTState.payload(for: try device(GatewayPayloads.colorBulb)).description
        #expect(a == b)
    }
}

@Suite struct FriendlyNamesTests {
    @Test func namesAreTopicSafe() {
        #expect(FriendlyNames.slug("Living room – Ceiling (2)", fallback: "x") == "living_room_ceiling_2")
        #expect(FriendlyNames.slug("Kök/Bänk #1 +", fallback: "x") == "kok_bank_1")
        #expect(FriendlyNames.slug("Straße", fallback: "x") == "strasse")
        #expect(FriendlyNames.slug("💡", fallback: "light_65537") == "light_65537")
    }

    @Test func collisionsAreResolvedDeterministically() {
        let names = FriendlyNames(
            devices: [
                (65538, "Lamp", "light"), (65537, "Lamp", "light"), (65540, "", "remote"), (65541, "Bridge", "plug"),
            ],
            groups: [(131073, "Lamp"), (131074, "Hallway")])
        #expect(names[.device(65537)] == "lamp")
        #expect(names[.device(65538)] == "lamp_2")
        #expect(names[.device(65540)] == "remote_65540")
        #expect(names[.device(65541)] == "bridge_65541")
        #expect(names[.group(131073)] == "lamp_group")
        #expect(names[.group(131074)] == "hallway")
        #expect(names.entity(named: "lamp_2") == .device(65538))
        #expect(names.entity(named: "65537") == .device(65537), "the numeric id is an alias")
        #expect(names.entity(named: "131074") == .group(131074))
        #expect(names.entity(named: "nobody") == nil)
    }

    /// `last_seen` is formatted by hand (it runs for every published state): it must read exactly
    /// as Foundation's `.iso8601` style, across leap years, centuries and the epoch.
    @Test func lastSeenReadsLikeFoundationISO8601() {
        var seconds: [Int] = [
            0, 1, 59, 86_399, 86_400, 951_782_400, 951_868_799, 1_642_111_763, 1_709_164_800,
            4_107_542_399, 4_107_542_400, 253_402_300_799,
        ]
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<2000 { seconds.append(Int.random(in: 0...4_102_444_800, using: &generator)) }
        for value in seconds {
            #expect(
                MQTTState.isoTime(value) == Date(timeIntervalSince1970: TimeInterval(value)).formatted(.iso8601),
                "\(value)")
        }
    }
}
