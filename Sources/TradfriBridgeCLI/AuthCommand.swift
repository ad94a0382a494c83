import ArgumentParser
import Foundation
import TradfriBridge

struct AuthCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "auth",
        abstract: "Pair with a gateway once, using the security code on its label.",
        discussion: """
            Creates an identity on the gateway and stores it with its key in the credentials file \
            (mode 0600). The security code itself is never stored. Pairing again creates another \
            identity on the gateway, so it is refused while the stored credentials still work \
            (use --force to pair anyway).
            """)

    @OptionGroup var common: CommonOptions

    @Option(help: "The gateway: HOST or HOST:PORT (port 5684 by default).")
    var gateway: String

    @Option(help: "The 16-character security code printed on the gateway's label.")
    var securityCode: String

    @Option(help: "Name of the identity to create (default: tradfri-bridge-<host>-<random>).")
    var identity: String?

    @Option(help: "Where to store the credentials (default: gateway.credentials from the configuration).")
    var credentials: String?

    @Flag(help: "Pair again even if the stored credentials still work.")
    var force = false

    @Option(help: "Seconds to wait for the gateway.")
    var timeout: Double = 10

    func run() async throws {
        let configuration = try common.load()
        let path = credentials ?? configuration.gateway.credentials
        guard case .host(let host, let port)? = BridgeConfiguration.GatewayAddress.parse(gateway) else {
            throw ValidationError("--gateway must be HOST or HOST:PORT")
        }
        guard GatewayPairing.isPlausibleSecurityCode(securityCode) else {
            throw ValidationError("\(GatewayPairing.Failure.invalidSecurityCode)")
        }
        if !force, let existing = try? GatewayCredentials.load(from: path) {
            if await GatewayPairing.credentialsWork(existing) {
                throw Failure("""
                    the credentials in \(path) still work (identity '\(existing.identity)' on gateway \
                    \(existing.gatewayID) at \(existing.address):\(existing.port)); pairing again would create another \
                    identity on the gateway. Use --force to pair anyway.
                    """)
            }
            print("The credentials in \(path) no longer work; pairing again.")
        }
        let paired: GatewayCredentials
        do {
            paired = try await GatewayPairing.pair(host: host, port: port, securityCode: securityCode,
                                                   identity: identity, timeout: .milliseconds(Int(timeout * 1000)))
        } catch {
            throw Failure("pairing failed: \(error)")
        }
        do {
            try paired.save(to: path)
        } catch {
            throw Failure("\(error)")
        }
        print("""
            Paired with gateway \(paired.gatewayID) (firmware \(paired.firmware ?? "unknown")) at \(host):\(port).
            Identity '\(paired.identity)' and its key are saved in \(path) (mode 0600).
            The security code was not stored.
            """)
    }
}
