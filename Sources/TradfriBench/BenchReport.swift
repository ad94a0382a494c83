import Foundation
import HubModel
import TradfriModel

/// The numbers of one run, the targets they are held against, and how to print them.
struct BenchReport: Sendable {
    struct Step: Sendable {
        var rate: Double
        var latency: Latency
    }

    // The targets of the issue (loopback, this 2-core machine).
    static let ratioTarget = 1.25
    static let p99Target = 3000.0  // µs at the steady rate
    static let syncTarget = 1000.0  // ms
    static let rssTarget = 20 * 1024  // KiB
    /// Idle CPU counted as zero: what top and ps print as 0.0 % (under 0.05 % of one core).
    static let idleTarget = 0.0005

    var options: BenchOptions
    var processors = Machine.processors
    var cpuModel = Machine.cpuModel
    var system = Machine.system
    var loadBefore = Machine.loadAverage()
    var loadAfter = Double.nan
    var bridgeBinary = ""
    var staticStdlib = false

    var syncMilliseconds: [Double] = []
    var rawCoAP = Latency.empty
    var rawCoAPBursts = Latency.empty
    var rawMQTT = Latency.empty
    var rawMQTTBursts = Latency.empty
    var bridge = Latency.empty
    var bridgeBursts = Latency.empty
    var commands = Latency.empty
    var commandBursts = Latency.empty
    var capacity: Double?
    var capacitySteps: [Step] = []
    var capacityRawCoAP: Step?
    var rssAfterSyncKiB = 0
    var peakRSSKiB = 0
    /// Private memory (heap, stacks) at the end, of the RSS then.
    var anonymousKiB = 0
    var bridgeCPUMilliseconds = 0.0
    var bridgeChanges = 0
    var observerCPUMilliseconds = 0.0
    var observerChanges = 0
    var idleSeconds = 0.0
    var idleCPUMilliseconds = 0.0
    var idleThreadCPUMilliseconds = 0.0
    var idleWakeups = 0
    var observerIdleCPUMilliseconds = 0.0
    var observerIdleWakeups = 0
    var threads = 0

    init(options: BenchOptions) {
        self.options = options
    }

    // MARK: Derived values

    var rawSum: Double { rawCoAP.p50 + rawMQTT.p50 }
    var ratio: Double { bridge.p50 / rawSum }
    var burstRatio: Double { bridgeBursts.p50 / (rawCoAPBursts.p50 + rawMQTTBursts.p50) }
    var syncMedian: Double { Latency(samples: syncMilliseconds, expected: syncMilliseconds.count).p50 }
    var cpuPerThousand: Double { bridgeCPUMilliseconds / Double(max(bridgeChanges, 1)) * 1000 }
    var observerCPUPerThousand: Double { observerCPUMilliseconds / Double(max(observerChanges, 1)) * 1000 }
    var idleShare: Double { idleThreadCPUMilliseconds / (idleSeconds * 1000) }

    var targets: [(name: String, met: Bool, detail: String)] {
        [
            (
                "gateway change → MQTT p50 ≤ 1.25 × raw hops", ratio <= Self.ratioTarget,
                String(format: "%.2f×", ratio)
            ),
            (
                "gateway change → MQTT p99 < 3 ms at \(Int(options.rate))/s", bridge.p99 < Self.p99Target,
                String(format: "%.2f ms", bridge.p99 / 1000)
            ),
            ("initial sync < 1 s", syncMedian < Self.syncTarget, String(format: "%.0f ms", syncMedian)),
            (
                "peak RSS < 20 MiB", peakRSSKiB > 0 && peakRSSKiB < Self.rssTarget,
                String(format: "%.1f MiB", Double(peakRSSKiB) / 1024)
            ),
            (
                "idle CPU indistinguishable from zero (top shows 0.0 %: < 0.05 %)", idleShare < Self.idleTarget,
                String(format: "%.4f %%", idleShare * 100)
            ),
        ]
    }

