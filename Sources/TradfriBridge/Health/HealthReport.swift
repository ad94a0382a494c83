import Foundation
import HubModel

/// The bridge's health at one moment: what `<base>/bridge/health` carries, what the Home
/// Assistant sensors show and what `/metrics` exports. Pure: built from figures the caller
/// gathered (`BridgeHealth`), so every payload is testable without a process.
///
/// `<base>/bridge/health` (in the spirit of Zigbee2MQTT 2.x's):
///
///     {"timestamp": "2026-12-05T14:00:00Z", "healthy": true, "version": "0.1.0",
///      "process": {"uptime_sec": 3600, "memory_used_mib": 30.4, "memory_peak_mib": 31.2,
///                  "cpu_percent": 0.01, "cpu_seconds": 3.21},
///      "gateways": {"gateway": {"state": "online", "connected": true,
///                               "last_notification": "2026-12-05T13:59:58Z", "last_notification_sec": 2.1,
///                               "notifications": 812, "notifications_per_sec": 0.22, "reconnects": 1,
///                               "commands_sent": 120, "commands_failed": 2, "command_queue": 0}},
///      "broker": {"connected": true, "reconnects": 0, "publish_queue": 0, "published": 5120, "received": 130},
///      "messages_per_sec": 1.45}
///
/// Rates (`cpu_percent`, `*_per_sec`) are averages over the window since the previous periodic
/// report (at most `health.interval`, 10 minutes by default), or since start before the first.
public struct HealthReport: Sendable, Equatable {
    public struct Gateway: Sendable, Equatable {
        public var name: String
        /// `online`, `offline` or `pairing_needed` (as in `bridge/info`).
        public var state: String
        public var connected: Bool
        public var lastNotification: Date?
        public var notificationsPerSecond: Double
        public var statistics: HubStatistics
    }

    public struct Broker: Sendable, Equatable {
        public var connected: Bool
        public var reconnects: Int
        /// Messages handed to the connection and not yet written or acknowledged.
        public var publishQueue: Int
        public var published: Int
        public var received: Int
    }

    public var timestamp: Date
    public var version: String
    /// Seconds since the bridge started.
    public var uptime: Double
    public var residentBytes: Int
    public var peakResidentBytes: Int
    public var cpuSeconds: Double
    /// CPU time over the window as a percentage of one core.
    public var cpuPercent: Double
    public var gateways: [Gateway]
    public var broker: Broker
    /// MQTT messages published and received per second over the window.
    public var messagesPerSecond: Double

    /// Every gateway and the broker connected (as `health_check` says).
    public var healthy: Bool { broker.connected && gateways.allSatisfy(\.connected) }

    /// Seconds since the gateway's last notification at `timestamp`.
    public func lastNotificationAge(of gateway: Gateway) -> Double? {
        gateway.lastNotification.map { max(0, timestamp.timeIntervalSince($0)) }
    }

    public var json: JSON {
        var gateways: [String: JSON] = [:]
        for gateway in self.gateways {
            let figures = gateway.statistics
            gateways[gateway.name] = [
                "state": .string(gateway.state),
                "connected": .bool(gateway.connected),
                "last_notification": gateway.lastNotification.map { .string($0.formatted(.iso8601)) } ?? .null,
                "last_notification_sec": lastNotificationAge(of: gateway).map { .double(Self.round($0, 1)) } ?? .null,
                "notifications": .int(figures.notifications),
                "notifications_per_sec": .double(Self.round(gateway.notificationsPerSecond, 4)),
                "reconnects": .int(figures.reconnects),
                "commands_sent": .int(figures.commandsSent),
                "commands_failed": .int(figures.commandsFailed),
                "command_queue": .int(figures.queuedCommands),
            ]
        }
        return [
            "timestamp": .string(timestamp.formatted(.iso8601)),
            "healthy": .bool(healthy),
            "version": .string(version),
            "process": [
                "uptime_sec": .int(Int(uptime)),
                "memory_used_mib": .double(Self.round(Double(residentBytes) / 1_048_576, 2)),
                "memory_peak_mib": .double(Self.round(Double(peakResidentBytes) / 1_048_576, 2)),
                "cpu_percent": .double(Self.round(cpuPercent, 4)),
                "cpu_seconds": .double(Self.round(cpuSeconds, 2)),
            ],
            "gateways": .object(gateways),
            "broker": [
                "connected": .bool(broker.connected),
                "reconnects": .int(broker.reconnects),
                "publish_queue": .int(broker.publishQueue),
                "published": .int(broker.published),
                "received": .int(broker.received),
            ],
            "messages_per_sec": .double(Self.round(messagesPerSecond, 4)),
        ]
    }

    static func round(_ value: Double, _ places: Int) -> Double {
        let scale = pow(10, Double(places))
        return (value * scale).rounded() / scale
    }
}

/// Where a rate window starts: the counts at its start, to average the counts since.
struct HealthWindow: Sendable, Equatable {
    /// Monotonic seconds (any origin, the same for every window).
    var start: Double
    var cpuSeconds: Double
    var messages: Int
    var notifications: [String: Int]

    /// The average rate of a count from `startValue` at the window's start to `value` at `now`.
    func rate(_ value: Double, from startValue: Double, at now: Double) -> Double {
        let span = now - start
        guard span > 0 else { return 0 }
        return max(0, value - startValue) / span
    }
}
