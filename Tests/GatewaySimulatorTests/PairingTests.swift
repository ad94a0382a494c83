import CoAP
import GatewaySimulator
import HubModel
import TestSupport
import Testing
import TradfriModel

@Suite struct SimulatorPairingTests {
    @Test func bootstrapCreatesAnIdentityOnceAndOnlyThat() async throws {
        let harness = try await SimulatorHarness()
        let bootstrap = await harness.client(identity: bootstrapIdentity, key: SimulatorHarness.securityCode)
        try await bootstrap.connect()
        let created = try await bootstrap.post(GatewayPath.authenticate, json: #"{"9090":"bridge-one"}"#)
        #expect(created.code == .created)
        let psk = try #require(created.json["9091"]?.stringValue)
        #expect(psk.count == 16)
        #expect(created.json["9029"]?.stringValue == "1.19.32")

        let again = try await bootstrap.post(GatewayPath.authenticate, json: #"{"9090":"bridge-one"}"#)
        #expect(again.code == .badRequest, "a reused identity gets 4.00")
        #expect(
            try await bootstrap.get(GatewayPath.devices).code == .unauthorized,
            "the bootstrap identity may only create identities")
        #expect(try await bootstrap.post(GatewayPath.authenticate, json: "nonsense").code == .badRequest)
        await bootstrap.close()

        let paired = await harness.client(identity: "bridge-one", key: psk)
        try await paired.connect()
        #expect(try await paired.get(GatewayPath.devices).code == .content)
        await paired.close()
        await harness.shutdown()
    }

    @Test func wrongSecurityCodeFailsTheHandshake() async throws {
        let harness = try await SimulatorHarness()
        let client = await harness.client(identity: bootstrapIdentity, key: "WRONGCODE0000000", timeout: .seconds(3))
        await #expect(throws: CoAPError.self) { try await client.connect() }
        await harness.shutdown()
    }

    @Test func unknownIdentityIsRejectedWithItsAlert() async throws {
        let harness = try await SimulatorHarness()
        let client = await harness.client(identity: "never-created", key: "whatever")
        await #expect(throws: CoAPError.unknownIdentity("never-created")) { try await client.connect() }
        await harness.shutdown()
    }

    @Test func identitiesSurviveARestartWithTheSameStateDirectory() async throws {
        let first = try await SimulatorHarness()
        let bootstrap = await first.client(identity: bootstrapIdentity, key: SimulatorHarness.securityCode)
        try await bootstrap.connect()
        let key = try #require(
            try await bootstrap.post(GatewayPath.authenticate, json: #"{"9090":"keeper"}"#).json["9091"]?.stringValue)
        await bootstrap.close()
        let directory = first.stateDirectory
        await first.simulator.stop()

        let second = try await SimulatorHarness(stateDirectory: directory)
        let client = await second.client(identity: "keeper", key: key)
        try await client.connect()
        #expect(try await client.get(GatewayPath.gatewayDetails).json["9081"]?.stringValue == "7e11515204400072")
        await client.close()
        await second.shutdown()
    }
}
