import ArgumentParser
import Logging
import TradfriBridge

@main
struct BridgeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tradfri-bridge",
        abstract: "Bridges an IKEA TRÅDFRI gateway to MQTT.",
        discussion: """
            First pair once with the gateway using the security code on its label:
              tradfri-bridge auth --gateway 192.168.1.20 --security-code ABCDEFGH12345678
            then check what the gateway holds:
              tradfri-bridge devices
            """,
        subcommands: [RunCommand.self, AuthCommand.self, DevicesCommand.self, DiscoverCommand.self, PairCommand.self])
}

/// Options every subcommand shares.
struct CommonOptions: ParsableArguments {
    @Option(name: .long, help: "Configuration file (default \(BridgeConfiguration.defaultPath) if it exists).")
    var config: String?

    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error.")
    var logLevel: String?

    /// Loads the configuration and sets up logging; exits with a clear message on a bad file.
    func load() throws -> BridgeConfiguration {
        let configuration: BridgeConfiguration
        do {
            configuration = try BridgeConfiguration.load(path: config)
        } catch {
            throw Failure("\(error)")
        }
        let levelName = logLevel ?? configuration.logging.level
        guard let level = Logger.Level(rawValue: levelName) else {
            throw ValidationError("--log-level must be one of trace, debug, info, notice, warning, error")
        }
        BridgeLogHandler.bootstrap(
            level: level, format: configuration.logging.format == "json" ? .json : .text,
            repeatInterval: .seconds(configuration.logging.repeatInterval))
        return configuration
    }
}

/// Exits with status 1 and a message on standard error.
struct Failure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// A `--timeout` in seconds as a Duration; a clear error for values no one means (negative,
/// zero, not a number, or longer than an hour) instead of a trap or an instant timeout.
func timeoutDuration(_ seconds: Double) throws -> Duration {
    guard seconds.isFinite, seconds > 0, seconds <= 3600 else {
        throw ValidationError("--timeout must be a number of seconds above 0 and at most 3600 (got \(seconds))")
    }
    return .seconds(seconds)
}
