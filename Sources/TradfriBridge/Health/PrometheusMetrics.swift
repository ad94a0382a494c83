import Prometheus

/// A `HealthReport` in Prometheus' text exposition format (version 0.0.4), through
/// swift-prometheus: the figures of `bridge/health`, counters as `_total` counters, each
/// gateway's under a `gateway` label, and the standard `process_*` metrics.
///
/// Every scrape renders a fresh registry from the report, so the output is exactly the report's
/// figures (no state kept between scrapes).
enum PrometheusMetrics {
    static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    static func render(_ report: HealthReport) -> [UInt8] {
        let registry = PrometheusCollectorRegistry()
        /// `name` is `namespace_subsystem_metric_unit` with `_` only between the four parts.
        func descriptor(_ name: String, _ unit: String, _ help: String) -> MetricNameDescriptor {
            let parts = name.split(separator: "_", maxSplits: 2).map(String.init)
            return MetricNameDescriptor(
                namespace: parts[0], subsystem: parts.count == 3 ? parts[1] : nil, metricName: parts.last ?? name,
                unitName: unit, helpText: help)
        }
        func gauge(_ name: String, _ unit: String, _ help: String, _ value: Double, _ labels: [(String, String)] = []) {
            registry.makeGauge(descriptor: descriptor(name, unit, help), labels: labels).set(value)
        }
        func counter(_ name: String, _ help: String, _ value: Int, _ labels: [(String, String)] = []) {
            registry.makeCounter(descriptor: descriptor(name, "total", help), labels: labels).increment(
                by: Int64(value))
        }
        func flag(_ value: Bool) -> Double { value ? 1 : 0 }

        gauge("process_resident_memory", "bytes", "Resident memory size in bytes.", Double(report.residentBytes))
        registry.makeCounter(
            descriptor: descriptor("process_cpu_seconds", "total", "Total user and system CPU time spent in seconds.")
        ).increment(by: report.cpuSeconds)
        gauge(
            "process_start_time", "seconds", "Start time of the process since the Unix epoch in seconds.",
            (report.timestamp.timeIntervalSince1970 - report.uptime).rounded())
        gauge(
            "tradfri_bridge_peak_resident_memory", "bytes", "Peak resident memory size in bytes.",
            Double(report.peakResidentBytes))
        gauge("tradfri_bridge_uptime", "seconds", "Seconds since the bridge started.", report.uptime.rounded(.down))
        gauge(
            "tradfri_bridge_cpu", "percent",
            "CPU time over the last health window (up to health.interval), in percent of one core.",
            report.cpuPercent)
        gauge("tradfri_bridge_healthy", "", "1 while every gateway and the broker are connected.", flag(report.healthy))
        gauge("tradfri_bridge_info", "", "The bridge's version.", 1, [("version", report.version)])

        let broker = report.broker
        gauge("tradfri_broker_connected", "", "1 while connected to the MQTT broker.", flag(broker.connected))
        counter("tradfri_broker_reconnects", "Connections to the broker after the first.", broker.reconnects)
        gauge(
            "tradfri_broker_publish_queue", "", "Messages not yet written to the broker or acknowledged by it.",
            Double(broker.publishQueue))
        counter("tradfri_mqtt_messages_published", "MQTT messages published.", broker.published)
        counter("tradfri_mqtt_messages_received", "MQTT messages received.", broker.received)
        gauge(
            "tradfri_mqtt_messages_per_second", "",
            "MQTT messages published and received per second over the last health window.",
            report.messagesPerSecond)

        for gateway in report.gateways {
            let label = [("gateway", gateway.name)]
            let figures = gateway.statistics
            gauge(
                "tradfri_gateway_connected", "", "1 while the gateway's session is up.", flag(gateway.connected), label)
            gauge(
                "tradfri_gateway_pairing_needed", "", "1 while the gateway refuses the bridge's identity.",
                flag(gateway.state == "pairing_needed"), label)
            if let last = gateway.lastNotification, let age = report.lastNotificationAge(of: gateway) {
                gauge(
                    "tradfri_gateway_last_notification_timestamp", "seconds",
                    "When the gateway last notified a change, since the Unix epoch.", last.timeIntervalSince1970,
                    label)
                gauge(
                    "tradfri_gateway_last_notification_age", "seconds",
                    "Seconds since the gateway last notified a change.", age, label)
            }
            counter(
                "tradfri_gateway_notifications", "Notifications the gateway sent.", figures.notifications, label)
            counter(
                "tradfri_gateway_reconnects", "Sessions with the gateway after the first.", figures.reconnects, label)
            counter("tradfri_gateway_commands_sent", "Commands sent to the gateway.", figures.commandsSent, label)
            counter(
                "tradfri_gateway_commands_failed",
                "Commands the gateway refused or did not answer, or that were dropped unsent.",
                figures.commandsFailed, label)
            gauge(
                "tradfri_gateway_command_queue", "", "Devices and groups with a command waiting for its turn.",
                Double(figures.queuedCommands), label)
        }
        return registry.emitToBuffer()
    }
}
