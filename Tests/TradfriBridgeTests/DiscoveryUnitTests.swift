import Testing

@testable import TradfriBridge

@Suite struct DiscoveryUnitTests {
    @Test func routableAddressesComeFirst() {
        #expect(GatewayLocator.preferredAddress(["169.254.3.4", "192.168.1.20"]) == "192.168.1.20")
        #expect(GatewayLocator.preferredAddress(["fe80::1%2", "169.254.3.4"]) == "169.254.3.4")
        #expect(GatewayLocator.preferredAddress(["127.0.0.1", "2001:db8::5", "169.254.1.1"]) == "2001:db8::5")
        #expect(GatewayLocator.preferredAddress([]) == nil)
    }

    @Test func aConfiguredBrokerIsUsedAsIs() async {
        var configuration = BridgeConfiguration()
        configuration.mqtt.server = .url(tls: true, host: "broker.lan", port: 8883)
        let choice = await BrokerLocator.choose(configuration, mdns: MDNSConnection(enabled: false))
        #expect(choice == .init(host: "broker.lan", port: 8883, tls: true, reason: "configured (mqtt.server)"))
    }

    @Test func withoutMDNSAutoFallsBackToThisHost() async {
        let choice = await BrokerLocator.choose(BridgeConfiguration(), mdns: MDNSConnection(enabled: false))
        #expect(choice.host == "localhost" && choice.port == 1883)
    }

    @Test func theBridgeAdvertisesItsTopicAndVersion() {
        var configuration = BridgeConfiguration()
        configuration.discovery.advertiseBroker = true
        let broker = BrokerLocator.Choice(host: "localhost", port: 1883, tls: false, reason: "")
        let ads = Advertiser.advertisements(for: configuration, gatewayIDs: ["7e11"], broker: broker)
        #expect(ads.map(\.type) == ["_tradfri-bridge._tcp", "_mqtt._tcp"])
        #expect(ads[0].txt["base_topic"] == "tradfri" && ads[0].txt["version"] == BridgeVersion.current)
        #expect(ads[0].txt["gateway"] == "7e11")
        let remote = BrokerLocator.Choice(host: "10.0.0.9", port: 1883, tls: false, reason: "")
        #expect(
            Advertiser.advertisements(for: configuration, gatewayIDs: ["7e11"], broker: remote).count == 1,
            "a broker on another host is not advertised as ours")
        configuration.discovery.advertise = false
        #expect(Advertiser.advertisements(for: configuration, gatewayIDs: ["7e11"], broker: broker).isEmpty)
    }
}
