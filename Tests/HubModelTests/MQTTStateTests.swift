import HubModel
import Testing

/// The MQTT state of devices and groups built directly: each capability's keys, Zigbee2MQTT's names.
@Suite struct MQTTStateTests {
    func payload(_ device: HubDevice) -> JSON { MQTTState.payload(for: device) }

    // MARK: Lights

    @Test func whiteSpectrumLightLooksLikeZigbee2MQTT() {
        let state = payload(HubFixtures.spot)
        #expect(state["state"] == "ON")
        #expect(state["brightness"] == 188)
        #expect(state["color_mode"] == "color_temp")
        #expect(state["color_temp"] == 345)
        #expect(state["color_temp_kelvin"] == 2899)
        #expect(state["color"]?["x"]?.doubleValue == 0.4439 && state["color"]?["y"]?.doubleValue == 0.4078)
        #expect(state["color"]?["hex"]?.stringValue?.hasPrefix("#") == true)
        #expect(state["color"]?["hue"] == nil, "a white-spectrum bulb has no hue")
        #expect(state["power_on_behavior"] == "on")
        #expect(state["last_seen"] == "2022-01-13T22:09:23Z")
        #expect(state["battery"] == nil)
    }

    @Test func colourLightReportsXYAndHueSaturation() {
        let state = payload(HubFixtures.colourBulb)
        #expect(state["color_mode"] == "xy")
        #expect(state["color"]?["x"]?.doubleValue == 0.3067 && state["color"]?["y"]?.doubleValue == 0.1241)
        #expect(state["color"]?["hue"] == 275)
        #expect(state["color"]?["saturation"] == 100)
        #expect(state["color_temp"] == nil)
        #expect(state["power_on_behavior"] == nil && state["last_seen"] == nil)
    }

    @Test func colourIsRoundedToFourDigitsWithItsHex() {
        var lamp = HubFixtures.colourBulb
        lamp.light?.xy = Color.XY(x: 0.640_04, y: 0.329_96)
        lamp.light?.hueSaturation = nil
        lamp.light?.powerOnBehavior = .previous
        let state = payload(lamp)
        #expect(state["color"] == ["x": 0.64, "y": 0.33, "hex": "#ff0000"])
        #expect(state["power_on_behavior"] == "previous")
    }

    @Test func dimmableWhiteNamesItsOnlyModeAndNoColour() {
        let state = payload(HubFixtures.dimmableWhite)
        #expect(state["state"] == "OFF")
        #expect(state["brightness"] == 1)
        #expect(state["color_mode"] == "brightness", "Home Assistant shows brightness only with a colour mode")
        #expect(state["color"] == nil && state["color_temp"] == nil)
    }

    @Test func lightsSupportTheModesOfTheirSpectrum() {
        #expect(ColorMode.supported(by: .white) == [.brightness])
        #expect(ColorMode.supported(by: .whiteSpectrum) == [.colorTemperature])
        #expect(ColorMode.supported(by: .color) == [.xy])
    }

    // MARK: Other devices

    @Test func plugCoverRemoteAndAirPurifier() {
        #expect(payload(HubFixtures.plug) == ["state": "ON"])
        let blind = payload(HubFixtures.blind)
        #expect(blind == ["position": 69, "state": "OPEN", "battery": 77])
        var closed = HubFixtures.blind
        closed.cover = Cover(openPercent: 0)
        closed.battery = Battery(level: nil)
        #expect(payload(closed) == ["position": 0, "state": "CLOSE"], "no battery key before a level is reported")
        #expect(Cover(openPercent: 130).openPercent == 100 && Cover(openPercent: -5).openPercent == 0)
        #expect(payload(HubFixtures.remote) == ["battery": 87])
        let purifier = payload(HubFixtures.airPurifier)
        #expect(purifier["fan_mode"] == "auto")
        #expect(purifier["fan_state"] == "ON")
        #expect(purifier["fan_speed"] == 10)
        #expect(purifier["pm25"] == 5)
        #expect(purifier["air_quality"] == "good")
        #expect(purifier["led_enable"] == true)
        #expect(purifier["child_lock"] == "UNLOCK")
        #expect(purifier["replace_filter"] == false)
        #expect(purifier["filter_age"] == 2)
        #expect(purifier["filter_remaining"] == 259198)
    }