    // MARK: Table

    var table: String {
        var lines: [String] = []
        func row(_ label: String, _ latency: Latency) {
            lines.append(
                label.padding(toLength: 56, withPad: " ", startingAt: 0)
                    + [latency.p50, latency.p99, latency.max].map { String(format: "%9.0f", $0) }.joined()
                    + String(format: "%9d%9d", latency.count, latency.missing))
        }
        let scenes = options.groups * 2
        lines.append("tradfri-bench: \(options.lights) lights, \(options.groups) groups, \(scenes) scenes; loopback")
        lines.append("machine: \(processors) × \(cpuModel); \(system)")
        lines.append(String(format: "load average: %.2f before, %.2f after", loadBefore, loadAfter))
        lines.append("bridge: \(bridgeBinary) (Swift runtime \(staticStdlib ? "static" : "dynamic"))")
        lines.append("")
        lines.append(
            "latency (µs)".padding(toLength: 56, withPad: " ", startingAt: 0)
                + "      p50      p99      max  samples  missing")
        let rate = Int(options.rate)
        let burst = "bursts of \(options.burstSize) every \(Int(options.burstInterval * 1000)) ms"
        row("1 gateway change → MQTT, \(rate)/s", bridge)
        row("  gateway change → MQTT, \(burst)", bridgeBursts)
        row("6 raw CoAP observe hop, \(rate)/s", rawCoAP)
        row("  raw CoAP observe hop, \(burst)", rawCoAPBursts)
        row("  raw mosquitto publish → deliver, \(rate)/s", rawMQTT)
        row("  raw mosquitto hop, \(burst)", rawMQTTBursts)
        lines.append(
            String(
                format: "  bridge p50 / (raw CoAP p50 + raw MQTT p50): %.0f / (%.0f + %.0f) = %.2f× (bursts %.2f×)",
                bridge.p50, rawCoAP.p50, rawMQTT.p50, ratio, burstRatio))
        row("2 MQTT set → gateway, \(Int(options.setRate))/s, distinct devices", commands)
        row("  MQTT set → gateway, bursts of \(options.setBurst) devices", commandBursts)
        lines.append("")
        lines.append(
            "3 initial sync (start → every state retained): "
                + String(format: "%.0f ms median", syncMedian) + " of "
                + syncMilliseconds.map { String(format: "%.0f", $0) }.joined(separator: ", ") + " ms")
        var capacityLine =
            "4 capacity (p99 ≤ \(Int(options.capacityLimit / 1000)) ms): "
            + (capacity.map { "\(Int($0)) changes/s" } ?? "below \(Int(options.capacityRates.first ?? 0)) changes/s")
        if let failed = capacitySteps.last, failed.rate != capacity {
            capacityLine += String(
                format: "; at %d/s p99 %.1f ms, %d of %d missing", Int(failed.rate), failed.latency.p99 / 1000,
                failed.latency.missing, failed.latency.expected)
        } else if capacity == options.capacityRates.last {
            capacityLine += " (the highest rate tried)"
        }
        lines.append(capacityLine)
        if let raw = capacityRawCoAP {
            lines.append(
                String(
                    format: "  raw CoAP hop alone at %d/s: p99 %.1f ms, %d of %d missing", Int(raw.rate),
                    raw.latency.p99 / 1000, raw.latency.missing, raw.latency.expected))
        }
        lines.append(
            String(
                format:
                    "5 footprint: peak RSS %.1f MiB (%.1f MiB after sync; %.1f MiB of it private); CPU %.0f ms per 1000 changes; %d threads",
                Double(peakRSSKiB) / 1024, Double(rssAfterSyncKiB) / 1024, Double(anonymousKiB) / 1024, cpuPerThousand,
                threads))
        lines.append(
            String(
                format: "  (the raw CoAP observer alone: CPU %.0f ms per 1000 notifications)", observerCPUPerThousand))
        lines.append(
            String(
                format:
                    "  idle %.0f s: CPU %.1f ms (%.4f %% of a core), %d thread wake-ups; the raw observer (no keep-alive) %.1f ms, %d",
                idleSeconds, idleThreadCPUMilliseconds, idleShare * 100, idleWakeups, observerIdleCPUMilliseconds,
                observerIdleWakeups))
        lines.append("")
        lines.append("targets")
        for target in targets {
            lines.append("  \(target.met ? "met    " : "MISSED ") \(target.name): \(target.detail)")
        }
        return lines.joined(separator: "\n")
    }

