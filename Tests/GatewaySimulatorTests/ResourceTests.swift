import CoAP
import Foundation
import GatewaySimulator
import HubModel
import TestSupport
import Testing
import TradfriModel

@Suite struct SimulatorResourceTests {
    @Test func demoHomeHasOneDeviceOfEveryType() throws {
        let fixture = Fixture.demoHome()
        let kinds = Set(try fixture.devices.values.map { try Device(json: $0).kind })
        #expect(kinds.isSuperset(of: [.remote, .light, .plug, .motionSensor, .repeater, .blind, .airPurifier]))
        let spectrums = Set(try fixture.devices.values.compactMap { try Device(json: $0).light?.spectrum })
        #expect(spectrums == [.white, .whiteSpectrum, .color])
        #expect(fixture.groups.count >= 3)
        #expect(fixture.scenes.values.map(\.count).reduce(0, +) >= 3)
    }

    @Test func listsAndResourcesAreServedInTheGatewaysFormat() async throws {
        let harness = try await SimulatorHarness()
        let client = try await harness.pairedClient()
        let ids = try IDList.parse(try await client.get(GatewayPath.devices).payload, what: "device")
        #expect(ids.contains(65538) && ids.count == 10)
        for id in ids {
            let device = try Device(payload: try await client.get(GatewayPath.device(id)).payload)
            #expect(device.id == id)
        }
        let groups = try IDList.parse(try await client.get(GatewayPath.groups).payload, what: "group")
        #expect(groups == [131073, 131074, 131075])
        let living = try Group(payload: try await client.get(GatewayPath.group(131073)).payload)
        #expect(living.memberIDs.contains(65538))
        let sceneIDs = try IDList.parse(
            try await client.get(GatewayPath.scenes(ofGroup: 131073)).payload, what: "scene")
        #expect(sceneIDs.count == 3)
        let relax = try Scene(payload: try await client.get(GatewayPath.scene(196609, ofGroup: 131073)).payload)
        #expect(relax.name == "RELAX")
        let details = try GatewayDetails(payload: try await client.get(GatewayPath.gatewayDetails).payload)
        #expect(details.id == "7e11515204400072")
        #expect(abs((details.time ?? 0) - Int(Date.now.timeIntervalSince1970)) < 5)
        #expect(try await client.get("15001/99999").code == .notFound)
        let core = try await client.get(GatewayPath.wellKnownCore)
        #expect(core.text.contains("</15001/65538>;obs"))
        await client.close()
        await harness.shutdown()
    }

