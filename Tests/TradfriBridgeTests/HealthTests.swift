import Foundation
import HubModel
import TestSupport
import Testing

/// `<base>/bridge/health` and `/metrics` of the real bridge binary: the figures are true (memory,
/// CPU and uptime as /proc shows the process; commands, notifications and reconnects as they
/// happened), the topic is retained and comes every `health.interval` and on request, and the
/// Prometheus scrape says the same.
@Suite(.serialized) struct HealthTests {
    @Test func theHealthTopicAndTheMetricsShowTrueFigures() async throws {
        let harness = try await BridgeHarness()
        let metricsPort = freePort()
        let launched = ContinuousClock.now
        try await harness.startBridge(
            extraConfiguration: """
                health:
                  interval: 2
                metrics:
                  enabled: true
                  listen: 127.0.0.1:\(metricsPort)
                """)
        let bridge = try #require(harness.bridge)
        let watcher = try await harness.subscribe([
            "tradfri/bridge/health", "tradfri/bridge/response/health", "tradfri/+",
        ])

        // Retained, and again every 2 s (measured between two periodic reports: the retained one
        // may be the report sent on connecting, off the period).
        _ = try await message(on: "tradfri/bridge/health", from: watcher)
        let mark = watcher.lineCount
        let first = try await message(on: "tradfri/bridge/health", from: watcher, within: .seconds(5), after: mark)
        let next = try await message(
            on: "tradfri/bridge/health", from: watcher, within: .seconds(5), after: watcher.lineCount)
        let interval = try #require(Self.date(next["timestamp"])).timeIntervalSince(
            try #require(Self.date(first["timestamp"])))
        #expect((1...4).contains(interval), "about health.interval apart: \(interval)")
        #expect(next["healthy"] == true && next["version"]?.stringValue?.isEmpty == false)
        #expect(next["gateways"]?["gateway"]?["state"] == "online")
        #expect(next["broker"]?["connected"] == true && next["broker"]?["reconnects"] == 0)

        // The process, as /proc shows it.
        let process = try #require(next["process"])
        let rss = try Self.proc(bridge.pid, "VmRSS")
        let memory = try #require(process["memory_used_mib"]?.doubleValue) * 1024
        #expect(abs(memory - Double(rss)) < Double(rss) * 0.2, "memory \(memory) kB, /proc \(rss) kB")
        let uptime = try #require(process["uptime_sec"]?.doubleValue)
        #expect(uptime <= (ContinuousClock.now - launched).seconds + 1 && uptime >= 1)
        let cpu = try #require(process["cpu_seconds"]?.doubleValue)
        let cpuNow = try Self.cpuSeconds(bridge.pid)
        #expect(cpu > 0 && cpu <= cpuNow + 0.05)

        // Three commands, and a change made in the IKEA app.
        for (light, level) in [("hallway", 40), ("living_room_ceiling", 41), ("reading_lamp", 42)] {
            try await harness.publish("tradfri/\(light)/set", #"{"state":"ON","brightness":\#(level)}"#)
            try await message(on: "tradfri/\(light)", from: watcher, after: mark) {
                $0["brightness"]?.intValue == level
            }
        }
        let before = try await Self.request(harness, watcher)
        let gateway = try #require(before["gateways"]?["gateway"])
        #expect(gateway["commands_sent"] == 3, "\(gateway)")
        #expect(gateway["commands_failed"] == 0)
        #expect(gateway["command_queue"] == 0)
        let notified = gateway["notifications"]?.intValue ?? 0
        _ = try await harness.coap("put", "15001/65550", #"{"3311":[{"5850":1,"5851":99}]}"#)
        try await message(on: "tradfri/spot_a1", from: watcher, after: mark) { $0["brightness"] == 99 }
        let after = try await Self.request(harness, watcher)
        let changed = try #require(after["gateways"]?["gateway"])
        #expect((changed["notifications"]?.intValue ?? 0) > notified)
        #expect((changed["last_notification_sec"]?.doubleValue ?? 99) < 3)
        #expect(Self.date(changed["last_notification"]).map { abs($0.timeIntervalSinceNow) < 5 } == true)

        // The same figures, scraped.
        let scrape = try await runCommand(
            "curl", ["-s", "-i", "--max-time", "5", "http://127.0.0.1:\(metricsPort)/metrics"])
        #expect(scrape.output.contains("Content-Type: text/plain; version=0.0.4"), "\(scrape.output.prefix(300))")
        let metrics = Self.metrics(scrape.output)
        #expect(metrics[#"tradfri_gateway_commands_sent_total{gateway="gateway"}"#] == 3)
        #expect(metrics[#"tradfri_gateway_connected{gateway="gateway"}"#] == 1)
        #expect(metrics["tradfri_broker_connected"] == 1)
        #expect(metrics["tradfri_bridge_healthy"] == 1)
        #expect(abs((metrics["process_resident_memory_bytes"] ?? 0) / 1024 - Double(rss)) < Double(rss) * 0.2)
        let elsewhere = try await runCommand(
            "curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:\(metricsPort)/"])
        #expect(elsewhere.output == "404", "only /metrics is served")

        // A reconnect each: the gateway restarted, the broker restarted.
        try await harness.restartSimulator()
        await harness.broker.stop()
        try await harness.broker.start()
        let back = try await harness.subscribe(["tradfri/bridge/health"])
        let recovered = try await message(on: "tradfri/bridge/health", from: back, within: .seconds(30)) {
            $0["gateways"]?["gateway"]?["reconnects"] == 1 && $0["broker"]?["reconnects"] == 1
                && $0["healthy"] == true
        }
        #expect(recovered["gateways"]?["gateway"]?["state"] == "online")
        back.signal(SIGTERM)
        watcher.signal(SIGTERM)
        await harness.shutdown()
    }

    /// Off unless asked for: with the web page turned off, the default configuration serves
    /// nothing.
    @Test func theMetricsEndpointIsOffByDefault() async throws {
        let harness = try await BridgeHarness()
        try await harness.startBridge(extraConfiguration: "web:\n  enabled: false")
        let bridge = try #require(harness.bridge)
        #expect(!bridge.outputText.contains("serving Prometheus metrics"))
        let sockets = try String(contentsOfFile: "/proc/\(bridge.pid)/net/tcp", encoding: .utf8)
        let listening = sockets.split(separator: "\n").dropFirst().filter { $0.split(separator: " ")[3] == "0A" }
        // Listening sockets of the whole network namespace; none may be the bridge's.
        let inodes = try Self.socketInodes(of: bridge.pid)
        #expect(listening.allSatisfy { !inodes.contains(String($0.split(separator: " ")[9])) })
        await harness.shutdown()
    }

    // MARK: Helpers

    /// `bridge/request/health`: the answer's data, which the bridge also publishes.
    static func request(_ harness: BridgeHarness, _ watcher: ChildProcess) async throws -> JSON {
        let mark = watcher.lineCount
        try await harness.publish("tradfri/bridge/request/health", "")
        let answer = try await message(on: "tradfri/bridge/response/health", from: watcher, after: mark)
        #expect(answer["status"] == "ok")
        let data = try #require(answer["data"])
        try await message(on: "tradfri/bridge/health", from: watcher, after: mark) { $0 == data }
        return data
    }

    static func date(_ value: JSON?) -> Date? {
        value?.stringValue.flatMap { ISO8601DateFormatter().date(from: $0) }
    }

    /// A `kB` figure of /proc/<pid>/status.
    static func proc(_ pid: Int32, _ name: String) throws -> Int {
        let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
        let line = try #require(status.split(separator: "\n").first { $0.hasPrefix(name + ":") })
        return Int(line.split(whereSeparator: \.isWhitespace)[1]) ?? 0
    }

    static func cpuSeconds(_ pid: Int32) throws -> Double {
        let stat = try String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)
        let fields = stat[stat.index(after: stat.lastIndex(of: ")")!)...].split(separator: " ")
        return (Double(fields[11])! + Double(fields[12])!) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    static func socketInodes(of pid: Int32) throws -> Set<String> {
        let descriptors = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")
        return Set(
            descriptors.compactMap { fd in
                let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/\(fd)")
                guard let target, target.hasPrefix("socket:[") else { return nil }
                return String(target.dropFirst(8).dropLast())
            })
    }

    /// `name{labels} value` lines of a Prometheus text scrape.
    static func metrics(_ text: String) -> [String: Double] {
        var values: [String: Double] = [:]
        for line in text.split(whereSeparator: \.isNewline) where !line.hasPrefix("#") {
            let parts = line.split(separator: " ")
            if parts.count == 2, let value = Double(parts[1]) { values[String(parts[0])] = value }
        }
        return values
    }
}

extension Duration {
    var seconds: Double {
        let (whole, fraction) = components
        return Double(whole) + Double(fraction) / 1e18
    }
}
