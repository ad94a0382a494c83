import Foundation
import HubModel
import TestSupport
import Testing
import TradfriModel

/// MQTT ends equal to the gateway even when the gateway does not tell: the bridge reads again
/// what may be stale, and says so. Through the real parts (simulator, bridge binary, mosquitto).
@Suite(.serialized) struct ConvergenceTests {
    /// The gateway must confirm a command's effect with a notification; when none comes (the
    /// command changed nothing visible, or the notification was lost) the device is read again,
    /// and a difference it finds is published and reported.
    @Test func aCommandTheGatewayDidNotConfirmIsReadAgain() async throws {
        let harness = try await BridgeHarness()
        try await harness.startBridge()
        let watcher = try await harness.subscribe(["tradfri/spot_a1", "tradfri/bridge/event"])
        try await message(on: "tradfri/spot_a1", from: watcher) { $0["brightness"] == 188 && $0["color_temp"] == 345 }
        // Changed at the gateway without a notification (one that got lost).
        try await harness.control(#"change-silently 65550 {"3311":[{"5711":300}]}"#)
        // A command that changes nothing: the gateway does not notify.
        try await harness.publish("tradfri/spot_a1/set", #"{"brightness":188}"#)
        try await message(on: "tradfri/spot_a1", from: watcher) { $0["color_temp"] == 300 }
        let event = try await message(on: "tradfri/bridge/event", from: watcher) {
            $0["type"] == "divergence_repaired"
        }
        #expect(event["data"]?["reason"] == "no notification after a command")
        #expect(event["data"]?["friendly_name"] == "spot_a1" && event["data"]?["id"] == 65550)
        await harness.shutdown()
    }

    /// `resync` re-reads everything: a change the gateway never notified is found, reported as a
    /// repair, and the health figures say when the view was last read in full.
    @Test func resyncFindsWhatWasNeverNotifiedAndTheFiguresSayHowFreshTheViewIs() async throws {
        let harness = try await BridgeHarness()
        try await harness.startBridge()
        let watcher = try await harness.subscribe(["tradfri/#"])
        let info = try await message(on: "tradfri/bridge/info", from: watcher) {
            $0["gateway"]?["view"]?["last_full_read"] != nil
        }
        let first = info["gateway"]?["view"]?["last_full_read"]?.stringValue ?? ""
        try await harness.control(#"change-silently 65537 {"3311":[{"5850":1,"5851":99}]}"#)
        try await harness.publish("tradfri/bridge/request/resync", "{}")
        try await message(on: "tradfri/bridge/response/resync", from: watcher) { $0["status"] == "ok" }
        try await message(on: "tradfri/hallway", from: watcher) { $0["brightness"] == 99 && $0["state"] == "ON" }
        try await message(on: "tradfri/bridge/event", from: watcher) {
            $0["type"] == "divergence_repaired" && $0["data"]?["reason"] == "resync" && $0["data"]?["id"] == 65537
        }
        try await harness.publish("tradfri/bridge/request/health_check", "{}")
        let health = try await message(on: "tradfri/bridge/response/health_check", from: watcher)
        let view = health["data"]?["gateway"]?["view"]
        #expect(view?["pending_rereads"] == 0 && (view?["observed"]?.intValue ?? 0) >= 10)
        #expect((view?["repairs"]?.intValue ?? 0) >= 1 && (view?["rereads"]?.intValue ?? 0) >= 10)
        let latest = view?["last_full_read"]?.stringValue ?? ""
        #expect(!latest.isEmpty && latest >= first)
        await harness.shutdown()
    }
}
