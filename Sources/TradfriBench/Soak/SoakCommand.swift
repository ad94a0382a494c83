import ArgumentParser
import Foundation
import HubModel
import Logging

/// `tradfri-bench soak`: a home as it really behaves, with the real binaries, and a verdict
/// light by light.
struct SoakCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "soak",
        abstract: "Drive the bridge through datagram loss, mixed load and faults; check MQTT equals the gateway.",
        discussion: """
            Starts a private mosquitto, the gateway simulator binary (the demo home plus --lights \
            generated bulbs, behind a relay that loses --drop-rate of the datagrams each way) and \
            the bridge binary. Then, for --duration seconds: --clients MQTT clients send \
            --command-rate valid commands per second in all to random lights; a second gateway \
            identity (the IKEA app) changes --app-rate lights per second at the gateway; and every \
            --fault-interval seconds one fault from --faults happens (in that order, round robin): \
            reboot (the gateway reboots), simulator-kill (kill -9 and start again), broker-kill \
            (kill -9 mosquitto and start again), burst (200 commands to one light at once). \
            After the load stops, waits at most --settle seconds for MQTT to equal the gateway, \
            then compares every light's state, brightness, colour temperature and colour on MQTT \
            (a fresh subscriber's retained states) with the gateway's, read with \
            coap-client-openssl. Also measures the first sync and every recovery.

            Everything random (the loss pattern, the lights and commands chosen, the order of \
            faults) comes from --seed: a failing run can be repeated. Exit status 0 when every \
            light is equal and every recovery was within its limit, 1 otherwise.
            """)

    @Option(help: "Seed of everything random in the run.")
    var seed: UInt64 = 1

    @Option(help: "Seconds of load.")
    var duration: Double = 60

    @Option(help: "Generated lights on top of the demo home's four.")
    var lights = 50

    @Option(help: "Fraction of datagrams lost in each direction between the bridge and the gateway.")
    var dropRate = 0.05

    @Option(help: "MQTT commands per second, in all.")
    var commandRate = 20.0

    @Option(help: "MQTT clients sending them.")
    var clients = 4

    @Option(help: "Changes per second made at the gateway by another identity.")
    var appRate = 5.0

    @Option(help: "Faults, comma-separated, in order: reboot, simulator-kill, broker-kill, burst; or none.")
    var faults = "reboot,simulator-kill,broker-kill,burst"

    @Option(help: "Seconds between two faults.")
    var faultInterval = 60.0

    @Option(help: "Longest wait, after the load stops, for MQTT to equal the gateway.")
    var settle = 30.0

    @Option(help: "Limit for the first sync, in seconds.")
    var firstSyncLimit = 5.0

    @Option(help: "Limit for all retained states to be back after a broker restart, in seconds.")
    var brokerRecoveryLimit = 10.0

    @Option(help: "Limit for a change at the gateway to reach MQTT after the gateway restarted, in seconds.")
    var gatewayRecoveryLimit = 15.0

    @Option(help: "The bridge binary (default: tradfri-bridge next to this program).")
    var bridge: String?

    @Option(help: "The simulator binary (default: tradfri-gateway-sim next to this program).")
    var simulator: String?

    @Option(help: "Keep the logs (bridge, simulator, broker) and the report in this directory.")
    var keep: String?

    @Flag(help: "Print the report as JSON instead of text.")
    var json = false

    func validate() throws {
        guard (0..<1).contains(dropRate) else { throw ValidationError("--drop-rate must be in 0 ..< 1") }
        guard duration > 0, commandRate >= 0, appRate >= 0, clients > 0, lights >= 0 else {
            throw ValidationError("--duration, --clients must be positive; rates and --lights not negative")
        }
        for fault in faultList where SoakFault(rawValue: fault) == nil {
            throw ValidationError("unknown fault '\(fault)' (reboot, simulator-kill, broker-kill, burst, none)")
        }
    }

    private var faultList: [String] {
        faults.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter {
            !$0.isEmpty && $0 != "none"
        }
    }

    func run() async throws {
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = .error
            return handler
        }
        let selfPath =
            (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
            ?? CommandLine.arguments[0]
        let folder = (selfPath as NSString).deletingLastPathComponent
        var options = SoakOptions(
            bridgePath: bridge ?? folder + "/tradfri-bridge",
            simulatorPath: simulator ?? folder + "/tradfri-gateway-sim")
        for path in [options.bridgePath, options.simulatorPath]
        where !FileManager.default.isExecutableFile(atPath: path) {
            throw ValidationError("no executable at \(path); build it first or pass --bridge / --simulator")
        }
        options.seed = seed
        options.duration = duration
        options.lights = lights
        options.dropRate = dropRate
        options.commandRate = commandRate
        options.clients = clients
        options.appRate = appRate
        options.faults = faultList.compactMap(SoakFault.init(rawValue:))
        options.faultInterval = faultInterval
        options.settle = settle
        options.limits = .init(
            firstSync: firstSyncLimit, brokerRecovery: brokerRecoveryLimit, gatewayRecovery: gatewayRecoveryLimit)
        options.keep = keep
        options.progress = { line in
            let text = "· \(line)\n"
            _ = text.withCString { write(2, $0, strlen($0)) }
        }
        let report = try await Soak(options: options).run()
        print(json ? report.json.description : report.text)
        if let keep {
            try? report.json.description.write(toFile: keep + "/report.json", atomically: true, encoding: .utf8)
        }
        if !report.passed { throw ExitCode(1) }
    }
}
