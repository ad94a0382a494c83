import ArgumentParser
import CoAP
import Foundation
import HubModel
import MDNS
import TradfriBridge
import TradfriModel

struct DevicesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "devices",
        abstract: "List the devices, groups and scenes the gateway holds (checks that pairing worked).")

    @OptionGroup var common: CommonOptions

    @Option(help: "Credentials file (default: the configured gateways' credentials).")
    var credentials: String?

    @Option(
        help:
            "Which gateway, by its name (or gateway id) when several are configured or stored (default: the first)."
    )
    var gatewayName: String?

    @Option(help: "Talk to this address instead of the configured one or the one found by mDNS (HOST or HOST:PORT).")
    var gateway: String?

    @Flag(help: "Print JSON instead of a table.")
    var json = false

    @Option(help: "Seconds to wait for the gateway.")
    var timeout: Double = 10

    func run() async throws {
        let configuration = try common.load()
        var (stored, address) = try chosenGateway(configuration)
        if let gateway {
            guard case .host(let overrideHost, let overridePort)? = BridgeConfiguration.GatewayAddress.parse(gateway)
            else {
                throw ValidationError("--gateway must be HOST or HOST:PORT")
            }
            address = .host(overrideHost, port: overridePort)
        }
        let (host, port) = await locate(stored, address: address, configuration: configuration)
        let limit = try timeoutDuration(timeout)
        let session = CoAPClient(
            .init(
                host: host, port: port, identity: stored.identity, key: stored.psk,
                handshakeTimeout: limit, requestTimeout: limit))
        do {
            try await session.connect()
        } catch let error as CoAPError {
            if case .unknownIdentity = error {
                throw Failure(
                    "the gateway at \(host):\(port) no longer knows identity '\(stored.identity)': pair again with 'tradfri-bridge auth'"
                )
            }
            throw Failure("cannot open a session with the gateway at \(host):\(port): \(error)")
        }
        let inventory: GatewayInventory
        do {
            inventory = try await GatewayInventory.read(from: session)
        } catch {
            await session.close()
            throw Failure("reading the gateway failed: \(error)")
        }
        await session.close()
        if json {
            print(inventory.json.description)
        } else {
            print(inventory.table, terminator: "")
        }
    }
}

extension DevicesCommand {
    /// The gateway to list and its configured address: with --credentials, the gateways of that
    /// file (`address: auto`); else the configured ones (resolved as `run` does). --gateway-name
    /// picks one by name or id; default the first.
    func chosenGateway(
        _ configuration: BridgeConfiguration
    ) throws -> (GatewayCredentials, BridgeConfiguration.GatewayAddress) {
        var gateways: [(name: String, credentials: GatewayCredentials, address: BridgeConfiguration.GatewayAddress)]
        do {
            if let credentials {
                gateways = try CredentialStore.load(from: credentials).entries.map { ($0.displayName, $0, .auto) }
                if gateways.isEmpty { throw GatewayCredentials.Failure.missing(credentials) }
            } else {
                gateways = try GatewayResolution.resolve(configuration).map {
                    ($0.name, $0.credentials, $0.entry.address)
                }
            }
        } catch {
            throw Failure("\(error)")
        }
        guard let gatewayName else { return (gateways[0].credentials, gateways[0].address) }
        guard
            let match = gateways.first(where: {
                $0.name == gatewayName || $0.credentials.gatewayID.lowercased() == gatewayName.lowercased()
            })
        else {
            throw Failure(
                "no gateway named '\(gatewayName)'; there are: \(gateways.map { "\($0.name) (\($0.credentials.gatewayID))" }.joined(separator: ", "))"
            )
        }
        return (match.credentials, match.address)
    }

    /// Where to talk to the gateway: a configured HOST[:PORT]; with `address: auto`, where mDNS
    /// shows it (the bridge's own locator: by the recorded mDNS name or by its id), when
    /// avahi-daemon answers; else the address stored at pairing. Quiet without avahi-daemon.
    func locate(
        _ stored: GatewayCredentials, address: BridgeConfiguration.GatewayAddress, configuration: BridgeConfiguration
    ) async -> (String, UInt16) {
        if case .host(let host, let port) = address { return (host, port) }
        guard configuration.discovery.enabled, let client = try? MDNSClient() else {
            return (stored.address, stored.port)
        }
        let mdns = MDNSConnection(client: client)
        let locator = GatewayLocator(
            address: .auto, credentials: stored, name: stored.name, mdns: mdns,
            browseTimeout: .seconds(configuration.discovery.timeout))
        let found = try? await locator.resolve()
        await mdns.closeAll()
        return found ?? (stored.address, stored.port)
    }
}

extension GatewayInventory {
    var json: JSON {
        .object([
            "gateway": ["id": .string(details.id), "firmware": .string(details.firmware)],
            "devices": .array(
                devices.sorted { $0.id < $1.id }.map { gatewayDevice in
                    let device = gatewayDevice.hubDevice(hub: "gateway")
                    var entry: [String: JSON] = [
                        "id": .int(gatewayDevice.id), "type": .string(device.type.description),
                        "name": .string(device.name), "model": .string(device.model),
                        "state": .string(device.stateSummary),
                    ]
                    if let spectrum = device.light?.spectrum { entry["spectrum"] = .string(spectrum.rawValue) }
                    if let battery = device.battery?.level { entry["battery"] = .int(battery) }
                    return .object(entry)
                }),
            "groups": .array(
                groups.sorted { $0.id < $1.id }.map { group in
                    [
                        "id": .int(group.id), "name": .string(group.name),
                        "members": .array(group.memberIDs.map { .int($0) }),
                        "scenes": .array(
                            (scenes[group.id] ?? []).map { ["id": .int($0.id), "name": .string($0.name)] }),
                    ]
                }),
        ])
    }
}
