import Logging
import MDNS

/// Which broker to use. A configured URL is the answer. With `mqtt.server: auto`, emonpi-style:
/// a broker advertised on the LAN (`_mqtt._tcp`, or `_secure-mqtt._tcp` when a CA is
/// configured), then the configured base-station names (e.g. `emonpi.local`) resolved through
/// avahi, then this host. The log says which broker was chosen and why.
public enum BrokerLocator {
    public struct Choice: Sendable, Equatable {
        public var host: String
        public var port: UInt16
        public var tls: Bool
        public var reason: String
    }

    public static func locate(_ configuration: BridgeConfiguration, mdns: MDNSConnection) async -> Choice {
        let logger = Logger(label: "discovery")
        let choice = await choose(configuration, mdns: mdns)
        logger.info(
            "using MQTT broker",
            metadata: [
                "mqtt.server": "\(choice.tls ? "mqtts" : "mqtt")://\(choice.host):\(choice.port)",
                "why": "\(choice.reason)",
            ])
        return choice
    }

    static func choose(_ configuration: BridgeConfiguration, mdns: MDNSConnection) async -> Choice {
        if case .url(let tls, let host, let port) = configuration.mqtt.server {
            return Choice(host: host, port: port, tls: tls, reason: "configured (mqtt.server)")
        }
        let timeout = Duration.seconds(configuration.discovery.timeout)
        if let client = await mdns.client() {
            let wantsTLS = configuration.mqtt.caFile != nil
            let types = wantsTLS ? ["_secure-mqtt._tcp", "_mqtt._tcp"] : ["_mqtt._tcp", "_secure-mqtt._tcp"]
            var found: [String: [MDNSService]] = [:]
            await withTaskGroup(of: (String, [MDNSService]).self) { group in
                for type in types {
                    group.addTask { (type, (try? await client.browse(type: type, timeout: timeout)) ?? []) }
                }
                for await (type, services) in group { found[type] = services }
            }
            for type in types {
                for service in (found[type] ?? []).sorted(by: { $0.name < $1.name }) {
                    if let host = GatewayLocator.preferredAddress(service.addresses) {
                        return Choice(
                            host: host, port: service.port, tls: type == "_secure-mqtt._tcp",
                            reason: "advertised by mDNS as \(type) instance '\(service.name)'")
                    }
                }
            }
            for name in configuration.mqtt.baseStations {
                let addresses = (try? await client.resolveHost(name, protocol: .any, timeout: timeout)) ?? []
                if let host = GatewayLocator.preferredAddress(addresses) {
                    return Choice(
                        host: host, port: wantsTLS ? 8883 : 1883, tls: wantsTLS,
                        reason: "base station \(name) resolved by mDNS")
                }
            }
        }
        return Choice(
            host: "localhost", port: 1883, tls: false,
            reason: "no broker advertised by mDNS and no base station found: this host")
    }
}
