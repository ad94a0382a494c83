import HubModel
import Testing

/// MQTT payloads → `DeviceCommand`s for devices and groups built directly, whatever hub they are on.
@Suite struct CommandParserTests {
    func attributes(_ text: String, _ attribute: String? = nil) throws -> [String: JSON] {
        try CommandParser.attributes(payload: Array(text.utf8), attribute: attribute)
    }

    func command(_ text: String, _ device: HubDevice, expected: ExpectedState = .init()) throws -> DeviceCommand {
        try CommandParser.command(from: try attributes(text), for: .device(device), expected: expected)
    }

    // MARK: Payloads

    @Test func plainWordsAndRawAttributeValues() throws {
        #expect(try attributes("ON") == ["state": "ON"])
        #expect(try attributes(" toggle\n") == ["state": "TOGGLE"])
        #expect(try attributes("120", "brightness") == ["brightness": 120])
        #expect(try attributes("OFF", "state") == ["state": "OFF"])
        #expect(try attributes(#"{"x":0.3,"y":0.3}"#, "color") == ["color": ["x": 0.3, "y": 0.3]])
    }

    @Test(arguments: [
        ("", "empty payload"),
        ("{\"state\":", "malformed JSON"),
        ("[1,2]", "expected a JSON object"),
        ("maybe", "expected a JSON object or ON"),
    ])
    func badPayloads(text: String, message: String) {
        #expect { try attributes(text) } throws: { "\($0)".contains(message) }
    }

    @Test func hugePayloadsAreRefused() {
        let huge = "{\"state\":\"" + String(repeating: "x", count: 10_000) + "\"}"
        #expect { try attributes(huge) } throws: { "\($0)".contains("too large") }
    }

    @Test func rawValuesThatAreNotJSONAreText() throws {
        #expect(try attributes("warmest", "color_temp") == ["color_temp": "warmest"])
        #expect { try attributes("ON", "") } throws: { "\($0)".contains("empty attribute name") }
        #expect(try attributes("lock") == ["state": "LOCK"])
    }

    // MARK: Lights

