import ArgumentParser
import Foundation
import HubModel
import MDNS
import TradfriBridge
import TradfriModel

struct DiscoverCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "discover",
        abstract: "List TRÅDFRI gateways and MQTT brokers on the LAN (mDNS via avahi-daemon).")

    @OptionGroup var common: CommonOptions

    @Option(help: "Seconds to browse.")
    var timeout: Double = 5

    @Flag(help: "Print JSON instead of tables.")
    var json = false

    func run() async throws {
        _ = try common.load()
        let client: MDNSClient
        do {
            client = try MDNSClient()
        } catch {
            throw Failure("cannot browse: \(error) (is avahi-daemon running?)")
        }
        let limit = try timeoutDuration(timeout)
        async let gatewaysFound = GatewayLocator.browse(client, timeout: limit)
        async let plain = (try? client.browse(type: "_mqtt._tcp", timeout: limit)) ?? []
        async let secure = (try? client.browse(type: "_secure-mqtt._tcp", timeout: limit)) ?? []
        let gateways = await gatewaysFound
        let brokers = (await plain).map { ($0, "_mqtt._tcp") } + (await secure).map { ($0, "_secure-mqtt._tcp") }
        client.close()

        if json {
            let output: JSON = [
                "gateways": .array(
                    gateways.map { gateway in
                        [
                            "name": .string(gateway.name), "address": .string(gateway.host),
                            "port": .int(Int(gateway.port)),
                            "firmware": gateway.firmware.map(JSON.string) ?? .null,
                            "addresses": .array(gateway.addresses.map(JSON.string)),
                        ]
                    }),
                "brokers": .array(
                    brokers.map { service, type in
                        [
                            "name": .string(service.name), "type": .string(type),
                            "address": GatewayLocator.preferredAddress(service.addresses).map(JSON.string) ?? .null,
                            "port": .int(Int(service.port)), "host": .string(service.hostName),
                        ]
                    }),
            ]
            print(output.description)
            return
        }
        print("TRÅDFRI gateways (_coap._udp)")
        if gateways.isEmpty {
            print("  none found")
        } else {
            var rows = [["NAME", "ADDRESS", "PORT", "FIRMWARE"]]
            for gateway in gateways {
                rows.append([gateway.name, gateway.host, String(gateway.port), gateway.firmware ?? "?"])
            }
            print(GatewayInventory.format(rows), terminator: "")
        }
        print("\nMQTT brokers (_mqtt._tcp, _secure-mqtt._tcp)")
        if brokers.isEmpty {
            print("  none found")
        } else {
            var rows = [["NAME", "TYPE", "ADDRESS", "PORT", "HOST"]]
            for (service, type) in brokers {
                rows.append([
                    service.name, type, GatewayLocator.preferredAddress(service.addresses) ?? "?",
                    String(service.port), service.hostName,
                ])
            }
            print(GatewayInventory.format(rows), terminator: "")
        }
    }
}
