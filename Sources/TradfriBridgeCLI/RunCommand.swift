import ArgumentParser
import Logging
import ServiceLifecycle
import TradfriBridge

struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run the bridge: gateway state to MQTT, MQTT commands to the gateway.",
        discussion: """
            Needs credentials from 'tradfri-bridge auth'. Publishes every device and group under \
            <base_topic>/<name> and takes commands on <base_topic>/<name>/set. Stops cleanly on \
            SIGTERM or SIGINT (publishing bridge/state offline first).
            """)

    @OptionGroup var common: CommonOptions

    @Option(help: "Credentials file (overrides the credentials of every configured gateway).")
    var credentials: String?

    @Option(help: "The gateway, HOST or HOST:PORT (overrides gateway.address; with one gateway configured).")
    var gateway: String?

    @Option(help: "The broker, mqtt://HOST:PORT or mqtts://HOST:PORT (overrides mqtt.server).")
    var mqtt: String?

    func run() async throws {
        var configuration = try common.load()
        if let gateway {
            guard let address = BridgeConfiguration.GatewayAddress.parse(gateway) else {
                throw ValidationError("--gateway must be HOST, HOST:PORT or auto")
            }
            guard configuration.gatewaysForm != .auto, configuration.gateways.count == 1 else {
                throw ValidationError("--gateway needs a configuration with one gateway")
            }
            configuration.gateway.address = address
        }
        if let credentials {
            for index in configuration.gateways.indices { configuration.gateways[index].credentials = credentials }
        }
        if let mqtt {
            guard let server = BridgeConfiguration.BrokerAddress.parse(mqtt) else {
                throw ValidationError("--mqtt must be mqtt://HOST:PORT, mqtts://HOST:PORT or auto")
            }
            configuration.mqtt.server = server
        }
        let logger = Logger(label: "tradfri-bridge")
        let gateways: [ResolvedGateway]
        do {
            gateways = try GatewayResolution.resolve(configuration)
        } catch {
            throw Failure("\(error)")
        }
        for path in Set(gateways.map(\.entry.credentials)) where GatewayCredentials.isExposed(path) {
            logger.warning(
                "the credentials file is readable by other users; chmod 600 it", metadata: ["file": "\(path)"])
        }
        let daemon = BridgeDaemon(configuration: configuration, gateways: gateways, logger: logger)
        // Signals are caught from here on, also while the daemon is still starting.
        let group = ServiceGroup(
            configuration: .init(
                services: [.init(service: daemon)], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }
}