    @Test func airPurifierModesAndAirQuality() {
        func state(_ purifier: AirPurifier) -> JSON {
            var device = HubFixtures.airPurifier
            device.airPurifier = purifier
            return MQTTState.payload(for: device)
        }
        let off = state(AirPurifier(fanMode: .off, fanSpeed: 0))
        #expect(off["fan_state"] == "OFF" && off["fan_mode"] == "off" && off["fan_speed"] == 0)
        #expect(off["pm25"] == .null && off["air_quality"] == "unknown", "PM2.5 not known yet")
        #expect(off["led_enable"] == nil && off["child_lock"] == nil && off["filter_remaining"] == nil)
        let manual = state(AirPurifier(fanMode: .level(3), pm25: 40, ledsOn: false, childLock: true))
        #expect(manual["fan_state"] == "ON" && manual["fan_mode"] == "3")
        #expect(manual["pm25"] == 40 && manual["air_quality"] == "ok")
        #expect(manual["led_enable"] == false && manual["child_lock"] == "LOCK")
        #expect(state(AirPurifier(fanMode: .auto, pm25: 86))["air_quality"] == "poor")
        #expect(state(AirPurifier(fanMode: .auto, pm25: 35))["air_quality"] == "good")
        #expect(state(AirPurifier(fanMode: .auto, pm25: 85))["air_quality"] == "ok")
    }

    @Test func stateSummariesForListings() {
        #expect(HubFixtures.spot.stateSummary == "on 74%")
        #expect(HubFixtures.dimmableWhite.stateSummary == "off")
        #expect(HubFixtures.plug.stateSummary == "on")
        #expect(HubFixtures.blind.stateSummary == "69% open")
        #expect(HubFixtures.airPurifier.stateSummary == "auto")
        var manual = HubFixtures.airPurifier
        manual.airPurifier?.fanMode = .level(2)
        #expect(manual.stateSummary == "speed 2")
        #expect(HubFixtures.remote.stateSummary == "battery 87%")
        #expect(HubDevice(id: HubFixtures.id(65545), name: "Repeater", type: .repeater).stateSummary == "-")
        #expect(HubFixtures.spot.isOn == true && HubFixtures.plug.isOn == true && HubFixtures.blind.isOn == nil)
    }

    @Test func samePayloadGivesIdenticalBytes() {
        let a = payload(HubFixtures.colourBulb).description
        let b = payload(HubFixtures.colourBulb).description
        #expect(a == b)
    }

    // MARK: Groups

    func payload(group members: [HubDevice]) -> JSON {
        MQTTState.payload(for: HubFixtures.group(members), members: members)
    }

    @Test func groupStateIsDerivedFromMembers() {
        let on = HubFixtures.spot
        let off = HubFixtures.dimmableWhite
        let remote = HubFixtures.remote
        var state = payload(group: [on, off, remote])
        #expect(state["state"] == "ON")
        #expect(state["brightness"] == 188)
        #expect(state["color_mode"] == "color_temp" && state["color_temp"] == 345)
        #expect(state["battery"] == nil && state["last_seen"] == nil, "a group reports no member's own keys")
        state = payload(group: [off, remote])
        #expect(state["state"] == "OFF")
        #expect(state["brightness"] == nil)
        #expect(state["color_mode"] == "brightness", "a room of dimmable bulbs")
        #expect(payload(group: [remote]) == [:], "nothing to show for a room of remotes")
        #expect(payload(group: []) == [:])
    }

    @Test func aGroupsPositionIsItsCoversWhenTheyAgree() {
        let left = HubFixtures.blind
        var right = left
        right.id = HubFixtures.id(65548)
        #expect(payload(group: [left, right]) == ["position": 69])
        right.cover = Cover(openPercent: 20)
        #expect(payload(group: [left, right])["position"] == nil)
        var lights = payload(group: [left, HubFixtures.plug])
        #expect(lights["position"] == 69 && lights["state"] == "ON" && lights["color_mode"] == "onoff")
        var plug = HubFixtures.plug
        plug.onOff = OnOff(on: false)
        lights = payload(group: [plug])
        #expect(lights == ["state": "OFF", "color_mode": "onoff"])
    }

