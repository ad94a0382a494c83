import ArgumentParser
import Foundation
import MDNS
import TradfriBridge

struct AuthCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "auth",
        abstract: "Pair with a gateway once, using the security code on its label.",
        discussion: """
            Creates an identity on the gateway and adds it with its key to the credentials file \
            (mode 0600), which holds every paired gateway: pairing one more gateway never \
            touches the others. The security code itself is never stored. Pairing a gateway again \
            creates another identity on it, so it is refused while its stored credentials still \
            work (use --force to pair anyway; the new credentials then replace that gateway's).
            """)

    @OptionGroup var common: CommonOptions

    @Option(
        help:
            "The gateway: HOST, HOST:PORT (port 5684 by default), or auto to find it by mDNS (with several, the one not paired yet)."
    )
    var gateway: String

    @Option(help: "The 16-character security code printed on the gateway's label.")
    var securityCode: String

    @Option(
        help: ArgumentHelp(
            "The gateway's short name in the configuration (lower-case letters, digits, '_', '-').",
            discussion:
                "Default: the name of the configured gateway (when the configuration names exactly one, or one at this address)."
        ))
    var name: String?

    @Option(help: "Name of the identity to create (default: tradfri-bridge-<host>-<random>).")
    var identity: String?

    @Option(help: "The credentials file (default: the configured gateway's credentials).")
    var credentials: String?

    @Flag(help: "Pair again even if the gateway's stored credentials still work.")
    var force = false

    @Option(help: "Seconds to wait for the gateway.")
    var timeout: Double = 10

    func run() async throws {
        let configuration = try common.load()
        guard let address = BridgeConfiguration.GatewayAddress.parse(gateway) else {
            throw ValidationError("--gateway must be HOST, HOST:PORT or auto")
        }
        guard GatewayPairing.isPlausibleSecurityCode(securityCode) else {
            throw ValidationError("\(GatewayPairing.Failure.invalidSecurityCode)")
        }
        if let name, let problem = BridgeConfiguration.GatewayEntry.nameProblem(name) {
            throw ValidationError("--name: \(problem)")
        }
        let limit = try timeoutDuration(timeout)
        let path = credentials ?? configuredEntry(configuration).credentials
        var store: CredentialStore
        do {
            store = try CredentialStore.loadIfPresent(from: path)
        } catch {
            throw Failure("\(error); nothing was changed")
        }

        var host: String
        var port: UInt16
        var mdnsName: String?
        switch address {
        case .host(let givenHost, let givenPort):
            (host, port) = (givenHost, givenPort)
        case .auto:
            let found = try await findGateway(seconds: configuration.discovery.timeout, store: store)
            (host, port, mdnsName) = (found.host, found.port, found.name)
            print(
                "Found gateway \(found.name) at \(found.host):\(found.port) (firmware \(found.firmware ?? "unknown")).")
        }

        // Only this gateway's own entry stops a pairing; the others are never looked at again.
        let working =
            store.isEmpty
            ? nil : await GatewayPairing.workingEntry(at: host, port: port, in: store, timeout: min(limit, .seconds(5)))
        if let working {
            guard force else {
                throw Failure(
                    """
                    the credentials in \(path) for \(working) still work; pairing again would create \
                    another identity on the gateway. Use --force to pair anyway.
                    """)
            }
            print("The stored credentials of gateway \(working.gatewayID) still work; pairing again (--force).")
        }
        let chosenName = try await self.chosenName(
            configuration, store: store, host: host, port: port, working: working)

        var paired: GatewayCredentials
        do {
            paired = try await GatewayPairing.pair(
                host: host, port: port, securityCode: securityCode, identity: identity, timeout: limit)
        } catch {
            throw Failure("pairing failed: \(error)")
        }
        paired.mdnsName = mdnsName
        paired.name = chosenName
        let replaced: GatewayCredentials?
        var unnamedBecause: String?
        do {
            replaced = try store.upsert(paired)
        } catch {
            // The gateway handed out a key only once: keep it, without the name in conflict.
            unnamedBecause = error.description
            paired.name = nil
            replaced = try? store.upsert(paired)
        }
        do {
            try store.save(to: path)
        } catch {
            throw Failure("\(error)")
        }
        let stored = store.entry(gatewayID: paired.gatewayID) ?? paired
        var report = """
            Paired with gateway \(paired.gatewayID) (firmware \(paired.firmware ?? "unknown")) at \(paired.address):\(paired.port).
            Identity '\(paired.identity)' and its key are saved in \(path) (mode 0600)\(stored.name.map { " as '\($0)'" } ?? "").
            The security code was not stored.
            """
        if let replaced, replaced.identity != paired.identity {
            report += "\nThey replace the gateway's earlier identity '\(replaced.identity)'."
        }
        if store.entries.count > 1 {
            report += "\n\(path) now holds \(store.entries.count) gateways: "
            report += store.entries.map { "\($0.displayName) (\($0.gatewayID))" }.joined(separator: ", ") + "."
        }
        print(report)
        if let unnamedBecause {
            throw Failure(
                "stored without a name: \(unnamedBecause) (pair with another --name, or refer to it by id: in the configuration)"
            )
        }
    }

    /// The configuration entry this pairing is for: the one named --name, else the first.
    private func configuredEntry(_ configuration: BridgeConfiguration) -> BridgeConfiguration.GatewayEntry {
        configuration.gateways.first { $0.name == name } ?? configuration.gateway
    }

    /// --name, or else the configured name: of the one gateway a list or a named `gateway:`
    /// section gives, or of the one entry at this address. Never a name another stored gateway
    /// already has (a replaced entry keeps its name).
    private func chosenName(
        _ configuration: BridgeConfiguration, store: CredentialStore, host: String, port: UInt16,
        working: GatewayCredentials?
    ) async throws -> String? {
        if let name {
            // A name held by another gateway that is still paired is refused before a new identity
            // is made on this one.
            if let holder = store.entry(named: name), holder.gatewayID != working?.gatewayID,
                await GatewayPairing.credentialsWork(holder)
            {
                throw Failure("the name '\(name)' is already used by \(holder); choose another --name")
            }
            return name
        }
        var candidate: String?
        switch configuration.gatewaysForm {
        case .auto: candidate = nil
        case .section:
            let entry = configuration.gateway
            candidate = entry.name == BridgeConfiguration.GatewayEntry.defaultName ? nil : entry.name
        case .list:
            let here = configuration.gateways.filter { $0.address == .host(host, port: port) }
            if configuration.gateways.count == 1 {
                candidate = configuration.gateway.name
            } else if here.count == 1 {
                candidate = here.first?.name
            }
        }
        guard let candidate else { return nil }
        if let holder = store.entry(named: candidate), holder.gatewayID != working?.gatewayID { return nil }
        return candidate
    }

    /// The one gateway advertised on the LAN, or the one of several not paired yet (by the mDNS
    /// name recorded at pairing, or the address stored at pairing); otherwise the user must
    /// choose.
    private func findGateway(seconds: Double, store: CredentialStore) async throws -> GatewayLocator.Candidate {
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
        if gateways.count == 1 { return first }
        // Paired: recorded by its mDNS name, or last seen at the address it advertises.
        func isPaired(_ gateway: GatewayLocator.Candidate) -> Bool {
            store.entries.contains { entry in
                if let recorded = entry.mdnsName { return recorded == gateway.name }
                return entry.port == gateway.port && gateway.addresses.contains(entry.address)
            }
        }
        let unpaired = gateways.filter { !isPaired($0) }
        if unpaired.count == 1, let only = unpaired.first, !force {
            print("Found \(gateways.count) gateways; \(only.name) is the one not paired yet.")
            return only
        }
        let list = gateways.map { "\($0.name) (\($0.host)\(isPaired($0) ? ", paired" : ""))" }
            .joined(separator: ", ")
        throw Failure("several gateways found: \(list); choose one with --gateway HOST")
    }
}
