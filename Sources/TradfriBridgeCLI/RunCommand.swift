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

    @Option(help: "Credentials file (default: gateway.credentials from the configuration).")
    var credentials: String?

    @Option(help: "The gateway, HOST or HOST:PORT (overrides gateway.address).")
    var gateway: String?

    @Option(help: "The broker, mqtt://HOST:PORT or mqtts://HOST:PORT (overrides mqtt.server).")
    var mqtt: String?

    func run() async throws {
        var configuration = try common.load()
        if let gateway {
            guard let address = BridgeConfiguration.GatewayAddress.parse(gateway) else {
                throw ValidationError("--gateway must be HOST, HOST:PORT or auto")
            }
            configuration.gateway.address = address
        }
        if let mqtt {
            guard let server = BridgeConfiguration.BrokerAddress.parse(mqtt) else {
                throw ValidationError("--mqtt must be mqtt://HOST:PORT, mqtts://HOST:PORT or auto")
            }
            configuration.mqtt.server = server
        }
        let logger = Logger(label: "tradfri-bridge")
        let stored: GatewayCredentials
        do {
            stored = try GatewayCredentials.load(from: credentials ?? configuration.gateway.credentials)
        } catch {
            throw Failure("\(error)")
        }
        if GatewayCredentials.isExposed(credentials ?? configuration.gateway.credentials) {
            logger.warning("the credentials file is readable by other users; chmod 600 it")
        }
        let daemon = BridgeDaemon(configuration: configuration, credentials: stored, logger: logger)
        // Signals are caught from here on, also while the daemon is still starting.
        let group = ServiceGroup(
            configuration: .init(
                services: [.init(service: daemon)], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }
}
