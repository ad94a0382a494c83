import Foundation
import HubModel
import TestSupport
import Testing

/// The gateway stops working without failing, as real ones do after hours or days: a session
/// that answers pings but nothing else, a device whose changes are no longer notified. The
/// bridge notices by itself, says what it found on `bridge/event`, and recovers without a restart.
@Suite struct StallTests {
    @Test func aHalfDeadSessionThatOnlyAnswersPingsIsReplaced() async throws {
        let harness = try await BridgeHarness()
        try await harness.startBridge()
        let watcher = try await harness.subscribe(["tradfri/bridge/event", "tradfri/living_room_ceiling"])
        try await message(on: "tradfri/living_room_ceiling", from: watcher) { $0["brightness"] == 200 }
        let mark = watcher.lineCount
        try await harness.control("half-dead")
        // The next requests (this command, then the re-read that checks it) get an empty
        // acknowledgement and never an answer, while pings are answered.
        try await harness.publish("tradfri/living_room_ceiling/set", #"{"brightness":10}"#)
        let stall = try await message(on: "tradfri/bridge/event", from: watcher, within: .seconds(30), after: mark) {
            $0["type"] == "stall_detected"
        }
        #expect(stall["data"]?["detail"]?.stringValue?.contains("answered pings but not") == true, "\(stall)")
        try await message(on: "tradfri/bridge/event", from: watcher, within: .seconds(20), after: mark) {
            $0["type"] == "gateway_online"
        }
        // The new session works both ways: a command, and a change made at the gateway.
        try await harness.publish("tradfri/living_room_ceiling/set", #"{"brightness":20}"#)
        try await message(on: "tradfri/living_room_ceiling", from: watcher, within: .seconds(10), after: mark) {
            $0["brightness"] == 20
        }
        #expect(try await harness.device(65538).light?.brightness == 20)
        try await harness.control(#"change 65538 {"3311":[{"5851":77}]}"#)
        try await message(on: "tradfri/living_room_ceiling", from: watcher, within: .seconds(10), after: mark) {
            $0["brightness"] == 77
        }
        #expect(await harness.stopBridge() == 0, "no restart was needed; the bridge still stops cleanly")
        await harness.shutdown()
    }

    @Test func aDeviceTheGatewayStopsNotifyingIsCaughtByThePeriodicCheck() async throws {
        let harness = try await BridgeHarness()
        try await harness.startBridge(gatewayConfiguration: "  audit_interval: 60")
        let watcher = try await harness.subscribe(["tradfri/bridge/event", "tradfri/living_room_ceiling"])
        try await message(on: "tradfri/living_room_ceiling", from: watcher) { $0["brightness"] == 200 }
        let mark = watcher.lineCount
        try await harness.control("mute 65538")
        try await harness.control(#"change 65538 {"3311":[{"5851":42}]}"#)
        // Every item is checked once within the audit interval (60 s).
        try await message(on: "tradfri/living_room_ceiling", from: watcher, within: .seconds(75), after: mark) {
            $0["brightness"] == 42
        }
        let repaired = try await message(on: "tradfri/bridge/event", from: watcher, after: mark) {
            $0["type"] == "divergence_repaired"
        }
        #expect(repaired["data"]?["reason"] == "periodic check" && repaired["data"]?["id"] == 65538)
        let stall = try await message(on: "tradfri/bridge/event", from: watcher, after: mark) {
            $0["type"] == "stall_detected"
        }
        #expect(stall["data"]?["detail"]?.stringValue?.contains("Living room ceiling") == true, "\(stall)")
        // Every other observation was registered again and still works.
        let before = watcher.lineCount
        try await harness.control(#"change 65539 {"3311":[{"5850":0}]}"#)
        let lamp = try await harness.subscribe(["tradfri/reading_lamp"])
        try await message(on: "tradfri/reading_lamp", from: lamp, within: .seconds(10)) { $0["state"] == "OFF" }
        lamp.signal(SIGTERM)
        #expect(watcher.output.dropFirst(before).allSatisfy { !$0.contains("gateway_offline") }, "no reconnect")
        await harness.shutdown()
    }
}
