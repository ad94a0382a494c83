import ArgumentParser
import CoAP
import Dispatch
import Foundation
import GatewaySimulator
import Logging
import MDNS

@main
struct SimulatorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tradfri-gateway-sim",
        abstract: "An IKEA TRÅDFRI gateway simulator over real CoAP/DTLS, for tests and demos.",
        discussion: """
            Serves the gateway's CoAP resources (15001 devices, 15004 groups, 15005 scenes, 15011 \
            gateway, 15006 notifications) with DTLS-PSK. Pair with identity Client_identity and the \
            security code (POST 15011/9063), then use the created identity.

            When ready it prints one line: "tradfri-gateway-sim listening on HOST:PORT ...".
            SIGUSR1 reboots the gateway; SIGTERM stops it. Control commands are read from standard \
            input, one per line (change, change-silently, add-device, remove-device, add-group, \
            remove-group, add-scene, remove-scene, battery, reachable, odd-answer, end-observations, mute, unmute, half-dead, drop, reboot).
            """)

    @Option(help: "Address and UDP port to serve on (port 0 picks a free one).")
    var listen = "127.0.0.1:5684"

    @Option(help: "The 16-character security code printed on the gateway's label.")
    var securityCode: String?

    @Option(help: "Gateway content in the gateway's own JSON (see --print-fixture); default: the demo home.")
    var fixture: String?

    @Option(help: "Directory that keeps created identities across restarts.")
    var stateDir: String?

    @Option(help: "Add this many generated lights.")
    var lights = 0

    @Option(help: "Add this many generated groups sharing the generated lights, with two scenes each.")
    var groups = 0

    @Option(help: "Override the gateway id (key 9081, 16 hex characters).")
    var gatewayId: String?

    @Option(help: "Fraction of datagrams to lose in each direction (0…1).")
    var dropRate: Double = 0

    @Option(help: "Seed of the loss pattern, so a run can be repeated exactly.")
    var dropSeed: UInt64?

    @Flag(help: "Serve behind the lossy relay even with no random loss (for the 'drop' control command).")
    var relay = false

    @Option(help: "Seconds the gateway stays away when rebooting.")
    var rebootDelay: Double = 3

    @Option(help: "Blind travel speed in percent per second.")
    var blindSpeed: Double = 25

    @Option(help: "Append every request received as a JSON line to this file.")
    var requestLog: String?

    @Option(help: "Log level: trace, debug, info, notice, warning, error.")
    var logLevel: Logger.Level = .info

    @Flag(help: "Advertise the gateway by mDNS as the real one does (_coap._udp, instance gw-<mac>, TXT version).")
    var advertise = false

    @Option(help: "The MAC in the gw-<mac> instance name (12 hex digits; default: from the gateway id).")
    var mac: String?

    @Flag(help: "Print the fixture (the demo home with any generated devices) and exit.")
    var printFixture = false

    func validate() throws {
        if !printFixture, securityCode?.isEmpty ?? true {
            throw ValidationError("--security-code is required")
        }
        guard (0...1).contains(dropRate) else { throw ValidationError("--drop-rate must be between 0 and 1") }
        if let gatewayId, gatewayId.count != 16 || !gatewayId.allSatisfy(\.isHexDigit) {
            throw ValidationError("--gateway-id must be 16 hex characters")
        }
        if let mac, mac.count != 12 || !mac.allSatisfy(\.isHexDigit) {
            throw ValidationError("--mac must be 12 hex digits")
        }
    }

    func run() async throws {
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = logLevel
            return handler
        }
        var content = Fixture.demoHome()
        if let fixture {
            do {
                content = try Fixture(text: try String(contentsOfFile: fixture, encoding: .utf8))
            } catch {
                throw ValidationError("cannot load fixture \(fixture): \(error)")
            }
        }
        content.addGenerated(lights: lights, groups: groups)
        if let gatewayId { content.gateway["9081"] = .string(gatewayId.lowercased()) }
        if printFixture {
            FileHandle.standardOutput.write(Data((content.json.description + "\n").utf8))
            return
        }
        let (host, port) = try parseListen(listen)
        var configuration = GatewaySimulator.Configuration(securityCode: securityCode ?? "", fixture: content)
        configuration.host = host
        configuration.port = port
        configuration.stateDirectory = stateDir
        configuration.dropRate = dropRate
        configuration.dropSeed = dropSeed
        configuration.relay = relay
        configuration.rebootDelay = .milliseconds(Int(rebootDelay * 1000))
        configuration.blindSpeed = blindSpeed
        configuration.requestLogPath = requestLog
        try await serve(configuration)
    }

    private func serve(_ configuration: GatewaySimulator.Configuration) async throws {
        let simulator = try await GatewaySimulator(configuration)
        do {
            try await simulator.start()
        } catch {
            throw ValidationError("cannot serve on \(listen): \(error)")
        }
        let port = await simulator.port
        let gatewayID = await simulator.gatewayID
        let advertisement =
            advertise
            ? await startAdvertising(port: port, gatewayID: gatewayID, firmware: await simulator.firmware) : nil
        // Signals are watched before the ready line: a supervisor may send SIGTERM as soon as it
        // reads it, and the default action would kill the simulator with no clean stop.
        let stopped = AsyncStream.makeStream(of: Void.self)
        let signals = SignalWatcher { signal in
            if signal == SIGUSR1 {
                Task { @CoAPActor in simulator.reboot(reason: -1) }
            } else {
                stopped.continuation.yield()
            }
        }
        await signals.registered()
        let line =
            "tradfri-gateway-sim listening on \(configuration.host):\(port) gateway-id \(await simulator.gatewayID) firmware \(await simulator.firmware)\n"
        FileHandle.standardOutput.write(Data(line.utf8))

        CommandReader.start { command in
            Task { @CoAPActor in
                let answer = simulator.execute(command)
                FileHandle.standardOutput.write(Data((answer + "\n").utf8))
            }
        }
        for await _ in stopped.stream { break }
        signals.cancel()
        advertisement?.withdraw()
        await simulator.stop()
    }

    /// Publishes `_coap._udp` instance `gw-<mac>` with TXT `version=<firmware>` while running.
    /// The returned publisher must be kept: releasing it withdraws the advertisement.
    private func startAdvertising(port: UInt16, gatewayID: String, firmware: String) async -> MDNSPublisher? {
        let instance = "gw-" + (mac ?? String(gatewayID.suffix(12))).lowercased()
        do {
            let client = try MDNSClient()
            let publisher = try client.publish(
                MDNSAdvertisement(
                    name: instance, type: "_coap._udp", port: port,
                    txt: ["version": firmware]))
            let name = try await publisher.registeredName(within: .seconds(20))
            Logger(label: "tradfri-gateway-sim").info("advertising", metadata: ["mdns.name": "\(name)"])
            return publisher
        } catch {
            Logger(label: "tradfri-gateway-sim").warning(
                "--advertise: mDNS is not available; not advertising", metadata: ["error": "\(error)"])
            return nil
        }
    }

    private func parseListen(_ text: String) throws -> (String, UInt16) {
        guard let colon = text.lastIndex(of: ":"), let port = UInt16(text[text.index(after: colon)...]) else {
            throw ValidationError("--listen must be HOST:PORT, e.g. 127.0.0.1:5684")
        }
        var host = String(text[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return (host, port)
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}

/// SIGTERM, SIGINT and SIGUSR1 delivered on a dispatch queue instead of as async signals.
final class SignalWatcher: @unchecked Sendable {
    // @unchecked: the sources are created in init and only cancelled afterwards; dispatch sources
    // and groups are thread-safe.
    private let sources: [any DispatchSourceSignal]
    private let registrations = DispatchGroup()

    init(_ handler: @escaping @Sendable (Int32) -> Void) {
        let registrations = registrations
        sources = [SIGTERM, SIGINT, SIGUSR1].map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { handler(number) }
            registrations.enter()
            source.setRegistrationHandler { registrations.leave() }
            source.resume()
            return source
        }
    }

    /// Returns once every source is installed. Until then a signal is ignored (SIG_IGN) and lost,
    /// because dispatch installs a resumed source later, on its own thread.
    func registered() async {
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            registrations.notify(queue: .global()) { done.resume() }
        }
    }

    func cancel() {
        for source in sources { source.cancel() }
    }
}

/// Reads control commands from standard input on a thread of its own; stops at end of input.
enum CommandReader {
    static func start(_ handler: @escaping @Sendable (String) -> Void) {
        let thread = Thread {
            while let line = readLine() {
                if !line.isEmpty { handler(line) }
            }
        }
        thread.start()
    }
}
