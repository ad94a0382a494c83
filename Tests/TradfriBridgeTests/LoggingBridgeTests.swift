import Foundation
import TestSupport
import Testing
import TradfriModel

/// The log of the real bridge binary: what reaches it from outside is escaped, and an outage
/// costs a handful of lines.
@Suite(.serialized) struct LoggingBridgeTests {
    /// A command whose payload carries a newline and a timestamp (a forged log line) and terminal
    /// escape codes: the bridge's warning shows them escaped, on its one line.
    @Test func aPayloadCannotForgeALogLineOrReachTheTerminal() async throws {
        let harness = try await BridgeHarness()
        try await harness.startBridge()
        let bridge = try #require(harness.bridge)
        let forged = "2026-01-01T10:00:00Z error bridge: forged"
        // JSON escapes: the attribute name the bridge echoes holds a real newline, ESC and a C1 CSI.
        try await harness.publish("tradfri/hallway/set", #"{"x\n\#(forged)\u001b[2J\u009b31m":1}"#)
        let warning = try await bridge.waitForLine(within: .seconds(10), "the warning") {
            $0.contains("command not carried out")
        }
        print(warning)
        #expect(warning.contains(#"x\n\#(forged)\x1b[2J\x9b31m"#), "\(warning)")
        #expect(!bridge.output.contains { $0.hasPrefix("2026-01-01T10:00:00Z") })
        #expect(!bridge.outputText.unicodeScalars.contains { $0 == "\u{1B}" || $0 == "\u{9B}" })
        await harness.shutdown()
    }

    /// An hour without the gateway, compressed: the reconnect cap is 1 s instead of 60 s and the
    /// summary interval 10 s instead of 10 min, so about as many attempts and summaries as in a
    /// real hour happen in a minute. The log gets the first warning and one summary per interval,
    /// and the bridge spends next to no CPU meanwhile.
    @Test func anHourOfGatewayOutageLogsAHandfulOfLines() async throws {
        let harness = try await BridgeHarness()
        let configuration = """
            gateway:
              address: \(harness.gateway)
              credentials: \(harness.credentials)
              keepalive: 1
              request_timeout: 2
              reconnect_max_delay: 1
            mqtt:
              server: \(harness.broker.url)
              client_id: bridge-outage-\(UUID().uuidString.prefix(6))
            discovery:
              enabled: false
              advertise: false
            logging:
              repeat_interval: 10
            """
        try configuration.write(toFile: harness.configFile, atomically: true, encoding: .utf8)
        let bridge = try ChildProcess("tradfri-bridge", ["run", "--config", harness.configFile])
        try await bridge.waitForLine(within: .seconds(20), "the first sync") { $0.contains("in sync with the gateway") }

        await harness.simulator.stop()
        let outageStart = bridge.lineCount
        let cpuBefore = try cpuTime(of: bridge.pid)
        // Six summaries of the attempts: six intervals ("10 minutes") of outage.
        let summaries = Summaries()
        try await bridge.waitForLine(within: .seconds(120), "six summaries", after: outageStart) { line in
            line.contains("cannot connect to the gateway (…") && summaries.add(line) == 6
        }
        let cpu = try cpuTime(of: bridge.pid) - cpuBefore
        let outage = Array(bridge.output[outageStart...])
        let attempts = 1 + summaries.counted
        print(
            "outage: \(attempts) attempts, \(outage.count) log lines, CPU \(cpu) s:\n" + outage.joined(separator: "\n"))
        // About one attempt a second, each one a warning before; now a line per interval.
        #expect(attempts >= 50)
        #expect(outage.count <= 12)
        #expect(outage.filter { $0.contains("cannot connect to the gateway") }.count == 7)
        #expect(cpu < 2.0)

        // The gateway is back: that is logged at once, in full.
        try await harness.restartSimulator()
        try await bridge.waitForLine(within: .seconds(20), "the reconnection", after: outageStart) {
            $0.contains("connected to the gateway") && !$0.contains("cannot")
        }
        bridge.signal(SIGTERM)
        _ = try await bridge.waitForExit()
        await harness.shutdown()
    }

    /// The summaries seen so far and the repeats they counted.
    final class Summaries: @unchecked Sendable {
        // @unchecked: guarded by `lock`.
        private let lock = NSLock()
        private var seen: [String] = []
        private var total = 0

        /// Records `line` once; returns how many summaries there are now.
        func add(_ line: String) -> Int {
            lock.withLock {
                if !seen.contains(line) {
                    seen.append(line)
                    if let range = line.range(of: "(… ") {
                        total += Int(line[range.upperBound...].prefix { $0.isNumber }) ?? 0
                    }
                }
                return seen.count
            }
        }

        var counted: Int { lock.withLock { total } }
    }

    /// User plus system CPU time of a process, in seconds (/proc/<pid>/stat).
    func cpuTime(of pid: Int32) throws -> Double {
        let stat = try String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)
        // Fields after the command name (which is in parentheses and may hold spaces).
        let fields = stat[stat.index(after: stat.lastIndex(of: ")")!)...].split(separator: " ")
        let ticks = Double(fields[11])! + Double(fields[12])!
        return ticks / Double(sysconf(Int32(_SC_CLK_TCK)))
    }
}
