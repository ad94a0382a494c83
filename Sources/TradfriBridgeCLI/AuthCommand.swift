import ArgumentParser
import Foundation
import MDNS
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

    @Option(help: "The gateway: HOST, HOST:PORT (port 5684 by default), or auto to find it by mDNS.")
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
        guard let address = BridgeConfiguration.GatewayAddress.parse(gateway) else {
            throw ValidationError("--gateway must be HOST, HOST:PORT or auto")
        }
        guard GatewayPairing.isPlausibleSecurityCode(securityCode) else {
            throw ValidationError("\(GatewayPairing.Failure.invalidSecurityCode)")
        }
        if !force, let existing = try? GatewayCredentials.load(from: path) {
            if await GatewayPairing.credentialsWork(existing) {
                throw Failure(
                    """
                    the credentials in \(path) still work (identity '\(existing.identity)' on gateway \
                    \(existing.gatewayID) at \(existing.address):\(existing.port)); pairing again would create another \
                    identity on the gateway. Use --force to pair anyway.
                    """)
            }
            print("The credentials in \(path) no longer work; pairing again.")
        }
        var host: String
        var port: UInt16
        var mdnsName: String?
        switch address {
        case .host(let givenHost, let givenPort):
            (host, port) = (givenHost, givenPort)
        case .auto:
            let found = try await findGateway(seconds: configuration.discovery.timeout)
            (host, port, mdnsName) = (found.host, found.port, found.name)
            print(
                "Found gateway \(found.name) at \(found.host):\(found.port) (firmware \(found.firmware ?? "unknown")).")
        }
        var paired: GatewayCredentials
        do {
            paired = try await GatewayPairing.pair(
                host: host, port: port, securityCode: securityCode,
                identity: identity, timeout: try timeoutDuration(timeout))
        } catch {
            throw Failure("pairing failed: \(error)")
        }
        paired.mdnsName = mdnsName
        do {
            try paired.save(to: path)
        } catch {
            throw Failure("\(error)")
        }
        print(
            """
            Paired with gateway \(paired.gatewayID) (firmware \(paired.firmware ?? "unknown")) at \(paired.address):\(paired.port).
            Identity '\(paired.identity)' and its key are saved in \(path) (mode 0600).
            The security code was not stored.
            """)
    }

    /// The one gateway advertised on the LAN; with several, the user must choose.
    private func findGateway(seconds: Double) async throws -> GatewayLocator.Candidate {
        let client: MDNSClient
        do {
            client = try MDNSClient()
        } catch {
            throw Failure("cannot look for gateways: \(error); give the address with --gateway HOST")
        }
        defer { client.close() }
        let gateways = await GatewayLocator.browse(client, timeout: .seconds(seconds))
        guard let first = gateways.first else {
            throw Failure("no TRÅDFRI gateway found by mDNS; give its address with --gateway HOST")
        }
        guard gateways.count == 1 else {
            let list = gateways.map { "\($0.name) (\($0.host))" }.joined(separator: ", ")
            throw Failure("several gateways found: \(list); choose one with --gateway HOST")
        }
        return first
    }
}