    /// A room supports colour if any member has it, colour temperature if any member is white
    /// spectrum, brightness for dimmable bulbs only, on/off for plugs only; nothing without either.
    @Test func aRoomsColourModesComeFromItsMembers() {
        let spot = HubFixtures.spot, lamp = HubFixtures.colourBulb, white = HubFixtures.dimmableWhite
        let plug = HubFixtures.plug, remote = HubFixtures.remote
        #expect(ColorMode.supported(byGroupOf: [spot, lamp, white, plug]) == [.xy, .colorTemperature])
        #expect(ColorMode.supported(byGroupOf: [lamp, white]) == [.xy])
        #expect(ColorMode.supported(byGroupOf: [spot, white]) == [.colorTemperature])
        #expect(ColorMode.supported(byGroupOf: [white, plug]) == [.brightness])
        #expect(ColorMode.supported(byGroupOf: [plug, remote]) == [.onOff])
        #expect(ColorMode.supported(byGroupOf: [remote, HubFixtures.blind]) == nil)
    }

    /// A room always names a colour mode it supports (Home Assistant shows no brightness
    /// otherwise), with that mode's colour data, also when its bulbs disagree.
    @Test func aRoomAlwaysNamesOneOfItsColourModes() {
        var spot = HubFixtures.spot  // 345 mireds, on
        var ceiling = spot
        ceiling.id = HubFixtures.id(65538)
        ceiling.light?.colorTemperature = 400
        let lamp = HubFixtures.colourBulb  // xy (0.3067, 0.1241), on
        let hallway = HubFixtures.dimmableWhite
        func state(_ members: [HubDevice]) -> JSON { payload(group: members) }

        // White-spectrum bulbs that disagree, with a colour bulb: the colour bulb's xy.
        var mixed = state([spot, ceiling, lamp, hallway])
        #expect(mixed["color_mode"] == "xy")
        #expect(mixed["color"]?["x"]?.doubleValue == 0.3067 && mixed["color"]?["y"]?.doubleValue == 0.1241)
        #expect(mixed["color"]?["hue"] == nil, "a room's colour is its xy")
        #expect(mixed["brightness"] == 254)
        // Without the colour bulb: the temperature most of them have (the first on a tie).
        #expect(state([spot, ceiling])["color_mode"] == "color_temp" && state([spot, ceiling])["color_temp"] == 345)
        var third = ceiling
        third.id = HubFixtures.id(65551)
        #expect(state([spot, ceiling, third])["color_temp"] == 400)
        // They agree, and the colour bulb shows that white (a temperature sent to the room): color_temp.
        ceiling.light?.colorTemperature = 345
        var white = lamp
        white.light?.xy = Color.xy(fromKelvin: Double(Color.kelvin(fromMireds: 345)))
        mixed = state([spot, ceiling, white])
        #expect(mixed["color_mode"] == "color_temp" && mixed["color_temp"] == 345)
        #expect(mixed["color_temp_kelvin"] == 2899)
        // They agree but the colour bulb shows a colour: xy.
        #expect(state([spot, ceiling, lamp])["color_mode"] == "xy")
        // Only lit bulbs count while any is lit.
        var dark = lamp
        dark.light?.on = false
        #expect(state([spot, dark])["color_mode"] == "color_temp")
        // Everything off: the same choice from every bulb, so the mode is never missing.
        spot.light?.on = false
        ceiling.light?.on = false
        let off = state([spot, ceiling])
        #expect(off["state"] == "OFF" && off["color_mode"] == "color_temp" && off["color_temp"] == 345)
        #expect(off["brightness"] == nil)
        // Only a dimmable bulb lit in a room with white-spectrum bulbs: still their temperature.
        var lit = hallway
        lit.light?.on = true
        #expect(state([spot, lit])["color_mode"] == "color_temp")
        // A room of plugs.
        #expect(state([HubFixtures.plug])["color_mode"] == "onoff" && state([HubFixtures.plug])["state"] == "ON")
        // A room without lights or plugs has no light, and no colour mode.
        #expect(state([HubFixtures.remote])["color_mode"] == nil)
    }
}
