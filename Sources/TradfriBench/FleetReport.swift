import Foundation
import HubModel

/// The numbers of one `tradfri-bench fleet` run and how to print them.
struct FleetReport: Sendable {
    /// What the bridge published under its base topic from its start until the sync was
    /// complete (last run).
    struct SyncTraffic: Sendable {
        var messages = 0
        var bytes = 0
        var devicesListings = 0
        var devicesListingBytes = 0
        var groupsListings = 0
        var groupsListingBytes = 0
    }

    struct Gateway: Sendable {
        var name: String
        var latency: Latency
    }

    var options: FleetOptions
    var processors = Machine.processors
    var cpuModel = Machine.cpuModel
    var system = Machine.system
    var loadBefore = Machine.loadAverage()
    var loadAfter = Double.nan
    var bridgeBinary = ""
    var staticStdlib = false

    /// Start → every light state of every gateway and a complete bridge/devices, per run.
    var syncMilliseconds: [Double] = []
    /// Start → that, and every room state and bridge/groups with every scene, per run.
    var completeSyncMilliseconds: [Double] = []
    /// Devices per gateway in the last run's complete bridge/devices.
    var devicesByGateway: [String: Int] = [:]
    var syncTraffic = SyncTraffic()
    /// Change → MQTT, per gateway.
    var gateways: [Gateway] = []
    /// Changes the load generator started (PUTs sent by the app clients).
    var driven = 0
    var bridgeCPUMilliseconds = 0.0
    var brokerCPUMilliseconds = 0.0
    var benchCPUMilliseconds = 0.0
    var rssAfterSyncKiB = 0
    var rssAtEndKiB = 0
    var peakRSSKiB = 0
    var anonymousKiB = 0
    var threadsAfterSync = 0
    var threads = 0

    init(options: FleetOptions) {
        self.options = options
    }

    // MARK: Derived values

    /// Every gateway's samples together.
    var pooled: Latency { gateways.reduce(Latency.empty) { $0 + $1.latency } }
    /// PUTs the gateways carried out (the starts of the latencies).
    var applied: Int { gateways.reduce(0) { $0 + $1.latency.expected } }
    var syncMedian: Double { Self.median(syncMilliseconds) }
    var completeSyncMedian: Double { Self.median(completeSyncMilliseconds) }
    func perThousand(_ milliseconds: Double) -> Double { milliseconds / Double(max(applied, 1)) * 1000 }
    /// Every gateway listed in bridge/devices with all its lights.
    var everyGatewayComplete: Bool {
        devicesByGateway.count == options.gateways && devicesByGateway.values.allSatisfy { $0 == options.lights }
    }

    static func median(_ values: [Double]) -> Double {
        Latency(samples: values, expected: values.count).p50
    }

    // MARK: Table

    var table: String {
        var lines: [String] = []
        let pooled = pooled
        let total = options.gateways * options.lights
        lines.append(
            "tradfri-bench fleet: \(options.gateways) gateways × \(options.lights) lights, \(options.groups) groups, "
                + "\(options.groups * 2) scenes each (\(total) lights in all); one bridge; loopback")
        lines.append("machine: \(processors) × \(cpuModel); \(system)")
        lines.append(String(format: "load average: %.2f before, %.2f after", loadBefore, loadAfter))
        lines.append("bridge: \(bridgeBinary) (Swift runtime \(staticStdlib ? "static" : "dynamic"))")
        lines.append("")
        lines.append(
            "1 initial sync (start → every light state of every gateway and bridge/devices with all \(total)): "
                + String(format: "%.0f ms median", syncMedian) + " of "
                + syncMilliseconds.map { String(format: "%.0f", $0) }.joined(separator: ", ") + " ms")
        lines.append(
            "  with every room state and bridge/groups too (the one-gateway definition): "
                + String(format: "%.0f ms median", completeSyncMedian) + " of "
                + completeSyncMilliseconds.map { String(format: "%.0f", $0) }.joined(separator: ", ") + " ms")
        let listed = devicesByGateway.sorted { $0.key < $1.key }.map { "\($0.value)" }
        lines.append(
            "  bridge/devices: \(devicesByGateway.count) gateways, "
                + (everyGatewayComplete
                    ? "\(options.lights) lights each"
                    : "lights per gateway " + listed.joined(separator: ", ")))
        lines.append(
            String(
                format:
                    "  published under the base topic until then: %d messages, %.1f MB; bridge/devices %d times (%.1f MB), bridge/groups %d times (%.1f MB)",
                syncTraffic.messages, Double(syncTraffic.bytes) / 1e6, syncTraffic.devicesListings,
                Double(syncTraffic.devicesListingBytes) / 1e6, syncTraffic.groupsListings,
                Double(syncTraffic.groupsListingBytes) / 1e6))
        lines.append("")
        lines.append(
            "latency (µs)".padding(toLength: 56, withPad: " ", startingAt: 0)
                + "      p50      p90      p99      max  samples     lost")
        let perGateway = options.rate / Double(max(options.gateways, 1))
        lines.append(
            "2 gateway change → MQTT, \(Int(options.rate))/s in all".padding(toLength: 56, withPad: " ", startingAt: 0)
                + [pooled.p50, pooled.percentile(0.9), pooled.p99, pooled.max].map { String(format: "%9.0f", $0) }
                .joined()
                + String(format: "%9d%9d", pooled.count, pooled.missing))
        lines.append(
            String(
                format: "  (%.3g/s on each of %d gateways at once, %.0f s; pooled over gateways, matched per gateway)",
                perGateway, options.gateways, options.seconds))
        if let middles = spread(\.p50), let tails = spread(\.p99) {
            lines.append(
                String(
                    format: "  per gateway: p50 %.0f–%.0f µs, p99 %.0f–%.0f µs, lost ", middles.low, middles.high,
                    tails.low, tails.high)
                    + gateways.map { String($0.latency.missing) }.joined(separator: "/"))
        }
        lines.append("  PUTs carried out at the gateways: \(applied) of \(driven) sent by the app clients")
        lines.append("")
        lines.append(
            String(
                format:
                    "3 footprint: peak RSS %.1f MiB (%.1f MiB after sync, %.1f MiB at the end, %.1f MiB of it private)",
                Double(peakRSSKiB) / 1024, Double(rssAfterSyncKiB) / 1024, Double(rssAtEndKiB) / 1024,
                Double(anonymousKiB) / 1024))
        lines.append(
            String(
                format: "  bridge CPU %.0f ms per 1000 changes; %d threads (%d after sync)",
                perThousand(bridgeCPUMilliseconds), threads, threadsAfterSync))
        lines.append(
            String(
                format:
                    "  the same changes cost mosquitto %.0f ms and this process (simulators, app clients, subscriber) %.0f ms per 1000",
                perThousand(brokerCPUMilliseconds), perThousand(benchCPUMilliseconds)))
        return lines.joined(separator: "\n")
    }

