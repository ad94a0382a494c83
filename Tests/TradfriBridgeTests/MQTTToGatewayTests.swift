import Foundation
import HubModel
import TestSupport
import Testing
import TradfriModel

/// MQTT → gateway: mosquitto_pub on /set, checked at the gateway with coap-client-openssl and
/// on the state topic with mosquitto_sub.
@Suite(.serialized) struct MQTTToGatewayTests {
    @Test func lightCommandsReachTheGatewayAndTheStateFollows() async throws {
        let harness = try await BridgeHarness()
        try await harness.startBridge()
        let watcher = try await harness.subscribe([
            "tradfri/living_room_ceiling", "tradfri/hallway", "tradfri/reading_lamp",
        ])

        // Each wait looks only at what arrived after its command (the retained states come first
        // and may already match: the hallway starts off, the reading lamp warm).
        var mark = watcher.lineCount
        try await harness.publish(
            "tradfri/living_room_ceiling/set", #"{"state":"ON","brightness":120,"color_temp":300}"#)
        try await message(on: "tradfri/living_room_ceiling", from: watcher, after: mark) {
            $0["brightness"] == 120 && $0["color_temp"] == 300
        }
        let ceiling = try await harness.device(65538).light
        #expect(ceiling?.brightness == 120 && ceiling?.colorTemperature == 300)

        mark = watcher.lineCount
        try await harness.publish("tradfri/hallway/set", "ON")
        try await message(on: "tradfri/hallway", from: watcher, after: mark) { $0["state"] == "ON" }
        #expect(try await harness.device(65537).light?.on == true)
        mark = watcher.lineCount
        try await harness.publish("tradfri/hallway/set", "TOGGLE")
        try await message(on: "tradfri/hallway", from: watcher, after: mark) { $0["state"] == "OFF" }

        // A raw attribute topic and the numeric id as an alias.
        mark = watcher.lineCount
        try await harness.publish("tradfri/65537/set/brightness", "80")
        try await message(on: "tradfri/hallway", from: watcher, after: mark) {
            $0["brightness"] == 80 && $0["state"] == "ON"
        }

        // Colour temperature to a colour bulb travels as xy; Kelvin is accepted too.
        mark = watcher.lineCount
        try await harness.publish("tradfri/reading_lamp/set", #"{"color_temp_kelvin":2700}"#)
        try await message(on: "tradfri/reading_lamp", from: watcher, after: mark) {
            ($0["color"]?["x"]?.doubleValue ?? 0) > 0.45
        }
        let put = try harness.requests().last { $0["path"] == "15001/65539" && $0["method"] == "PUT" }
        #expect(put?["payload"]?.stringValue?.contains("5709") == true)
        #expect(put?["payload"]?.stringValue?.contains("5711") == false)
        mark = watcher.lineCount
        try await harness.publish("tradfri/reading_lamp/set", #"{"color":{"hue":120,"saturation":100}}"#)
        try await message(on: "tradfri/reading_lamp", from: watcher, after: mark) { $0["color"]?["hue"] == 120 }
        await harness.shutdown()
    }

    @Test func aTransitionWithBrightnessAndColourIsSentAsTwoPutsAndBothApply() async throws {
        let harness = try await BridgeHarness()
        try await harness.startBridge()
        let watcher = try await harness.subscribe(["tradfri/living_room_ceiling"])
        try await harness.publish(
            "tradfri/living_room_ceiling/set", #"{"brightness":60,"color_temp":454,"transition":1}"#)
        try await message(on: "tradfri/living_room_ceiling", from: watcher) {
            $0["brightness"] == 60 && $0["color_temp"] == 454
        }
        let puts = try harness.requests().filter { $0["path"] == "15001/65538" }.compactMap {
            $0["payload"]?.stringValue
        }
        #expect(puts.count == 2, "\(puts)")
        #expect(puts.first?.contains("5851") == true && puts.first?.contains("5712") == false)
        #expect(puts.last?.contains("5711") == true && puts.last?.contains("5712") == true)
        await harness.shutdown()
    }

    @Test func groupsScenesBlindsPlugsAndThePurifier() async throws {
        let harness = try await BridgeHarness()
        // At debug level the bridge logs each write the gateway has acknowledged.
        try await harness.startBridge(extraConfiguration: "logging:\n  level: debug")
        let bridge = try #require(harness.bridge)
        let watcher = try await harness.subscribe(["tradfri/#"])
        try await message(on: "tradfri/bridge/state", from: watcher)

        try await harness.publish("tradfri/living_room/set", #"{"scene":"FOCUS"}"#)
        try await message(on: "tradfri/living_room_ceiling", from: watcher) {
            $0["color_temp"] == 250 && $0["brightness"] == 254
        }
        #expect(
            try harness.requests().contains {
                $0["path"] == "15004/131073" && $0["payload"]?.stringValue?.contains("9039") == true
            })

        // Brightness and colour temperature with a transition: one attribute fades at a time, the
        // members' colour temperature; the room's brightness is set without a transition.
        try await harness.publish(
            "tradfri/living_room/set", #"{"brightness":100,"color_temp":300,"transition":2}"#)
        try await message(on: "tradfri/living_room_ceiling", from: watcher) {
            $0["color_temp"] == 300 && $0["brightness"] == 100
        }
        let puts = try harness.requests().filter { $0["method"] == "PUT" }
        let roomPut = try #require(puts.last { $0["path"] == "15004/131073" }?["payload"]?.stringValue)
        let memberPut = try #require(puts.last { $0["path"] == "15001/65538" }?["payload"]?.stringValue)
        #expect(roomPut.contains(#""5851":100"#) && !roomPut.contains("5712"), "\(roomPut)")
        #expect(memberPut.contains(#""5711":300"#) && memberPut.contains(#""5712":20"#), "\(memberPut)")

        try await harness.publish("tradfri/living_room/set", "OFF")
        try await message(on: "tradfri/living_room", from: watcher) { $0["state"] == "OFF" }
        #expect(try await harness.device(65550).light?.on == false)

        try await harness.publish("tradfri/bedroom_blind/set", #"{"position":70}"#)
        try await message(on: "tradfri/bedroom_blind", from: watcher) { $0["position"] == 70 }
        #expect(try await harness.device(65546).blind?.position == 30, "position 70 open = gateway 30")
        let close = watcher.lineCount
        try await harness.publish("tradfri/bedroom_blind/set", "CLOSE")
        try await message(on: "tradfri/bedroom_blind", from: watcher, after: close) {
            ($0["position"]?.intValue ?? 100) < 70
        }
        try await harness.publish("tradfri/bedroom_blind/set", "STOP")
        // A blind has no state that shows a stop, so: the gateway acknowledged the stop, and it got it.
        try await bridge.waitForLine(within: .seconds(5), "the stop to be acknowledged") {
            $0.contains("command sent") && $0.contains("PUT 15001/65546") && $0.contains("5523")
        }
        #expect(try harness.requests().contains { $0["payload"]?.stringValue?.contains("5523") == true })

        try await harness.publish("tradfri/coffee_maker/set", #"{"state":"ON"}"#)
        try await message(on: "tradfri/coffee_maker", from: watcher) { $0["state"] == "ON" }
        #expect(try await harness.device(65543).plug?.on == true)

        try await harness.publish(
            "tradfri/air_purifier/set", #"{"fan_mode":"3","led_enable":false,"child_lock":"LOCK"}"#)
        try await message(on: "tradfri/air_purifier", from: watcher) {
            $0["fan_mode"] == "3" && $0["led_enable"] == false && $0["child_lock"] == "LOCK"
        }
        #expect(try await harness.device(65547).airPurifier?.fanMode == 30)
        await harness.shutdown()
    }

    /// `<name>/get` reads the device from the gateway (a change it never notified shows up),
    /// publishes the state again even when unchanged, and reports the repaired difference.
    @Test func getRereadsAndPublishesTheDevice() async throws {
        let harness = try await BridgeHarness()
        try await harness.startBridge()
        let watcher = try await harness.subscribe(["tradfri/spot_a1", "tradfri/bridge/event"])
        try await message(on: "tradfri/spot_a1", from: watcher) { $0["brightness"] == 188 }
        try await harness.control(#"change-silently 65550 {"3311":[{"5851":77}]}"#)
        try await harness.publish("tradfri/spot_a1/get", #"{"state":""}"#)
        try await message(on: "tradfri/spot_a1", from: watcher) { $0["brightness"] == 77 }
        let event = try await message(on: "tradfri/bridge/event", from: watcher) {
            $0["type"] == "divergence_repaired"
        }
        #expect(event["data"]?["friendly_name"] == "spot_a1" && event["data"]?["reason"] == "read on request")
        let before = watcher.lineCount
        try await harness.publish("tradfri/spot_a1/get", #"{"state":""}"#)
        try await watcher.waitForLine(within: .seconds(5), "the state again", after: before) {
            $0.hasPrefix("tradfri/spot_a1 {")
        }
        await harness.shutdown()
    }

    @Test func fiftyRapidCommandsToOneLightArriveCoalescedSpacedAndEndingInTheLastValue() async throws {
        let harness = try await BridgeHarness()
        try await harness.startBridge()
        let watcher = try await harness.subscribe(["tradfri/living_room_ceiling"])
        // One mosquitto_pub sending 50 messages (from stdin, one per line) as fast as it can.
        let lines = (1...50).map { #"{"brightness":\#($0 * 5)}"# }.joined(separator: "\n")
        let file = harness.directory.appendingPathComponent("burst.txt")
        try lines.write(to: file, atomically: true, encoding: .utf8)
        try await runCommand(
            "sh",
            [
                "-c",
                "mosquitto_pub -h 127.0.0.1 -p \(harness.broker.port) -t tradfri/living_room_ceiling/set -l < \(file.path)",
            ])
        try await message(on: "tradfri/living_room_ceiling", from: watcher, within: .seconds(20)) {
            $0["brightness"] == 250
        }
        let puts = try harness.requests().filter { $0["method"] == "PUT" && $0["path"] == "15001/65538" }
        #expect(puts.count < 10, "coalesced: \(puts.count) PUTs for 50 commands")
        #expect(puts.last?["payload"]?.stringValue?.contains(#""5851":250"#) == true)
        let times = puts.compactMap { $0["time"]?.doubleValue }
        for (earlier, later) in zip(times, times.dropFirst()) {
            #expect(later - earlier >= 0.45, "PUTs to one device at least the spacing apart: \(later - earlier)")
        }
        await harness.shutdown()
    }

    @Test func aFirstCommandAndCommandsToOtherDevicesAreNotDelayed() async throws {
        let harness = try await BridgeHarness()
        // A long spacing, so a second PUT that waited for it stands out from a busy machine's delays.
        try await harness.startBridge(gatewayConfiguration: "  command_spacing: 3")
        let watcher = try await harness.subscribe(["tradfri/hallway", "tradfri/coffee_maker"])
        try await harness.publish("tradfri/hallway/set", "ON")
        try await harness.publish("tradfri/coffee_maker/set", "ON")
        try await message(on: "tradfri/coffee_maker", from: watcher) { $0["state"] == "ON" }
        let puts = try harness.requests().filter { $0["method"] == "PUT" }
        let times = puts.compactMap { $0["time"]?.doubleValue }
        #expect(puts.count == 2)
        #expect(
            times.count == 2 && times[1] - times[0] < 1.5, "the second device did not wait for the first one's spacing")
        await harness.shutdown()
    }
}
