import ArgumentParser
import CoAP
import Foundation
import HubModel
import Logging

@main
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tradfri-bench",
        abstract: "Measure what the bridge adds to the CoAP and MQTT hops, and its footprint.",
        discussion: """
            Starts a private mosquitto on a free loopback port, two gateway simulators in this \
            process (the bridge's and a reference one), a raw CoAP observer, and the real bridge \
            binary; then measures gateway change → MQTT latency (steady and in bursts) beside the \
            raw CoAP observe hop and the raw mosquitto hop of the same run, MQTT set → gateway \
            latency, the initial sync, the highest sustained change rate, and the bridge's memory \
            and CPU. Build the bridge as it ships first (scripts/bench.sh does): \
            swift build -c release --static-swift-stdlib.
            """,
        subcommands: [RunBench.self, FleetCommand.self, SoakCommand.self, ObserveCommand.self],
        defaultSubcommand: RunBench.self)
}

struct RunBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "run", abstract: "Run the benchmark (the default).")

    @Flag(help: "Print the results as JSON instead of a table.")
    var json = false

    @Flag(help: "A short run (about 45 s instead of 4 minutes): fewer rounds, 10 s idle. Noisier.")
    var quick = false

    @Option(help: "The bridge binary (default: tradfri-bridge next to this program).")
    var bridge: String?

    @Option(help: "Generated lights on the simulated gateway.")
    var lights = 100

    @Option(help: "Generated groups (rooms), each with two scenes.")
    var groups = 10

    @Option(help: "Steady change rate of the latency measurements, per second.")
    var rate = 200.0

    @Option(help: "Seconds of CPU measurement while idle (default 60; 10 with --quick).")
    var idle: Double?

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
        var options = BenchOptions(bridgePath: bridgePath, selfPath: selfPath)
        options.lights = lights
        options.groups = groups
        options.rate = rate
        if quick {
            options.rounds = 1
            options.segmentSeconds = 2
            options.syncRuns = 1
            options.capacitySeconds = 1
        }
        options.idleSeconds = idle ?? (quick ? 10 : 60)
        options.progress = { line in
            let text = "· \(line)\n"
            _ = text.withCString { write(2, $0, strlen($0)) }
        }
        let report = try await Benchmark(options: options).run()
        print(json ? report.json.description : report.table)
    }
}

/// The raw CoAP observer: our CoAPClient observing lights, nothing else. Prints
/// "<CLOCK_MONOTONIC ns> <payload>" for each notification, stamped when the handler is entered
/// (where the bridge's own handler starts its work).
struct ObserveCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "observe", abstract: "(internal) the raw CoAP observer process.", shouldDisplay: false)

    @Option var port: UInt16
    @Option var identity: String
    @Option var key: String
    @Option(help: "Comma-separated resource paths.") var paths: String

    func run() async throws {
        let client = CoAPClient(.init(host: "127.0.0.1", port: port, identity: identity, key: key))
        try await client.connect()
        for path in paths.split(separator: ",") {
            _ = try await client.observe(String(path)) { event in
                guard case .notification(let response) = event else { return }
                let time = Monotonic.now()
                emit("\(time) \(response.text)")
            }
        }
        emit("ready")
        while true { try await Task.sleep(for: .seconds(3600)) }
    }
}

private func emit(_ line: String) {
    var text = line
    text.append("\n")
    text.withUTF8 { bytes in _ = write(1, bytes.baseAddress, bytes.count) }
}