    /// Lowest and highest of a per-gateway figure.
    private func spread(_ figure: KeyPath<Latency, Double>) -> (low: Double, high: Double)? {
        let values = gateways.map { $0.latency[keyPath: figure] }.filter { $0.isFinite }
        guard let low = values.min(), let high = values.max() else { return nil }
        return (low, high)
    }

    // MARK: JSON

    var json: JSON {
        func latency(_ value: Latency) -> JSON {
            [
                "p50_us": number(value.p50, 1), "p90_us": number(value.percentile(0.9), 1),
                "p99_us": number(value.p99, 1), "max_us": number(value.max, 1), "samples": .int(value.count),
                "lost": .int(value.missing),
            ]
        }
        func number(_ value: Double, _ digits: Double = 10) -> JSON {
            value.isFinite ? .double((value * digits).rounded() / digits) : .null
        }
        var byGateway: [String: JSON] = [:]
        for gateway in gateways { byGateway[gateway.name] = latency(gateway.latency) }
        return [
            "machine": [
                "processors": .int(processors), "cpu": .string(cpuModel), "system": .string(system),
                "load_before": number(loadBefore, 100), "load_after": number(loadAfter, 100),
            ],
            "setup": [
                "gateways": .int(options.gateways), "lights_per_gateway": .int(options.lights),
                "groups_per_gateway": .int(options.groups), "scenes_per_gateway": .int(options.groups * 2),
                "rate": number(options.rate), "seconds": number(options.seconds), "bridge": .string(bridgeBinary),
                "static_swift_runtime": .bool(staticStdlib),
            ],
            "initial_sync_ms": [
                "median": number(syncMedian), "runs": .array(syncMilliseconds.map { number($0) }),
                "with_rooms_and_groups_median": number(completeSyncMedian),
                "with_rooms_and_groups_runs": .array(completeSyncMilliseconds.map { number($0) }),
                "devices_by_gateway": .object(devicesByGateway.mapValues { .int($0) }),
                "published_messages": .int(syncTraffic.messages), "published_bytes": .int(syncTraffic.bytes),
                "bridge_devices_messages": .int(syncTraffic.devicesListings),
                "bridge_devices_bytes": .int(syncTraffic.devicesListingBytes),
                "bridge_groups_messages": .int(syncTraffic.groupsListings),
                "bridge_groups_bytes": .int(syncTraffic.groupsListingBytes),
            ],
            "gateway_to_mqtt": [
                "pooled": latency(pooled), "by_gateway": .object(byGateway), "sent": .int(driven),
                "carried_out": .int(applied),
            ],
            "footprint": [
                "peak_rss_kib": .int(peakRSSKiB), "rss_after_sync_kib": .int(rssAfterSyncKiB),
                "rss_at_end_kib": .int(rssAtEndKiB), "rss_anonymous_kib": .int(anonymousKiB),
                "cpu_ms_per_1000_changes": number(perThousand(bridgeCPUMilliseconds)),
                "mosquitto_cpu_ms_per_1000_changes": number(perThousand(brokerCPUMilliseconds)),
                "benchmark_cpu_ms_per_1000_changes": number(perThousand(benchCPUMilliseconds)),
                "threads": .int(threads), "threads_after_sync": .int(threadsAfterSync),
            ],
        ]
    }
}
