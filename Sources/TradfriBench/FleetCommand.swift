import ArgumentParser
import Foundation
import Logging

/// `tradfri-bench fleet`: one bridge, many gateways, all of them busy at once.
struct FleetCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fleet",
        abstract: "Measure one bridge serving many gateways: initial sync, change → MQTT under load, memory.",
        discussion: """
            Starts a private mosquitto, --gateways gateway simulators in this process (distinct \
            gateway ids, --lights generated lights and --groups rooms with two scenes each), and \
            the real bridge binary with a `gateways:` configuration and a credentials file of all \
            of them (Home Assistant discovery on, as by default). Measures the initial sync \
            (--sync-runs times, each a fresh bridge process under a base topic and discovery prefix \
            of its own, so each is a first start): from the process start until every light state of every gateway and a complete \
            bridge/devices are on the broker (and, as the one-gateway benchmark counts it, every \
            room state and bridge/groups too). Then every gateway's app client changes its lights \
            at once, --rate changes per second in all (round robin over the gateways) for \
            --seconds, and each change is timed from the gateway's PUT to its state on MQTT \
            (matched per gateway: the gateways share device ids). Ends with the bridge's peak RSS \
            (VmHWM), its CPU per 1000 changes and its thread count.
            """)

    @Flag(help: "Print the results as JSON instead of a table.")
    var json = false

    @Option(help: "The bridge binary (default: tradfri-bridge next to this program).")
    var bridge: String?

    @Option(help: "Simulated gateways.")
    var gateways = 10

    @Option(help: "Generated lights on each gateway.")
    var lights = 100

    @Option(help: "Generated groups (rooms) on each gateway, each with two scenes.")
    var groups = 10

    @Option(help: "Changes per second over all gateways together.")
    var rate = 200.0

    @Option(help: "Seconds of changes.")
    var seconds = 30.0

    @Option(help: "Initial syncs measured (each with a new bridge process).")
    var syncRuns = 3

    @Option(
        help: "Also write every change as CSV: gateway, device, start (ms into the phase), latency (µs; empty if lost)."
    )
    var samples: String?

    func validate() throws {
        guard (1...999).contains(gateways) else { throw ValidationError("--gateways must be 1…999") }
        guard lights >= 1, groups >= 0 else { throw ValidationError("--lights must be at least 1, --groups 0 or more") }
        guard rate > 0, seconds > 0, syncRuns >= 1 else {
            throw ValidationError("--rate and --seconds must be positive, --sync-runs at least 1")
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
        let bridgePath = bridge ?? (selfPath as NSString).deletingLastPathComponent + "/tradfri-bridge"
        guard FileManager.default.isExecutableFile(atPath: bridgePath) else {
            throw ValidationError("no bridge binary at \(bridgePath); build it first or pass --bridge")
        }
        var options = FleetOptions(bridgePath: bridgePath)
        options.gateways = gateways
        options.lights = lights
        options.groups = groups
        options.rate = rate
        options.seconds = seconds
        options.syncRuns = syncRuns
        options.samplesFile = samples
        options.progress = { line in
            let text = "· \(line)\n"
            _ = text.withCString { write(2, $0, strlen($0)) }
        }
        let report = try await FleetBenchmark(options: options).run()
        print(json ? report.json.description : report.table)
    }
}