    @Test func lightAttributesAreNormalised() throws {
        let spot = HubFixtures.spot
        var c = try command(#"{"state":"ON","brightness":200.4,"color_temp":370,"transition":1.5}"#, spot)
        #expect(c.on == true && c.brightness == 200 && c.colour == .temperature(mireds: 370) && c.transition == 1.5)
        c = try command(#"{"brightness":0}"#, spot)
        #expect(c.on == false && c.brightness == nil)
        c = try command(#"{"brightness_percent":0}"#, spot)
        #expect(c.on == false && c.brightness == nil)
        c = try command(#"{"color_temp_kelvin":4000}"#, spot)
        #expect(c.colour == .temperature(mireds: 250))
        c = try command(#"{"color_temp":"Warm"}"#, spot)
        #expect(c.colour == .temperature(mireds: 454))
        c = try command(#"{"state":"TOGGLE"}"#, spot, expected: ExpectedState(on: false))
        #expect(c.on == true)
        c = try command(#"{"state":false}"#, spot)
        #expect(c.on == false)
        c = try command(#"{"brightness":"120"}"#, spot)
        #expect(c.on == true && c.brightness == 120, "a number in a string, as `<name>/set/brightness` gives it")
    }

    /// Steps count from the expected level while on, from 0 while off, and stay within 1…254.
    @Test func brightnessStepsStayOnAndInRange() throws {
        let spot = HubFixtures.spot
        var c = try command(#"{"brightness_step":-50}"#, spot, expected: ExpectedState(on: true, brightness: 188))
        #expect(c.brightness == 138 && c.on == true)
        c = try command(#"{"brightness_step":40}"#, spot, expected: ExpectedState(on: false, brightness: 188))
        #expect(c.brightness == 40 && c.on == true)
        c = try command(#"{"brightness_step":-255}"#, spot, expected: ExpectedState(on: true, brightness: 20))
        #expect(c.brightness == 1 && c.on == true)
        c = try command(#"{"brightness_step":255}"#, spot, expected: ExpectedState(on: true, brightness: 200))
        #expect(c.brightness == 254)
    }

    @Test func colourTakesEveryUsualForm() throws {
        let lamp = HubFixtures.colourBulb
        func xy(_ text: String) throws -> Color.XY? {
            guard case .xy(let xy) = try command(text, lamp).colour else { return nil }
            return xy
        }
        let red = try #require(try xy(##"{"color":{"hex":"#ff0000"}}"##))
        #expect(abs(red.x - 0.64) < 0.01 && abs(red.y - 0.33) < 0.01)
        #expect(try xy(##"{"color":"#FF0000"}"##) == red)
        #expect(try xy(#"{"color":{"r":255,"g":0,"b":0}}"#) == red)
        #expect(try xy(#"{"color":{"rgb":"255, 0, 0"}}"#) == red)
        #expect(try xy(#"{"color":{"x":0.3,"y":0.31}}"#) == Color.XY(x: 0.3, y: 0.31))
        #expect(try command(#"{"color":{"h":120,"s":80}}"#, lamp).colour == .hueSaturation(hue: 120, saturation: 80))
        #expect(
            try command(#"{"color":{"hue":120,"saturation":80}}"#, lamp).colour
                == .hueSaturation(hue: 120, saturation: 80))
    }

    @Test(arguments: [
        (#"{"brightness":300}"#, "brightness 300 is out of range (0…254)"),
        (#"{"brightness":"bright"}"#, "brightness must be a number"),
        (#"{"state":"MAYBE"}"#, "state must be ON, OFF or TOGGLE"),
        (#"{"colour":{"x":1}}"#, "unknown attribute 'colour' for a light"),
        (#"{"color":{"hue":400,"saturation":10}}"#, "color.hue 400 is out of range"),
        (#"{"color":{"hue":40}}"#, "hue and saturation together"),
        (##"{"color":"#zzzzzz"}"##, "is not a #RRGGBB colour"),
        (#"{"color":5}"#, "color must be an object"),
        (#"{"color":{"rgb":"1,2"}}"#, "color.rgb must be \"R,G,B\""),
        (#"{"color":{"z":1}}"#, "color must give x and y"),
        (#"{"color_temp":20}"#, "color_temp 20 is out of range"),
        (#"{"transition":-1}"#, "transition -1 is out of range"),
        ("{}", "nothing to do"),
        (#"{"transaction":7,"linkquality":80}"#, "nothing to do"),
    ])
    func badLightValuesAreRefusedWithTheReason(text: String, message: String) {
        #expect { try command(text, HubFixtures.colourBulb) } throws: { "\($0)".contains(message) }
    }

    @Test func colourOnADimmableWhiteBulbIsRefused() {
        #expect { try command(#"{"color_temp":300}"#, HubFixtures.dimmableWhite) } throws: {
            "\($0)" == "'Hallway' is a dimmable white bulb: it has no colour or colour temperature"
        }
        #expect { try command(##"{"color":"#00ff00"}"##, HubFixtures.dimmableWhite) } throws: {
            "\($0)".contains("dimmable white bulb")
        }
    }

    // MARK: Other devices

    @Test func coversPlugsPurifiersAndBatteryDevices() throws {
        let blind = HubFixtures.blind
        #expect(try command(#"{"position":30.4}"#, blind).position == 30)
        #expect(try command("OPEN", blind).position == 100)
        #expect(try command("CLOSE", blind).position == 0)
        #expect(try command("STOP", blind).stop)
        #expect { try command(#"{"position":130}"#, blind) } throws: { "\($0)".contains("out of range") }
        #expect { try command("ON", blind) } throws: {
            "\($0)".contains("state of a blind must be OPEN, CLOSE or STOP")
        }

        let plug = HubFixtures.plug
        #expect(try command("TOGGLE", plug, expected: .init(on: true)).on == false)
        #expect(try command("TOGGLE", plug).on == true, "an unknown state toggles to on")
        #expect { try command(#"{"brightness":10}"#, plug) } throws: {
            "\($0)".contains("unknown attribute 'brightness' for a plug")
        }

        let purifier = HubFixtures.airPurifier
        var c = try command(#"{"fan_mode":"3","led_enable":false,"child_lock":"LOCK"}"#, purifier)
        #expect(c.fanMode == .level(3) && c.ledEnable == false && c.childLock == true)
        c = try command(#"{"fan_mode":5,"child_lock":false}"#, purifier)
        #expect(c.fanMode == .level(5) && c.childLock == false)
        #expect(try command(#"{"fan_mode":"Auto"}"#, purifier).fanMode == .auto)
        #expect(try command(#"{"fan_state":"ON"}"#, purifier).fanMode == .auto)
        #expect(try command(#"{"fan_state":"OFF"}"#, purifier).fanMode == .off)
        #expect { try command(#"{"fan_mode":"6"}"#, purifier) } throws: {
            "\($0)".contains("fan_mode must be off, auto or a level 1…5")
        }
        #expect { try command(#"{"led_enable":"yes"}"#, purifier) } throws: { "\($0)".contains("true or false") }
        #expect { try command("ON", purifier) } throws: {
            "\($0)".contains("unknown attribute 'state' for an air purifier")
        }

        #expect { try command("ON", HubFixtures.remote) } throws: {
            "\($0)".contains("'Remote' is a remote and has nothing to set")
        }
        let unknown = HubDevice(id: HubFixtures.id(65560), name: "Gadget", type: .unknown("unknown_99"))
        #expect { try command("ON", unknown) } throws: { "\($0)".contains("is a unknown_99 and has nothing to set") }
    }

    // MARK: Groups

    func groupCommand(
        _ text: String, _ members: [HubDevice], scenes: [HubScene] = [HubFixtures.relax, HubFixtures.focus]
    ) throws -> DeviceCommand {
        try CommandParser.command(
            from: try attributes(text), for: .group(HubFixtures.group(members, scenes: scenes), members: members),
            expected: .init())
    }

    @Test func groupsAcceptScenesByNameOrID() throws {
        let members = [HubFixtures.spot, HubFixtures.colourBulb]
        #expect(try groupCommand(#"{"scene":"relax"}"#, members).scene == HubFixtures.id(196609))
        #expect(try groupCommand(#"{"scene":"Focus"}"#, members).scene == HubFixtures.id(196610))
        #expect(try groupCommand(#"{"scene":196609}"#, members).scene == HubFixtures.id(196609))
        #expect(try groupCommand(#"{"scene":"196610"}"#, members).scene == HubFixtures.id(196610))
        #expect { try groupCommand(#"{"scene":"PARTY"}"#, members) } throws: {
            "\($0)".contains("has no scene \"PARTY\" (scenes: Focus, RELAX)")
        }
        #expect { try groupCommand(#"{"scene":"PARTY"}"#, members, scenes: []) } throws: {
            "\($0)" == "group 'Living room' has no scene \"PARTY\""
        }
        let c = try groupCommand(#"{"state":"ON","brightness":100}"#, members)
        #expect(c.on == true && c.brightness == 100 && c.scene == nil)
    }

    /// A hub whose scene ids are not numbers: a scene is still found by its id.
    @Test func scenesWithIDsThatAreNotNumbers() throws {
        let evening = HubScene(id: ItemID(hub: "hue", local: "a1b2-c3"), name: "Evening")
        let c = try groupCommand(#"{"scene":"a1b2-c3"}"#, [HubFixtures.spot], scenes: [evening])
        #expect(c.scene == ItemID(hub: "hue", local: "a1b2-c3"))
    }

    /// A group takes what its members can do: colour if any member has colour or colour
    /// temperature, a position if it has covers.
    @Test func groupsTakeWhatTheirMembersCanDo() throws {
        let lights = [HubFixtures.spot, HubFixtures.dimmableWhite]
        var c = try groupCommand(#"{"color_temp":300,"transition":2,"brightness_percent":100}"#, lights)
        #expect(c.colour == .temperature(mireds: 300) && c.transition == 2 && c.brightness == 254 && c.on == true)
        #expect { try groupCommand(#"{"color_temp":300}"#, [HubFixtures.dimmableWhite, HubFixtures.plug]) } throws: {
            "\($0)" == "group 'Living room' has no lights with colour or colour temperature"
        }
        #expect { try groupCommand(#"{"position":40}"#, lights) } throws: {
            "\($0)" == "group 'Living room' has no blinds"
        }
        c = try groupCommand(#"{"position":40}"#, [HubFixtures.blind, HubFixtures.spot])
        #expect(c.position == 40)
        #expect { try groupCommand(#"{"fan_mode":"auto"}"#, lights) } throws: {
            "\($0)".contains("unknown attribute 'fan_mode' for a group")
        }
        #expect { try groupCommand("{}", lights) } throws: { "\($0)".contains("nothing to do") }
        c = try CommandParser.command(
            from: try attributes("TOGGLE"), for: .group(HubFixtures.group(lights), members: lights),
            expected: ExpectedState(on: true))
        #expect(c.on == false)
    }

    // MARK: Merging

    @Test func laterCommandsWinPerAttribute() {
        var first = DeviceCommand()
        first.on = true
        first.brightness = 100
        first.colour = .temperature(mireds: 300)
        var second = DeviceCommand()
        second.brightness = 50
        first.merge(second)
        #expect(first.on == true && first.brightness == 50 && first.colour == .temperature(mireds: 300))
        var off = DeviceCommand()
        off.on = false
        first.merge(off)
        #expect(first.on == false)
    }

    /// A cover's last word wins: a stop cancels a position sent before it, and a position a stop.
    @Test func stopAndPositionReplaceEachOther() {
        var command = DeviceCommand()
        command.position = 30
        var stop = DeviceCommand()
        stop.stop = true
        command.merge(stop)
        #expect(command.stop && command.position == nil)
        var position = DeviceCommand()
        position.position = 80
        command.merge(position)
        #expect(!command.stop && command.position == 80)
        #expect(DeviceCommand().isEmpty)
        var transitionOnly = DeviceCommand()
        transitionOnly.transition = 1
        #expect(transitionOnly.isEmpty, "a transition alone does nothing")
    }
}
