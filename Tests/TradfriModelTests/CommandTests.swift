import HubModel
import Testing

@testable import TradfriModel

/// MQTT commands for devices and groups read from gateway payloads: what the translation says
/// each can do decides what it takes (the parser's own rules: HubModelTests).
@Suite struct CommandParsingTests {
    static let hub = "gateway"
    let spot = try! Device(payload: Array(GatewayPayloads.whiteSpectrumSpot.utf8))
    let colour = try! Device(payload: Array(GatewayPayloads.colorBulb.utf8))
    let white = try! Device(payload: Array(GatewayPayloads.dimmableWhite.utf8))

    func attributes(_ text: String, _ attribute: String? = nil) throws -> [String: JSON] {
        try CommandParser.attributes(payload: Array(text.utf8), attribute: attribute)
    }

    func command(_ text: String, _ device: Device, expected: ExpectedState = .init()) throws -> DeviceCommand {
        try CommandParser.command(
            from: try attributes(text), for: .device(device.hubDevice(hub: Self.hub)), expected: expected)
    }

    @Test func lightAttributesAreNormalised() throws {
        var c = try command(#"{"state":"ON","brightness":200.4,"color_temp":370,"transition":1.5}"#, spot)
        #expect(c.on == true && c.brightness == 200 && c.colour == .temperature(mireds: 370) && c.transition == 1.5)
        c = try command(#"{"brightness":0}"#, spot)
        #expect(c.on == false && c.brightness == nil)
        c = try command(#"{"color_temp_kelvin":4000}"#, spot)
        #expect(c.colour == .temperature(mireds: 250))
        c = try command(#"{"color_temp":"warmest"}"#, spot)
        #expect(c.colour == .temperature(mireds: 454))
        c = try command(#"{"state":"TOGGLE"}"#, spot, expected: ExpectedState(on: true))
        #expect(c.on == false)
        c = try command(#"{"brightness_step":-50}"#, spot, expected: ExpectedState(on: true, brightness: 188))
        #expect(c.brightness == 138)
        c = try command(#"{"brightness_percent":50}"#, spot)
        #expect(c.brightness == 127)
        c = try command(##"{"color":{"hex":"#ff0000"}}"##, colour)
        guard case .xy(let xy) = c.colour else { Issue.record("hex becomes xy"); return }
        #expect(abs(xy.x - 0.64) < 0.01 && abs(xy.y - 0.33) < 0.01)
        c = try command(#"{"color":{"hue":120,"saturation":80}}"#, colour)
        #expect(c.colour == .hueSaturation(hue: 120, saturation: 80))
        c = try command(#"{"color":{"rgb":"0,0,255"}}"#, colour)
        #expect(c.colour != nil)
    }

    @Test(arguments: [
        (#"{"brightness":300}"#, "brightness 300 is out of range (0…254)"),
        (#"{"brightness":"bright"}"#, "brightness must be a number"),
        (#"{"state":"MAYBE"}"#, "state must be ON, OFF or TOGGLE"),
        (#"{"colour":{"x":1}}"#, "unknown attribute 'colour' for a light"),
        (#"{"color":{"hue":400,"saturation":10}}"#, "color.hue 400 is out of range"),
        (#"{"color":{"hue":40}}"#, "hue and saturation together"),
        (##"{"color":"#zzzzzz"}"##, "is not a #RRGGBB colour"),
        (#"{"color_temp":20}"#, "color_temp 20 is out of range"),
        (#"{"transition":-1}"#, "transition -1 is out of range"),
        ("{}", "nothing to do"),
    ])
    func badLightValuesAreRefusedWithTheReason(text: String, message: String) {
        #expect { try command(text, spot) } throws: { "\($0)".contains(message) }
    }

    @Test func colourOnADimmableWhiteBulbIsRefused() {
        #expect { try command(#"{"color_temp":300}"#, white) } throws: { "\($0)".contains("dimmable white bulb") }
    }

    @Test func blindsPlugsPurifiersAndBatteryDevices() throws {
        let blind = try Device(payload: Array(GatewayPayloads.blind.utf8))
        #expect(try command(#"{"position":30}"#, blind).position == 30)
        #expect(try command("OPEN", blind).position == 100)
        #expect(try command("STOP", blind).stop)
        #expect { try command(#"{"position":130}"#, blind) } throws: { "\($0)".contains("out of range") }
        let plug = try Device(payload: Array(GatewayPayloads.plug.utf8))
        #expect(try command("TOGGLE", plug, expected: .init(on: true)).on == false)
        #expect { try command(#"{"brightness":10}"#, plug) } throws: {
            "\($0)".contains("unknown attribute 'brightness' for a plug")
        }
        let purifier = try Device(payload: Array(GatewayPayloads.airPurifier.utf8))
        var c = try command(#"{"fan_mode":"3","led_enable":false,"child_lock":"LOCK"}"#, purifier)
        #expect(c.fanMode == .level(3) && c.ledEnable == false && c.childLock == true)
        #expect(
            CommandPlanner.plan(c, for: purifier).write?.body == ["15025": [["5900": 30, "5906": 1, "5905": 1]]],
            "level 3 is the gateway's 30")
        c = try command(#"{"fan_state":"OFF"}"#, purifier)
        #expect(c.fanMode == .off)
        #expect(CommandPlanner.plan(c, for: purifier).write?.body == ["15025": [["5900": 0]]])
        let remote = try Device(payload: Array(GatewayPayloads.remote.utf8))
        #expect { try command("ON", remote) } throws: { "\($0)".contains("only report their battery") }
    }

    @Test func groupsAcceptScenesByNameOrID() throws {
        let group = try Group(payload: Array(GatewayPayloads.group.utf8))
        let scene = try Scene(payload: Array(GatewayPayloads.scene.utf8))
        func groupCommand(_ text: String) throws -> DeviceCommand {
            try CommandParser.command(
                from: try attributes(text),
                for: .group(
                    group.hubGroup(hub: Self.hub, scenes: [scene]),
                    members: [spot, colour].map { $0.hubDevice(hub: Self.hub) }),
                expected: .init())
        }
        #expect(try groupCommand(#"{"scene":"relax"}"#).scene == ItemID(hub: Self.hub, 196609))
        #expect(try groupCommand(#"{"scene":196609}"#).scene == ItemID(hub: Self.hub, 196609))
        let relax = try groupCommand(#"{"scene":"RELAX"}"#)
        #expect(
            CommandPlanner.plan(relax, for: group, members: [spot, colour]).write?.body == ["5850": 1, "9039": 196609],
            "the gateway activates the scene by its id")
        #expect { try groupCommand(#"{"scene":"PARTY"}"#) } throws: {
            "\($0)".contains("has no scene \"PARTY\" (scenes: RELAX)")
        }
        #expect(try groupCommand(#"{"state":"ON","brightness":100}"#).brightness == 100)
    }
}

@Suite struct CommandPlanningTests {
    let spot = try! Device(payload: Array(GatewayPayloads.whiteSpectrumSpot.utf8))
    let colour = try! Device(payload: Array(GatewayPayloads.colorBulb.utf8))

    func plan(_ command: DeviceCommand, _ device: Device) -> (GatewayWrite?, DeviceCommand?) {
        CommandPlanner.plan(command, for: device)
    }

    @Test func onBrightnessAndTemperatureWithoutTransitionIsOnePut() {
        var command = DeviceCommand()
        command.on = true
        command.brightness = 120
        command.colour = .temperature(mireds: 300)
        let (write, remainder) = plan(command, spot)
        #expect(write?.path == "15001/65550")
        #expect(write?.body == ["3311": [["5850": 1, "5851": 120, "5711": 300]]])
        #expect(remainder == nil)
    }

    @Test func brightnessAndColourWithATransitionAreSequenced() {
        var command = DeviceCommand()
        command.brightness = 120
        command.on = true
        command.colour = .temperature(mireds: 454)
        command.transition = 2
        let (first, remainder) = plan(command, spot)
        #expect(first?.body == ["3311": [["5850": 1, "5851": 120]]], "brightness at once, without a transition")
        let rest = try! #require(remainder)
        let (second, nothing) = plan(rest, spot)
        #expect(second?.body == ["3311": [["5711": 454, "5712": 20]]], "then the colour with the transition")
        #expect(nothing == nil)
    }

    @Test func temperatureForAColourBulbIsSentAsXYAndHueIsClamped() {
        var command = DeviceCommand()
        command.colour = .temperature(mireds: 370)
        let body = plan(command, colour).0?.body["3311"]?[0]
        #expect(body?["5711"] == nil)
        #expect(body?["5709"] != nil && body?["5710"] != nil)
        command.colour = .hueSaturation(hue: 360, saturation: 100)
        let hs = plan(command, colour).0?.body["3311"]?[0]
        #expect(hs?["5707"] == 0 || hs?["5707"]?.intValue ?? 99999 <= Color.maxHueSat)
        #expect(hs?["5708"] == .int(Color.maxHueSat), "hue and saturation travel together")
    }

    @Test func temperatureIsClampedToTheBulb() {
        var command = DeviceCommand()
        command.colour = .temperature(mireds: 153)
        #expect(plan(command, spot).0?.body["3311"]?[0]?["5711"] == 250)
    }

    @Test func offWithATransitionFadesByDimming() {
        var command = DeviceCommand()
        command.on = false
        command.transition = 3
        #expect(plan(command, spot).0?.body == ["3311": [["5851": 0, "5712": 30]]])
        command.transition = nil
        #expect(plan(command, spot).0?.body == ["3311": [["5850": 0]]])
    }

    @Test func blindsPlugsAndPurifier() throws {
        let blind = try Device(payload: Array(GatewayPayloads.blind.utf8))
        var command = DeviceCommand()
        command.position = 100
        #expect(plan(command, blind).0?.body == ["15015": [["5536": 0.0]]], "100 = open = gateway 0")
        command.stop = true
        command.position = nil
        #expect(plan(command, blind).0?.body == ["15015": [["5523": 0]]])
        let purifier = try Device(payload: Array(GatewayPayloads.airPurifier.utf8))
        var fan = DeviceCommand()
        fan.fanMode = .level(2)
        fan.ledEnable = false
        #expect(plan(fan, purifier).0?.body == ["15025": [["5900": 20, "5906": 1]]])
    }

    @Test func groupsGetFlatKeysAndColourGoesToMembers() throws {
        let group = try Group(payload: Array(GatewayPayloads.group.utf8))
        var command = DeviceCommand()
        command.scene = ItemID(hub: "gateway", 196609)
        #expect(CommandPlanner.plan(command, for: group, members: []).write?.body == ["5850": 1, "9039": 196609])
        command = DeviceCommand()
        command.on = true
        command.brightness = 80
        command.transition = 1
        #expect(
            CommandPlanner.plan(command, for: group, members: []).write?.body == ["5850": 1, "5851": 80, "5712": 10])
        command = DeviceCommand()
        command.colour = .temperature(mireds: 300)
        let white = try Device(payload: Array(GatewayPayloads.dimmableWhite.utf8))
        let plan = CommandPlanner.plan(command, for: group, members: [spot, colour, white])
        #expect(plan.write == nil)
        #expect(Set(plan.memberCommands.keys) == [spot.id, colour.id])
    }

    @Test func aGroupFadesOneAttributeAtATime() throws {
        let group = try Group(payload: Array(GatewayPayloads.group.utf8))
        var command = DeviceCommand()
        command.on = true
        command.brightness = 100
        command.colour = .temperature(mireds: 300)
        command.transition = 2
        let split = CommandPlanner.split(command, for: group, members: [spot])
        // The colour fades on the members; the group's brightness is set without a transition,
        // also when the group part is planned again at its turn in the queue.
        let groupPart = try #require(split.group)
        #expect(CommandPlanner.plan(groupPart, for: group, members: []).write?.body == ["5850": 1, "5851": 100])
        #expect(split.members[spot.id]?.transition == 2)
        // Without a colour the group's brightness fades.
        command.colour = nil
        let dimming = try #require(CommandPlanner.split(command, for: group, members: [spot]).group)
        #expect(
            CommandPlanner.plan(dimming, for: group, members: []).write?.body == ["5850": 1, "5851": 100, "5712": 20])
    }
}
