import Foundation
import HubModel
import TestSupport
import Testing

/// A gateway that forgets the bridge's identity (a reset, or a firmware update that lost it:
/// the simulator's `forget-identity`): the real bridge says so once, on `bridge/event`, in
/// `bridge/info`, in its log and in `systemctl status`, with the command to run; it does not
/// hammer the gateway meanwhile; and when that command has been run, it is back by itself.
@Suite(.serialized) struct PairingNeededTests {
    @Test func aForgottenIdentityIsReportedOnceWithTheCommandAndHealsWhenPairedAgain() async throws {
        let harness = try await BridgeHarness()
        let systemd = try FakeSystemd()
        let bridge = try harness.launchBridge(
            configuration: harness.testConfiguration(), environment: systemd.environment(watchdog: .seconds(2)))
        try await systemd.wait(for: "READY", "1", within: .seconds(20))
        let watcher = try await harness.subscribe(["tradfri/bridge/event", "tradfri/bridge/info", "tradfri/hallway"])
        try await message(on: "tradfri/bridge/info", from: watcher) { $0["gateway"]?["state"] == "online" }
        let bridgeMark = bridge.lineCount
        let simulatorMark = harness.simulator.lineCount

        try await harness.control("forget-identity all")
        let event = try await message(on: "tradfri/bridge/event", from: watcher, within: .seconds(20)) {
            $0["type"] == "pairing_needed"
        }
        let command = try #require(event["data"]?["command"]?.stringValue)
        print("pairing_needed: \(event)")
        #expect(
            command
                == "tradfri-bridge auth --gateway \(harness.gateway) --security-code <the code on its label> --credentials \(harness.credentials)"
        )
        #expect(event["data"]?["gateway"] == "gateway")
        let info = try await message(on: "tradfri/bridge/info", from: watcher) {
            $0["gateway"]?["state"] == "pairing_needed"
        }
        #expect(info["gateway"]?["pairing_command"]?.stringValue == command)
        #expect(info["gateway"]?["connected"] == false)
        try await message(
            on: "tradfri/hallway/availability", from: try await harness.subscribe(["tradfri/+/availability"])
        ) {
            $0["state"] == "offline"
        }
        try await systemd.wait(within: .seconds(5), "the status saying what to do") {
            $0.value("STATUS")?.hasPrefix("0 of 1 gateway connected (gateway needs pairing: tradfri-bridge auth)")
                == true
        }

        // No retry storm: over a dozen seconds (24 watchdog rounds), where the normal backoff
        // (reconnect_max_delay 2 s) would have asked the gateway six times or more, it asks it
        // once; one log line and one event say what to do.
        let quiet = systemd.count
        try await systemd.waitForPings(24, from: quiet, within: .seconds(30))
        // Each at least once (each process's output is read by a thread of its own), then counted.
        try await harness.simulator.waitForLine(within: .seconds(5), "the refusal", after: simulatorMark) {
            $0.contains("refused an unknown identity")
        }
        try await bridge.waitForLine(within: .seconds(5), "the log line saying what to do", after: bridgeMark) {
            $0.contains("no longer knows")
        }
        let refusals = harness.simulator.output.dropFirst(simulatorMark).filter {
            $0.contains("refused an unknown identity")
        }
        #expect(refusals.count == 1, "\(refusals)")
        let said = bridge.output.dropFirst(bridgeMark).filter { $0.contains("no longer knows") }
        #expect(said.count == 1, "\(said)")
        #expect(said.first?.contains(command) == true, "the log line names the command: \(said)")
        #expect(!bridge.output.dropFirst(bridgeMark).contains { $0.contains("cannot connect to the gateway") })
        let events = watcher.output.filter { $0.hasPrefix("tradfri/bridge/event ") && $0.contains("pairing_needed") }
        #expect(events.count == 1)

        // Someone runs the command (with the code on the label): the running bridge picks up the
        // new credentials and is back, without a restart.
        let words = command.replacingOccurrences(of: "<the code on its label>", with: BridgeHarness.securityCode)
            .split(separator: " ").map(String.init)
        #expect(words.first == "tradfri-bridge")
        let paired = try await runCommand("tradfri-bridge", Array(words.dropFirst()))
        #expect(paired.status == 0, "\(paired.output)")
        try await message(on: "tradfri/bridge/event", from: watcher, within: .seconds(15)) {
            $0["type"] == "gateway_online"
        }
        try await message(on: "tradfri/bridge/info", from: watcher) {
            $0["gateway"]?["state"] == "online" && $0["gateway"]?["pairing_command"] == nil
        }
        try await systemd.wait(within: .seconds(5), "the status back to normal", from: quiet) {
            $0.value("STATUS")?.hasPrefix("1 of 1 gateway connected; 10 devices") == true
        }
        try await bridge.waitForLine(within: .seconds(5), "the recovery in the log") {
            $0.contains("accepts the bridge's identity again")
        }
        // And it works: a command reaches the gateway.
        try await harness.publish("tradfri/hallway/set", #"{"state":"ON","brightness":33}"#)
        try await message(on: "tradfri/hallway", from: watcher, within: .seconds(10)) { $0["brightness"] == 33 }
        #expect(try await harness.device(65537).light?.brightness == 33)
        systemd.close()
        await harness.shutdown()
    }
}
