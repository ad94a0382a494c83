import Foundation
import HubModel
import TestSupport
import Testing
import TradfriModel

/// "It never drops a light": the bridge recovers by itself from gateway reboots, a gateway that
/// dies and comes back, and broker restarts; MQTT ends equal to the gateway.
@Suite(.serialized) struct RecoveryTests {
    @Test func aGatewayRebootIsSurvivedAndChangesFlowAgain() async throws {
        let harness = try await BridgeHarness()
        try await harness.startBridge()
        let watcher = try await harness.subscribe(["tradfri/#"])
        try await message(on: "tradfri/bridge/state", from: watcher)

        harness.simulator.signal(SIGUSR1)
        try await message(on: "tradfri/bridge/event", from: watcher) { $0["type"] == "gateway_offline" }
        try await message(on: "tradfri/hallway/availability", from: watcher) { $0["state"] == "offline" }
        try await message(on: "tradfri/bridge/event", from: watcher, within: .seconds(20)) {
            $0["type"] == "gateway_online"
        }
        try await message(on: "tradfri/hallway/availability", from: watcher, within: .seconds(10)) {
            $0["state"] == "online"
        }

        // Notifications flow again: the observations were registered anew.
        _ = try await harness.coap("put", "15001/65543", #"{"3312":[{"5850":1}]}"#)
        try await message(on: "tradfri/coffee_maker", from: watcher) { $0["state"] == "ON" }
        // And commands work.
        try await harness.publish("tradfri/hallway/set", "ON")
        try await message(on: "tradfri/hallway", from: watcher) { $0["state"] == "ON" }
        await harness.shutdown()
    }

    @Test func aGatewayThatDiesAndComesBackIsFollowedAndMQTTEndsEqualToIt() async throws {
        let harness = try await BridgeHarness()
        try await harness.startBridge()
        let watcher = try await harness.subscribe(["tradfri/#"])
        // Change a light; the simulator forgets it when killed (it restarts from its fixture).
        try await harness.publish("tradfri/hallway/set", #"{"state":"ON","brightness":77}"#)
        try await message(on: "tradfri/hallway", from: watcher) { $0["brightness"] == 77 }

        let restart = watcher.lineCount
        try await harness.restartSimulator()
        try await message(on: "tradfri/bridge/event", from: watcher, within: .seconds(20)) {
            $0["type"] == "gateway_offline"
        }
        try await message(on: "tradfri/bridge/event", from: watcher, within: .seconds(20)) {
            $0["type"] == "gateway_online"
        }
        // The gateway says the hallway light is off again; MQTT must say so too.
        #expect(try await harness.device(65537).light?.on == false)
        try await message(on: "tradfri/hallway", from: watcher, after: restart) { $0["state"] == "OFF" }
        _ = try await harness.coap("put", "15001/65543", #"{"3312":[{"5850":1}]}"#)
        try await message(on: "tradfri/coffee_maker", from: watcher) { $0["state"] == "ON" }
        await harness.shutdown()
    }

    /// A gateway that shuts down cleanly tells its observers "4.04" as it goes; that must not
    /// make the bridge forget the home (and Home Assistant delete every entity).
    @Test func aGatewayThatShutsDownCleanlyKeepsEveryDevice() async throws {
        let harness = try await BridgeHarness()
        try await harness.startBridge()
        let watcher = try await harness.subscribe(["tradfri/bridge/event", "tradfri/bridge/devices"])
        let inventory = try await message(on: "tradfri/bridge/devices", from: watcher)
        let mark = watcher.lineCount

        try await harness.restartSimulator(signal: SIGTERM)
        try await message(on: "tradfri/bridge/event", from: watcher, within: .seconds(20), after: mark) {
            $0["type"] == "gateway_online"
        }
        // The gateway is back with the same home; the next change proves the bridge saw a whole sync.
        _ = try await harness.coap("put", "15001/65543", #"{"3312":[{"5850":1}]}"#)
        let state = try await harness.subscribe(["tradfri/coffee_maker"])
        try await message(on: "tradfri/coffee_maker", from: state) { $0["state"] == "ON" }
        let removals = watcher.output.dropFirst(mark).filter { $0.contains("_removed") }
        #expect(removals.isEmpty, "\(removals)")
        let devices = try await message(
            on: "tradfri/bridge/devices", from: try await harness.subscribe(["tradfri/bridge/devices"]))
        #expect(devices.arrayValue?.count == inventory.arrayValue?.count)
        await harness.shutdown()
    }

    /// An observation that ends with 4.04 while the device is still listed is renewed: the
    /// device stays, and its changes keep flowing.
    @Test func aDeviceStillListedAfterA404IsObservedAgain() async throws {
        let harness = try await BridgeHarness()
        try await harness.startBridge()
        let watcher = try await harness.subscribe(["tradfri/bridge/event", "tradfri/coffee_maker"])
        try await message(on: "tradfri/coffee_maker", from: watcher) { $0["state"] == "OFF" }
        let mark = watcher.lineCount
        try await harness.control("end-observations 65543")
        try await harness.bridge?.waitForLine(containing: "the item is still listed; observing it again")
        _ = try await harness.coap("put", "15001/65543", #"{"3312":[{"5850":1}]}"#)
        try await message(on: "tradfri/coffee_maker", from: watcher, after: mark) { $0["state"] == "ON" }
        let removals = watcher.output.dropFirst(mark).filter { $0.contains("_removed") }
        #expect(removals.isEmpty, "\(removals)")
        await harness.shutdown()
    }

    @Test func commandsWhileTheGatewayIsAwayGetAClearError() async throws {
        let harness = try await BridgeHarness()
        try await harness.startBridge()
        let watcher = try await harness.subscribe(["tradfri/bridge/event"])
        harness.simulator.signal(SIGKILL)
        try await message(on: "tradfri/bridge/event", from: watcher, within: .seconds(15)) {
            $0["type"] == "gateway_offline"
        }
        try await harness.publish("tradfri/hallway/set", "ON")
        #expect(try await commandError(for: "tradfri/hallway/set", from: watcher) == "the gateway is offline")
        await harness.shutdown()
    }

    @Test func aBrokerRestartBringsBackRetainedStateAndCommands() async throws {
        let harness = try await BridgeHarness()
        try await harness.startBridge()
        // The broker has no persistence: after a restart only the bridge can restore the state.
        await harness.broker.stop()
        try await harness.broker.start()
        let late = try await harness.subscribe(["tradfri/#"])
        try await message(on: "tradfri/bridge/state", from: late, within: .seconds(20)) { $0["state"] == "online" }
        try await message(on: "tradfri/living_room_ceiling", from: late, within: .seconds(10)) {
            $0["brightness"] == 200
        }
        try await message(on: "tradfri/living_room_ceiling/availability", from: late) { $0["state"] == "online" }
        try await message(on: "tradfri/bridge/devices", from: late)
        try await harness.publish("tradfri/coffee_maker/set", "ON")
        try await message(on: "tradfri/coffee_maker", from: late) { $0["state"] == "ON" }
        await harness.shutdown()
    }

    @Test func sigtermPublishesOfflineClosesTheSessionAndExitsZero() async throws {
        let harness = try await BridgeHarness()
        try await harness.startBridge()
        let watcher = try await harness.subscribe(["tradfri/bridge/state"])
        try await message(on: "tradfri/bridge/state", from: watcher) { $0["state"] == "online" }
        let status = await harness.stopBridge()
        #expect(status == 0)
        try await message(on: "tradfri/bridge/state", from: watcher) { $0["state"] == "offline" }
        // Retained, so later subscribers see it too.
        let late = try await harness.subscribe(["tradfri/bridge/state"])
        try await message(on: "tradfri/bridge/state", from: late) { $0["state"] == "offline" }
        await harness.shutdown()
    }

    @Test func aBridgeKilledOutrightLeavesItsWillOfOffline() async throws {
        let harness = try await BridgeHarness()
        try await harness.startBridge()
        let watcher = try await harness.subscribe(["tradfri/bridge/state"])
        try await message(on: "tradfri/bridge/state", from: watcher) { $0["state"] == "online" }
        harness.bridge?.signal(SIGKILL)
        // The broker notices after keep-alive × 1.5 at the latest; it then publishes the will.
        try await message(on: "tradfri/bridge/state", from: watcher, within: .seconds(100)) { $0["state"] == "offline" }
        await harness.shutdown()
    }
}