    @Test func putMergesIntoTheDeviceAndClampsLikeTheGateway() async throws {
        let harness = try await SimulatorHarness()
        let client = try await harness.pairedClient()
        // White spectrum: brightness and temperature clamped, colour derived from the temperature.
        #expect(try await client.put("15001/65538", json: #"{"3311":[{"5851":999,"5711":100}]}"#).code == .changed)
        var light = try Device(payload: try await client.get("15001/65538").payload).light!
        #expect(light.brightness == 254)
        #expect(light.colorTemperature == 250)
        #expect(light.colorHex == "f5faf6")
        #expect(light.on, "untouched keys are kept")
        // Colour bulbs ignore colour temperature; hue without saturation takes saturation as 0.
        _ = try await client.put("15001/65539", json: #"{"3311":[{"5711":300}]}"#)
        light = try Device(payload: try await client.get("15001/65539").payload).light!
        #expect(light.colorTemperature == nil)
        _ = try await client.put("15001/65539", json: #"{"3311":[{"5707":20000}]}"#)
        light = try Device(payload: try await client.get("15001/65539").payload).light!
        #expect(light.hue == 20000 && light.saturation == 0)
        // Brightness 0 switches off.
        _ = try await client.put("15001/65539", json: #"{"3311":[{"5851":0}]}"#)
        #expect(try Device(payload: try await client.get("15001/65539").payload).light?.on == false)
        // Rename through 9001.
        _ = try await client.put("15001/65543", json: #"{"9001":"Kettle"}"#)
        #expect(try Device(payload: try await client.get("15001/65543").payload).name == "Kettle")
        // Malformed bodies are refused.
        #expect(try await client.put("15001/65543", json: "{not json").code == .badRequest)
        #expect(try await client.put("15001/65543", json: #"{"3312":{"5850":1}}"#).code == .badRequest)
        await client.close()
        await harness.shutdown()
    }

    @Test func aTransitionWithBrightnessAndColourOnlyChangesTheColour() async throws {
        let harness = try await SimulatorHarness()
        let client = try await harness.pairedClient()
        _ = try await client.put("15001/65538", json: #"{"3311":[{"5851":100,"5711":454,"5712":10}]}"#)
        let light = try Device(payload: try await client.get("15001/65538").payload).light!
        #expect(light.colorTemperature == 454)
        #expect(light.brightness == 200, "IKEA bulbs ignore the brightness of such a PUT (pytradfri#270)")
        await client.close()
        await harness.shutdown()
    }

    @Test func everyChangeNotifiesObserversWithTheFullRepresentation() async throws {
        let harness = try await SimulatorHarness()
        let observer = try await harness.pairedClient()
        let other = try await harness.pairedClient()
        let observation = try await observer.observe("15001/65543")
        #expect(observation.initial.json["3312"]?[0]?["5850"] == 0)
        _ = try await other.put("15001/65543", json: #"{"3312":[{"5850":1}]}"#)
        let notification = try await nextNotification(observation)
        #expect(notification["3312"]?[0]?["5850"] == 1)
        #expect(notification["9001"] == "Coffee maker", "the full device, not a delta")
        await observer.close()
        await other.close()
        await harness.shutdown()
    }

    @Test func groupPutReachesMembersButTheGroupDoesNotNotify() async throws {
        let harness = try await SimulatorHarness()
        let client = try await harness.pairedClient()
        let groupObservation = try await client.observe("15004/131073")
        let ceiling = try await client.observe("15001/65538")
        let spot = try await client.observe("15001/65550")
        _ = try await client.put("15004/131073", json: #"{"5850":0}"#)
        #expect(try await nextNotification(ceiling)["3311"]?[0]?["5850"] == 0)
        #expect(try await nextNotification(spot)["3311"]?[0]?["5850"] == 0)
        // A rename is the group change that does notify; it must be the first notification.
        _ = try await client.put("15004/131073", json: #"{"9001":"Lounge"}"#)
        #expect(try await nextNotification(groupObservation)["9001"] == "Lounge")
        await client.close()
        await harness.shutdown()
    }

    @Test func activatingASceneAppliesItsLightSettings() async throws {
        let harness = try await SimulatorHarness()
        let client = try await harness.pairedClient()
        let ceiling = try await client.observe("15001/65538")
        // Without 5850:1 the gateway does not activate the scene.
        _ = try await client.put("15004/131073", json: #"{"9039":196611}"#)
        _ = try await client.put("15004/131073", json: #"{"5850":1,"9039":196611}"#)
        let light = try await nextNotification(ceiling)
        #expect(light["3311"]?[0]?["5711"] == 250)
        #expect(light["3311"]?[0]?["5851"] == 254)
        #expect(try await client.get("15004/131073").json["9039"] == 196611)
        await client.close()
        await harness.shutdown()
    }

    @Test func blindsMoveTowardTheirTargetNotifyingOnTheWay() async throws {
        let harness = try await SimulatorHarness()
        let client = try await harness.pairedClient()
        let blind = try await client.observe("15001/65546")
        #expect(blind.initial.json["15015"]?[0]?["5536"]?.doubleValue == 100)
        _ = try await client.put("15001/65546", json: #"{"15015":[{"5536":0}]}"#)
        let positions = try await withDeadline(.seconds(10), "the blind to open") {
            var seen: [Double] = []
            for try await notification in blind.notifications {
                guard let position = notification.json["15015"]?[0]?["5536"]?.doubleValue else { continue }
                seen.append(position)
                if position == 0 { return seen }
            }
            return seen
        }
        #expect(positions.count > 2, "intermediate positions are reported while moving: \(positions)")
        #expect(positions == positions.sorted(by: >))
        await client.close()
        await harness.shutdown()
    }

    @Test func largeRepresentationsArriveBlockwise() async throws {
        var fixture = Fixture.demoHome()
        fixture.addGenerated(lights: 60, groups: 1)
        let harness = try await SimulatorHarness(fixture: fixture)
        let client = try await harness.pairedClient()
        let group = fixture.groups.keys.max()!
        let sceneID = fixture.scenes[group]!.keys.min()!
        let response = try await client.get(GatewayPath.scene(sceneID, ofGroup: group))
        #expect(response.payload.count > 1024)
        #expect(try Scene(payload: response.payload).lightSettings.count == 60)
        await client.close()
        await harness.shutdown()
    }

    @Test func controlCommandsAddAndRemoveDevices() async throws {
        let harness = try await SimulatorHarness()
        let client = try await harness.pairedClient()
        let list = try await client.observe(GatewayPath.devices)
        let plug = try await client.observe("15001/65543")
        let answer = await harness.simulator.execute(
            #"add-device {"3":{"0":"IKEA of Sweden","1":"TRADFRI control outlet"},"3312":[{"5850":0,"9003":0}],"5750":3,"9001":"New plug","9003":65600}"#
        )
        #expect(answer == "ok add-device")
        #expect(try await nextNotification(list).arrayValue?.contains(65600) == true)
        #expect(await harness.simulator.execute("remove-device 65543") == "ok remove-device")
        let ended = try await withDeadline(.seconds(5), "the end of the plug's observation") {
            var codes: [CoAPCode] = []
            for try await notification in plug.notifications { codes.append(notification.code) }
            return codes
        }
        #expect(ended.last == .notFound)
        #expect(await harness.simulator.execute("frobnicate") == "error: unknown command 'frobnicate'")
        await client.close()
        await harness.shutdown()
    }

    @Test func invalidFixturesAreRejectedWithTheReason() {
        #expect(throws: Fixture.Error.self) { try Fixture(text: "{}") }
        #expect {
            try Fixture(
                text:
                    #"{"gateway":{"9081":"0011223344556677"},"groups":[{"9003":131073,"9018":{"15002":{"9003":[1]}}}]}"#
            )
        } throws: { "\($0)".contains("member") }
    }
}
