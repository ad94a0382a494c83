import ArgumentParser
import CoAP
import Foundation
import HubModel
import TradfriBridge
import TradfriModel

struct DevicesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "devices",
        abstract: "List the devices, groups and scenes the gateway holds (checks that pairing worked).")

    @OptionGroup var common: CommonOptions

    @Option(help: "Credentials file (default: gateway.credentials from the configuration).")
    var credentials: String?

    @Option(help: "Talk to this address instead of the one stored at pairing (HOST or HOST:PORT).")
    var gateway: String?

    @Flag(help: "Print JSON instead of a table.")
    var json = false

    @Option(help: "Seconds to wait for the gateway.")
    var timeout: Double = 10

    func run() async throws {
        let configuration = try common.load()
        let stored: GatewayCredentials
        do {
            stored = try GatewayCredentials.load(from: credentials ?? configuration.gateway.credentials)
        } catch {
            throw Failure("\(error)")
        }
        var host = stored.address
        var port = stored.port
        if let gateway {
            guard case .host(let overrideHost, let overridePort)? = BridgeConfiguration.GatewayAddress.parse(gateway)
            else {
                throw ValidationError("--gateway must be HOST or HOST:PORT")
            }
            (host, port) = (overrideHost, overridePort)
        }
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
