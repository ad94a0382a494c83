import Foundation
import HubModel
import TestSupport
import Testing
import TradfriModel

/// Gateway → MQTT through the real parts: simulator, bridge binary, mosquitto, mosquitto_sub.
@Suite(.serialized) struct GatewayToMQTTTests {
    @Test func everyDeviceTypeOfTheDemoHomeAppearsRetainedWithCorrectJSON() async throws {
        let harness = try await BridgeHarness()
        try await harness.startBridge()
        // A subscriber arriving later gets everything from the retained messages alone.
        let late = try await harness.subscribe(["tradfri/#"])
        let ceiling = try await message(on: "tradfri/living_room_ceiling", from: late)
        #expect(ceiling["state"] == "ON" && ceiling["brightness"] == 200)
        #expect(
            ceiling["color_mode"] == "color_temp" && ceiling["color_temp"] == 370
                && ceiling["color_temp_kelvin"] == 2703)
        let hallway = try await message(on: "tradfri/hallway", from: late)
        #expect(hallway["state"] == "OFF" && hallway["color_temp"] == nil)
        let reading = try await message(on: "tradfri/reading_lamp", from: late)
        #expect(reading["color_mode"] == "xy" && reading["color"]?["x"] != nil && reading["color"]?["hue"] != nil)
        let plug = try await message(on: "tradfri/coffee_maker", from: late)
        #expect(plug["state"] == "OFF")
        let blind = try await message(on: "tradfri/bedroom_blind", from: late)
        #expect(
            blind["position"] == 0 && blind["state"] == "CLOSE" && blind["battery"] == 77,
            "gateway 100 (closed) is position 0")
        let remote = try await message(on: "tradfri/living_room_remote", from: late)
        #expect(remote["battery"] == 87)
        let sensor = try await message(on: "tradfri/hallway_motion", from: late)
        #expect(sensor["battery"] == 60)
        let repeater = try await message(on: "tradfri/repeater", from: late)
        #expect(repeater["last_seen"] != nil)
        let purifier = try await message(on: "tradfri/air_purifier", from: late)
        #expect(purifier["fan_mode"] == "auto" && purifier["pm25"] == 12 && purifier["filter_remaining"] == 257200)
        let room = try await message(on: "tradfri/living_room", from: late)
        #expect(room["state"] == "ON" && room["brightness"] == 200, "group state derived from its lit members")
        #expect(try await message(on: "tradfri/spot_a1/availability", from: late) == ["state": "online"])
        #expect(try await message(on: "tradfri/bridge/state", from: late) == ["state": "online"])
        let devices = try await message(on: "tradfri/bridge/devices", from: late)
        #expect(devices.arrayValue?.count == 10)
        let groups = try await message(on: "tradfri/bridge/groups", from: late)
        #expect(groups.arrayValue?.first?["scenes"]?.arrayValue?.count == 3)
        let info = try await message(on: "tradfri/bridge/info", from: late) { $0["devices"] == 10 }
        #expect(info["gateway"]?["id"] == "7e11515204400072")
        #expect(!late.outputText.contains(BridgeHarness.securityCode), "no secret is ever published")
        let psk =
            try JSON(parsing: try String(contentsOfFile: harness.credentials, encoding: .utf8))["psk"]?.stringValue
            ?? "?"
        #expect(!late.outputText.contains(psk))
        await harness.shutdown()
    }

    @Test func aChangeByAnotherClientReachesMQTTWithinASecond() async throws {
        let harness = try await BridgeHarness()
        try await harness.startBridge()
        let watcher = try await harness.subscribe(["tradfri/coffee_maker"])
        try await message(on: "tradfri/coffee_maker", from: watcher) { $0["state"] == "OFF" }
        // The IKEA app (another identity) switches the plug on.
        _ = try await harness.coap("put", "15001/65543", #"{"3312":[{"5850":1}]}"#)
        let started = ContinuousClock.now
        try await message(on: "tradfri/coffee_maker", from: watcher, within: .seconds(5)) { $0["state"] == "ON" }
        let elapsed = ContinuousClock.now - started
        #expect(elapsed < .seconds(1), "took \(elapsed)")
        await harness.shutdown()
    }

    @Test func identicalNotificationsPublishNothing() async throws {
        let harness = try await BridgeHarness()
        try await harness.startBridge()
        let watcher = try await harness.subscribe(["tradfri/coffee_maker"])
        try await message(on: "tradfri/coffee_maker", from: watcher)
        // A PUT that changes nothing still makes the gateway notify (the simulator notifies on
        // every change command); then a real change follows.
        try await harness.control(#"change 65543 {"3312":[{"5850":0}]}"#)
        try await harness.control(#"change 65543 {"3312":[{"5850":0}]}"#)
        try await harness.control(#"change 65543 {"3312":[{"5850":1}]}"#)
        try await message(on: "tradfri/coffee_maker", from: watcher) { $0["state"] == "ON" }
        let states = watcher.output.filter { $0.hasPrefix("tradfri/coffee_maker {") }
        #expect(states.count == 2, "the retained OFF, then ON; nothing for the duplicates: \(states)")
        await harness.shutdown()
    }

    @Test func groupStateFollowsItsMembers() async throws {
        let harness = try await BridgeHarness()
        try await harness.startBridge()
        let watcher = try await harness.subscribe(["tradfri/living_room"])
        try await message(on: "tradfri/living_room", from: watcher) { $0["state"] == "ON" }
        // Switching the room from the app notifies only the lights; the bridge derives the room.
        _ = try await harness.coap("put", "15004/131073", #"{"5850":0}"#)
        try await message(on: "tradfri/living_room", from: watcher) { $0["state"] == "OFF" }
        await harness.shutdown()
    }

    @Test func devicesAndGroupsAddedRenamedAndRemovedAreFollowed() async throws {
        let harness = try await BridgeHarness()
        try await harness.startBridge()
        let watcher = try await harness.subscribe(["tradfri/#"])
        try await message(on: "tradfri/bridge/state", from: watcher)

        try await harness.control(
            #"add-device {"3":{"0":"IKEA of Sweden","1":"TRADFRI control outlet"},"3312":[{"5850":1,"9003":0}],"5750":3,"9001":"Fan plug","9003":65600,"9019":1}"#
        )
        let added = try await message(on: "tradfri/bridge/event", from: watcher) { $0["type"] == "device_added" }
        #expect(added["data"]?["friendly_name"] == "fan_plug")
        try await message(on: "tradfri/fan_plug", from: watcher) { $0["state"] == "ON" }

        _ = try await harness.coap("put", "15001/65600", #"{"9001":"Desk fan"}"#)
        let renamed = try await message(on: "tradfri/bridge/event", from: watcher) { $0["type"] == "device_renamed" }
        #expect(renamed["data"]?["to"] == "Desk fan" && renamed["data"]?["friendly_name"] == "desk_fan")
        try await message(on: "tradfri/desk_fan", from: watcher) { $0["state"] == "ON" }
        // The old retained topic is cleared (an empty retained message).
        try await watcher.waitForLine(within: .seconds(5), "the old topic cleared") { $0 == "tradfri/fan_plug (null)" }

        try await harness.control("remove-device 65600")
        try await message(on: "tradfri/bridge/event", from: watcher) {
            $0["type"] == "device_removed" && $0["data"]?["id"] == 65600
        }
        try await watcher.waitForLine(within: .seconds(5), "the removed topic cleared") {
            $0 == "tradfri/desk_fan (null)"
        }

        try await harness.control(
            #"add-group {"5850":0,"9001":"Office","9003":131080,"9018":{"15002":{"9003":[65537]}}}"#)
        try await message(on: "tradfri/bridge/event", from: watcher) { $0["type"] == "group_added" }
        try await message(on: "tradfri/office", from: watcher)
        await harness.shutdown()
    }

    /// The device and group lists are published once the first sync is complete, never half
    /// filled while the bridge is still finding things: the first list a consumer sees is the
    /// whole home.
    @Test func theFirstDeviceAndGroupListsAreComplete() async throws {
        let harness = try await BridgeHarness()
        let early = try await harness.subscribe(["tradfri/bridge/devices", "tradfri/bridge/groups"])
        try await harness.startBridge()
        let devices = try await message(on: "tradfri/bridge/devices", from: early)
        #expect(devices.arrayValue?.count == 10)
        let groups = try await message(on: "tradfri/bridge/groups", from: early)
        #expect(groups.arrayValue?.count == 3)
        #expect(groups.arrayValue?.reduce(0) { $0 + ($1["scenes"]?.arrayValue?.count ?? 0) } == 4)
        await harness.shutdown()
    }

    /// A device renamed to a room's name takes the room's topic; the room moves to
    /// `<name>_group`, and `bridge/groups` says so (it kept the old topic before: two entries
    /// claimed one topic).
    @Test func aRoomPushedAsideByADeviceNameIsListedAtItsNewTopic() async throws {
        let harness = try await BridgeHarness()
        try await harness.startBridge()
        let watcher = try await harness.subscribe(["tradfri/bridge/groups", "tradfri/bridge/devices"])
        try await message(on: "tradfri/bridge/groups", from: watcher) { groups in
            groups.arrayValue?.contains { $0["id"] == 131075 && $0["topic"] == "tradfri/bedroom" } == true
        }
        _ = try await harness.coap("put", "15001/65543", #"{"9001":"Bedroom"}"#)
        try await message(on: "tradfri/bridge/devices", from: watcher) { devices in
            devices.arrayValue?.contains { $0["id"] == 65543 && $0["topic"] == "tradfri/bedroom" } == true
        }
        let groups = try await message(on: "tradfri/bridge/groups", from: watcher) { groups in
            groups.arrayValue?.contains { $0["id"] == 131075 && $0["topic"] == "tradfri/bedroom_group" } == true
        }
        let bedroom = groups.arrayValue?.first { $0["id"] == 131075 }
        #expect(bedroom?["friendly_name"] == "bedroom_group")
        #expect(
            bedroom?["members"]?.arrayValue?.contains { $0["id"] == 65543 && $0["friendly_name"] == "bedroom" } == true)
        // The same for a new device paired with a room's name.
        try await harness.control(
            #"add-device {"3":{"0":"IKEA of Sweden","1":"TRADFRI control outlet","6":1},"3312":[{"5850":0,"9003":0}],"5750":3,"9001":"Living room","9003":65610,"9019":1}"#
        )
        try await message(on: "tradfri/bridge/groups", from: watcher) { groups in
            groups.arrayValue?.contains { $0["id"] == 131073 && $0["topic"] == "tradfri/living_room_group" } == true
        }
        await harness.shutdown()
    }
}