    // MARK: JSON

    var json: JSON {
        func latency(_ value: Latency) -> JSON {
            [
                "p50_us": .double(value.p50.rounded()), "p99_us": .double(value.p99.rounded()),
                "max_us": .double(value.max.rounded()), "samples": .int(value.count), "missing": .int(value.missing),
            ]
        }
        func number(_ value: Double, _ digits: Double = 10) -> JSON {
            value.isFinite ? .double((value * digits).rounded() / digits) : .null
        }
        return [
            "machine": [
                "processors": .int(processors), "cpu": .string(cpuModel), "system": .string(system),
                "load_before": number(loadBefore, 100), "load_after": number(loadAfter, 100),
            ],
            "setup": [
                "lights": .int(options.lights), "groups": .int(options.groups), "scenes": .int(options.groups * 2),
                "rate": number(options.rate), "burst_size": .int(options.burstSize),
                "burst_interval_ms": number(options.burstInterval * 1000), "rounds": .int(options.rounds),
                "segment_seconds": number(options.segmentSeconds), "bridge": .string(bridgeBinary),
                "static_swift_runtime": .bool(staticStdlib),
            ],
            "gateway_to_mqtt": ["steady": latency(bridge), "bursts": latency(bridgeBursts)],
            "raw_coap": ["steady": latency(rawCoAP), "bursts": latency(rawCoAPBursts)],
            "raw_mqtt": ["steady": latency(rawMQTT), "bursts": latency(rawMQTTBursts)],
            "overhead_ratio": ["steady": number(ratio, 100), "bursts": number(burstRatio, 100)],
            "mqtt_to_gateway": [
                "rate": number(options.setRate), "steady": latency(commands), "bursts": latency(commandBursts),
                "burst_size": .int(options.setBurst),
            ],
            "initial_sync_ms": ["median": number(syncMedian), "runs": .array(syncMilliseconds.map { number($0) })],
            "capacity": [
                "changes_per_second": capacity.map { .double($0) } ?? .null,
                "p99_limit_us": number(options.capacityLimit),
                "steps": .array(capacitySteps.map { ["rate": .double($0.rate), "latency": latency($0.latency)] }),
                "raw_coap_at_failing_rate": capacityRawCoAP.map {
                    ["rate": .double($0.rate), "latency": latency($0.latency)]
                }
                    ?? .null,
            ],
            "footprint": [
                "peak_rss_kib": .int(peakRSSKiB), "rss_after_sync_kib": .int(rssAfterSyncKiB),
                "cpu_ms_per_1000_changes": number(cpuPerThousand), "threads": .int(threads),
                "raw_observer_cpu_ms_per_1000_notifications": number(observerCPUPerThousand),
                "rss_anonymous_kib": .int(anonymousKiB),
                "idle_seconds": number(idleSeconds), "idle_cpu_ms": number(idleThreadCPUMilliseconds, 1000),
                "idle_cpu_ms_from_stat": number(idleCPUMilliseconds), "idle_wakeups": .int(idleWakeups),
                "raw_observer_idle_cpu_ms": number(observerIdleCPUMilliseconds, 1000),
                "raw_observer_idle_wakeups": .int(observerIdleWakeups),
            ],
            "targets": .array(
                targets.map { ["name": .string($0.name), "met": .bool($0.met), "value": .string($0.detail)] }),
        ]
    }
}
