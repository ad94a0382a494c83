import Foundation
import HubModel
import TestSupport
import Testing
import TradfriModel

/// Bad input of every kind gets a clear error event naming the topic, and nothing else is
/// affected: the bridge keeps serving.
@Suite(.serialized) struct BadInputTests {
    @Test func everyKindOfBadPayloadGetsAnErrorAndTheBridgeKeepsServing() async throws {
        let harness = try await BridgeHarness()
        try await harness.startBridge()
        let events = try await harness.subscribe(["tradfri/bridge/event", "tradfri/hallway"])
        try await message(on: "tradfri/hallway", from: events)

        let cases: [(topic: String, payload: String, error: String)] = [
            ("tradfri/hallway/set", #"{"state":"ON""#, "malformed JSON"),
            ("tradfri/hallway/set", "[1,2,3]", "expected a JSON object"),
            ("tradfri/hallway/set", #"{"brightness":"very"}"#, "brightness must be a number"),
            ("tradfri/hallway/set", #"{"brightness":999}"#, "out of range"),
            ("tradfri/hallway/set", #"{"state":true,"flash":"long"}"#, "unknown attribute 'flash'"),
            ("tradfri/hallway/set", #"{"color_temp":300}"#, "dimmable white bulb"),
            ("tradfri/hallway/set", "maybe", "expected a JSON object or ON"),
            ("tradfri/hallway/set/brightness", "-5", "out of range"),
            ("tradfri/no_such_lamp/set", "ON", "no device or group named 'no_such_lamp'"),
            ("tradfri/living_room_remote/set", "ON", "only report their battery"),
            ("tradfri/living_room/set", #"{"scene":"DISCO"}"#, "has no scene"),
            ("tradfri/bedroom_blind/set", #"{"position":-1}"#, "out of range"),
            ("tradfri/air_purifier/set", #"{"fan_mode":"turbo"}"#, "fan_mode must be"),
            // Finite but far out of range: the error names the value instead of trapping on it.
            ("tradfri/hallway/set", #"{"brightness":1e300}"#, "brightness 1e+300 is out of range"),
            ("tradfri/hallway/set/transition", "-1e300", "out of range"),
            ("tradfri/bedroom_blind/set", #"{"position":99999999999999999999}"#, "out of range"),
        ]
        for item in cases {
            let before = events.lineCount
            try await harness.publish(item.topic, item.payload)
            let error = try await commandError(for: item.topic, from: events, after: before)
            #expect(error.contains(item.error), "\(item.topic) \(item.payload): \(error)")
        }
        // A huge payload.
        let huge = "{\"state\":\"" + String(repeating: "A", count: 100_000) + "\"}"
        let file = harness.directory.appendingPathComponent("huge.json")
        try huge.write(to: file, atomically: true, encoding: .utf8)
        let before = events.lineCount
        try await harness.broker.publish(["-t", "tradfri/hallway/set", "-f", file.path])
        #expect(try await commandError(for: "tradfri/hallway/set", from: events, after: before).contains("too large"))

        // A colour far from the white curve sent to a white-spectrum bulb (where the colour
        // temperature formula divides by zero) ends at the nearest temperature the bulb has.
        let ceiling = try await harness.subscribe(["tradfri/living_room_ceiling"])
        try await harness.publish("tradfri/living_room_ceiling/set", #"{"color":{"x":0.332,"y":0.1858}}"#)
        try await message(on: "tradfri/living_room_ceiling", from: ceiling) { $0["color_temp"] == 250 }

        // Still alive and serving.
        try await harness.publish("tradfri/hallway/set", "ON")
        try await message(on: "tradfri/hallway", from: events) { $0["state"] == "ON" }
        #expect(harness.bridge?.isRunning == true)
        await harness.shutdown()
    }

    @Test func aRetainedCommandIsRefusedAndRemovedSoItNeverReplays() async throws {
        let harness = try await BridgeHarness()
        try await harness.startBridge()
        let events = try await harness.subscribe(["tradfri/bridge/event"])
        try await harness.publish("tradfri/coffee_maker/set", "ON", retain: true)
        #expect(try await commandError(for: "tradfri/coffee_maker/set", from: events).contains("must not be retained"))
        #expect(try await harness.device(65543).plug?.on == false, "the retained command was not carried out")
        // Nothing is left retained on the command topic.
        let check = try await runCommand(
            "mosquitto_sub",
            [
                "-h", "127.0.0.1", "-p", "\(harness.broker.port)",
                "-t", "tradfri/coffee_maker/set", "-W", "1", "-v",
            ], check: false)
        #expect(!check.output.contains("ON"))
        await harness.shutdown()
    }

    @Test func garbageFromTheGatewayIsIgnoredAndTheLastGoodStateStays() async throws {
        let harness = try await BridgeHarness()
        try await harness.startBridge()
        let watcher = try await harness.subscribe(["tradfri/coffee_maker"])
        try await message(on: "tradfri/coffee_maker", from: watcher) { $0["state"] == "OFF" }
        try await harness.control(#"odd-answer 65543 {"r":"06"}"#)
        try await harness.control("odd-answer 65543 this is not json")
        try await harness.control(#"odd-answer 65543 {"9003":"sixty-five thousand"}"#)
        // The next good notification is published; nothing was published for the garbage.
        _ = try await harness.coap("put", "15001/65543", #"{"3312":[{"5850":1}]}"#)
        try await message(on: "tradfri/coffee_maker", from: watcher) { $0["state"] == "ON" }
        #expect(watcher.output.filter { $0.hasPrefix("tradfri/coffee_maker ") }.count == 2)
        #expect(harness.bridge?.isRunning == true)
        await harness.shutdown()
    }

    @Test func outOfRangeValuesFromTheGatewayAreClampedAndBreakNothing() async throws {
        let harness = try await BridgeHarness()
        try await harness.startBridge()
        let watcher = try await harness.subscribe(["tradfri/hallway", "tradfri/bedroom_blind"])
        try await message(on: "tradfri/hallway", from: watcher)
        try await message(on: "tradfri/bedroom_blind", from: watcher)

        // The gateway reports a blind at -1e300 % closed and a bulb at brightness Int.max.
        let blind = try await harness.coap("get", "15001/65546")
        try await harness.control("odd-answer 65546 " + blind.replacing(/"5536":[0-9.]+/, with: #""5536":-1e300"#))
        try await message(on: "tradfri/bedroom_blind", from: watcher) { $0["position"] == 100 }
        let bulb = try await harness.coap("get", "15001/65537")
        let odd = bulb.replacing(/"5851":[0-9]+/, with: #""5851":9223372036854775807"#)
            .replacing(/"5850":[01]/, with: #""5850":1"#)
        try await harness.control("odd-answer 65537 " + odd)
        try await message(on: "tradfri/hallway", from: watcher) { $0["brightness"] == 254 && $0["state"] == "ON" }

        // A relative step from there works from the clamped level.
        try await harness.publish("tradfri/hallway/set", #"{"brightness_step":-54}"#)
        try await message(on: "tradfri/hallway", from: watcher) { $0["brightness"] == 200 }
        #expect(harness.bridge?.isRunning == true)
        await harness.shutdown()
    }

    @Test func aBrokenConfigFileStopsTheDaemonWithTheKey() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("bad-config-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let file = directory.appendingPathComponent("config.yaml").path
        try "gateway:\n  command_spacing: fast\n".write(toFile: file, atomically: true, encoding: .utf8)
        let result = try await runCommand("tradfri-bridge", ["run", "--config", file], check: false)
        #expect(result.status == 1)
        #expect(
            result.output.contains("\(file):2: gateway.command_spacing: must be a number of seconds"),
            "\(result.output)")
        try? FileManager.default.removeItem(at: directory)
    }
}
