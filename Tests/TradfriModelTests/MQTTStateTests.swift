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

    @Test func dimmableWhiteHasNoColourKeys() throws {
        let state = MQTTState.payload(for: try device(GatewayPayloads.dimmableWhite))
        #expect(state["state"] == "OFF")
        #expect(state["color"] == nil && state["color_mode"] == nil)
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
