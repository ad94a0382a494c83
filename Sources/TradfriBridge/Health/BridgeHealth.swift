import CoAP
import Foundation
import HubModel
import Logging
import MQTT

/// `<base>/bridge/health`: the bridge's health (`HealthReport`), retained.
///
/// Contract:
/// - Published when the broker connection comes up (each time: retained figures from before an
///   outage would mislead), every `health.interval` seconds (`HealthReporter` calls
///   `publishPeriodic()`; 0: never), and on request: `bridge/request/health` answers with the
///   report and publishes it.
/// - Rates are averaged over the window since the previous periodic report; only a periodic
///   report starts a new window, so a report on request never shortens the next one.
/// - Gathering reads counters the hubs and the MQTT client keep anyway, and `/proc/self`:
///   nothing is counted per message for it.
@CoAPActor
public final class BridgeHealth: BridgeFeature {
    private let context: BridgeContext
    private let mqtt: MQTTClient
    private let now: @Sendable () -> Date
    /// Monotonic seconds (any origin).
    private let monotonic: @Sendable () -> Double
    private let started: Double
    private var window: HealthWindow
    private let logger = Logger(label: "health")

    init(
        context: BridgeContext, mqtt: MQTTClient, now: @escaping @Sendable () -> Date = { Date() },
        monotonic: @escaping @Sendable () -> Double = { BridgeHealth.monotonicSeconds() }
    ) {
        self.context = context
        self.mqtt = mqtt
        self.now = now
        self.monotonic = monotonic
        started = monotonic()
        window = HealthWindow(
            start: started, cpuSeconds: ProcessFigures.current().cpuSeconds, messages: 0, notifications: [:])
    }

    private nonisolated static let origin = ContinuousClock.now

    /// Seconds on the monotonic clock since the first call.
    nonisolated static func monotonicSeconds() -> Double {
        let (seconds, attoseconds) = (ContinuousClock.now - origin).components
        return Double(seconds) + Double(attoseconds) / 1e18
    }

    public func handle(_ event: BridgeEvent) {
        if case .brokerConnected = event { publish(report()) }
    }

    /// The health now (rates over the current window).
    public func report() -> HealthReport {
        let time = monotonic()
        let process = ProcessFigures.current()
        let client = mqtt.statistics
        let messages = client.published + client.received
        let gateways = context.hubs.map { hub in
            let statistics = hub.statistics
            return HealthReport.Gateway(
                name: hub.name, state: hub.sessionState, connected: hub.connected,
                lastNotification: statistics.lastNotification,
                notificationsPerSecond: window.rate(
                    Double(statistics.notifications), from: Double(window.notifications[hub.name] ?? 0), at: time),
                statistics: statistics)
        }
        return HealthReport(
            timestamp: now(), version: BridgeVersion.current, uptime: time - started,
            residentBytes: process.residentBytes, peakResidentBytes: process.peakResidentBytes,
            cpuSeconds: process.cpuSeconds,
            cpuPercent: window.rate(process.cpuSeconds, from: window.cpuSeconds, at: time) * 100,
            gateways: gateways,
            broker: HealthReport.Broker(
                connected: client.connections > 0 && mqtt.isConnected, reconnects: client.reconnects,
                publishQueue: client.unacknowledged, published: client.published, received: client.received),
            messagesPerSecond: window.rate(Double(messages), from: Double(window.messages), at: time))
    }

    /// The periodic report: published, and a new rate window starts.
    public func publishPeriodic() {
        let report = report()
        publish(report)
        window = HealthWindow(
            start: monotonic(), cpuSeconds: report.cpuSeconds,
            messages: report.broker.published + report.broker.received,
            notifications: Dictionary(
                report.gateways.map { ($0.name, $0.statistics.notifications) }, uniquingKeysWith: { a, _ in a }))
    }

    func publish(_ report: HealthReport) {
        context.outbox.publishState(context.topic("bridge/health"), report.json, retain: true)
    }

    /// `bridge/request/health`: the report as the answer, and published.
    func register(in requests: BridgeRequests) {
        requests.register(verb: "health") { [weak self] request in
            try request.allowOnly([])
            guard let self else { return [:] }
            let report = self.report()
            self.publish(report)
            return report.json
        }
    }
}
