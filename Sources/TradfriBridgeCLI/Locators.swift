import CoAP
import Logging
import TradfriBridge

/// Where the gateway and the broker are, from the configuration.
enum Locators {
    static func gateway(
        _ configuration: BridgeConfiguration, credentials: GatewayCredentials, logger: Logger
    ) async throws -> GatewayLink.AddressResolver {
        switch configuration.gateway.address {
        case .host(let host, let port):
            return { (host, port) }
        case .auto:
            let host = credentials.address
            let port = credentials.port
            logger.info("gateway.address is auto: using the address stored at pairing",
                        metadata: ["gateway.address": "\(host):\(port)"])
            return { (host, port) }
        }
    }

    static func broker(_ configuration: BridgeConfiguration, logger: Logger) async throws -> (host: String, port: UInt16, tls: Bool) {
        switch configuration.mqtt.server {
        case .url(let tls, let host, let port):
            return (host, port, tls)
        case .auto:
            logger.info("mqtt.server is auto: using the broker on this host", metadata: ["mqtt.server": "mqtt://localhost:1883"])
            return ("localhost", 1883, false)
        }
    }
}
