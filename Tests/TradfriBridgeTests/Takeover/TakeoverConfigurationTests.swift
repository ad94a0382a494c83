import MQTT
import Testing

@testable import TradfriBridge

/// `takeover:` in the configuration file, the coordinator built from it, and the records it reads.
@Suite struct TakeoverConfigurationTests {
    @Test func offByDefaultAndNamedAfterTheClientID() throws {
        let configuration = try BridgeConfiguration.parse("mqtt:\n  client_id: tradfri-attic\n")
        #expect(configuration.takeover == BridgeConfiguration.Takeover())
        #expect(!configuration.takeover.enabled)
        #expect(configuration.takeoverInstanceID == "tradfri-attic")
    }

    @Test func valuesAreRead() throws {
        let configuration = try BridgeConfiguration.parse(
            """
            mqtt:
              base_topic: home/tradfri
            takeover:
              enabled: true
              instance_id: bridge-attic
            """)
        #expect(configuration.takeover.enabled)
        #expect(configuration.takeover.instanceID == "bridge-attic")
        #expect(configuration.takeoverInstanceID == "bridge-attic")
        let empty = try BridgeConfiguration.parse("takeover:\n  enabled: true\n  instance_id:\n")
        #expect(empty.takeover.instanceID == nil)
    }

    @Test(arguments: [
        ("takeover:\n  enabld: true\n", "config:2: takeover.enabld: unknown key (did you mean 'enabled'?)"),
        ("takeover:\n  enabled: maybe\n", "config:2: takeover.enabled: must be true or false"),
        (
            "takeover:\n  instance_id: \"attic/1\"\n",
            "config:2: takeover.instance_id: must be 1…128 characters without '/', '+', '#' or spaces"
        ),
        (
            "takeover:\n  instance_id: \"two words\"\n",
            "takeover.instance_id: must be 1…128 characters without '/', '+', '#' or spaces"
        ),
        (
            "mqtt:\n  client_id: \"bridge/attic\"\ntakeover:\n  enabled: true\n",
            "config: takeover.instance_id: mqtt.client_id 'bridge/attic' cannot name this bridge in topics; set takeover.instance_id"
        ),
    ])
    func badValuesAreRejectedNamingTheKey(text: String, message: String) {
        #expect {
            try BridgeConfiguration.parse(text)
        } throws: { error in
            "\(error)".contains(message)
                || {
                    Issue.record("got: \(error)"); return false
                }()
        }
    }

    /// Two bridges sharing a configuration but for `instance_id` connect with different client
    /// ids (the broker would throw one off); without takeover the client id is the configured one.
    @Test func theBridgeConnectionCarriesTheInstanceID() throws {
        let broker = (host: "broker.lan", port: UInt16(1883), tls: false)
        let shared = "mqtt:\n  client_id: tradfri-shared\n"
        let plain = try BridgeConfiguration.parse(shared)
        #expect(try Bridge.mqttConfiguration(plain, broker: broker).clientID == "tradfri-shared")
        let off = try BridgeConfiguration.parse(shared + "takeover:\n  instance_id: bridge-a\n")
        #expect(try Bridge.mqttConfiguration(off, broker: broker).clientID == "tradfri-shared")
        for instance in ["bridge-a", "bridge-b"] {
            let on = try BridgeConfiguration.parse(shared + "takeover:\n  enabled: true\n  instance_id: \(instance)\n")
            #expect(try Bridge.mqttConfiguration(on, broker: broker).clientID == "tradfri-shared-\(instance)")
        }
        // Named after the client id, the instance needs nothing more.
        let named = try BridgeConfiguration.parse(shared + "takeover:\n  enabled: true\n")
        #expect(try Bridge.mqttConfiguration(named, broker: broker).clientID == "tradfri-shared")
    }

    @Test func takeoverWithPairingIsRefused() {
        #expect {
            try BridgeConfiguration.parse("pairing:\n  enabled: true\ntakeover:\n  enabled: true\n")
        } throws: { error in
            "\(error)".contains("takeover.enabled: cannot be combined with pairing.enabled")
        }
    }

    /// A client id that cannot be a topic level is fine while takeover is off.
    @Test func aSlashInTheClientIDMattersOnlyWithTakeover() throws {
        _ = try BridgeConfiguration.parse("mqtt:\n  client_id: \"bridge/attic\"\n")
    }

    @Test func theCoordinatorHasAConnectionOfItsOwnWithItsOwnWill() throws {
        let configuration = try BridgeConfiguration.parse(
            "mqtt:\n  base_topic: home/tradfri\n  client_id: tradfri-attic\ntakeover:\n  enabled: true\n")
        let bridge = MQTTConfiguration(
            host: "broker.lan", port: 8883, clientID: "tradfri-attic", username: "bridge", password: "secret",
            tls: MQTTTLSConfiguration(caFile: "/etc/ca.pem"), keepAlive: .seconds(60), protocolVersion: .v311,
            will: MQTTMessage(topic: "home/tradfri/bridge/state", text: #"{"state":"offline"}"#, retain: true))
        let ownership = try GatewayOwnership(
            configuration: configuration, mqtt: bridge, gatewayIDs: ["7e1151520440aa01", "7e11515204400072"]
        ) { _ in }
        #expect(ownership.instanceID == "tradfri-attic")
        #expect(ownership.baseTopic == "home/tradfri")
        #expect(ownership.gatewayIDs == ["7e11515204400072", "7e1151520440aa01"])
        let connection = ownership.connection
        #expect(connection.clientID == "tradfri-attic-ownership")
        #expect(connection.host == "broker.lan" && connection.port == 8883)
        #expect(connection.username == "bridge" && connection.password == "secret" && connection.tls != nil)
        #expect(connection.protocolVersion == .v311)
        #expect(connection.keepAlive == .seconds(5))
        // Its will deletes this instance's record, and nothing else: never bridge/state.
        #expect(connection.will?.topic == "home/tradfri/bridge/takeover/instance/tradfri-attic")
        #expect(connection.will?.payload == [] && connection.will?.retain == true)
    }

    @Test func unusableIDsAndSettingsAreRefused() {
        let mqtt = MQTTConfiguration(host: "localhost", clientID: "x")
        #expect(throws: GatewayOwnershipError.self) {
            try GatewayOwnership(mqtt: mqtt, baseTopic: "tradfri", instanceID: "a+b", gatewayIDs: []) { _ in }
        }
        #expect(throws: GatewayOwnershipError.self) {
            try GatewayOwnership(mqtt: mqtt, baseTopic: "tradfri", instanceID: "a", gatewayIDs: ["7e/11"]) { _ in }
        }
        var settings = GatewayOwnership.Settings()
        settings.ownerSilence = .seconds(5)
        #expect(throws: GatewayOwnershipError.self) {
            try GatewayOwnership(mqtt: mqtt, baseTopic: "tradfri", instanceID: "a", gatewayIDs: [], settings: settings)
            {
                _ in
            }
        }
    }

    // MARK: Records

    @Test func recordsAndHeartbeatsAreReadBack() {
        let topics = OwnershipTopics(base: "home/tradfri")
        #expect(topics.parse("home/tradfri/bridge/takeover/gateway/7e11") == .gateway("7e11"))
        #expect(topics.parse("home/tradfri/bridge/takeover/instance/attic") == .instance("attic"))
        #expect(topics.parse("home/tradfri/bridge/takeover/instance/attic/x") == nil)
        #expect(topics.parse("home/tradfri/bridge/state") == nil)

        let record = OwnershipRecord(state: .owned, owner: "attic", token: "00ff", since: "2026-01-01T10:00:00Z")
        let message = record.message(topics, gateway: "7e11")
        #expect(message.topic == "home/tradfri/bridge/takeover/gateway/7e11")
        #expect(message.retain && message.qos == .atMostOnce)
        #expect(message.text == #"{"owner":"attic","since":"2026-01-01T10:00:00Z","state":"owned","token":"00ff"}"#)
        #expect(GatewayMessage(payload: message.payload) == .record(record))

        let heartbeat = OwnershipHeartbeat(sequence: 7, owner: "attic", token: "00ff").message(topics, gateway: "7e11")
        #expect(!heartbeat.retain)
        #expect(
            GatewayMessage(payload: heartbeat.payload) == .heartbeat(.init(sequence: 7, owner: "attic", token: "00ff")))
        #expect(GatewayMessage(payload: []) == .deleted)
        #expect(GatewayMessage(payload: Array("ON".utf8)) == .unreadable)
        #expect(GatewayMessage(payload: Array(#"{"owner":"a","token":"t","state":"mine"}"#.utf8)) == .unreadable)

        let instance = InstanceRecord(
            instance: "attic", session: "s1", since: "2026-01-01T10:00:00Z", gateways: ["7e11"])
        #expect(InstanceRecord(payload: instance.message(topics).payload) == instance)
        #expect(InstanceRecord(payload: []) == nil)
    }
}
