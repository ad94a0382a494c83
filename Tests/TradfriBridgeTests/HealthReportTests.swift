import Foundation
import HubModel
import TestSupport
import Testing

@testable import TradfriBridge

/// `bridge/health`, its Prometheus form and its Home Assistant sensors, from one report built
/// by hand: every figure where a user looks for it, with the same value in all three.
@Suite struct HealthReportTests {
    static let timestamp = Date(timeIntervalSince1970: 1_796_480_000)

    static let report = HealthReport(
        timestamp: timestamp, version: "9.9.9", uptime: 3600.7, residentBytes: 31_876_096,
        peakResidentBytes: 32_505_856, cpuSeconds: 3.214, cpuPercent: 0.01234,
        gateways: [
            HealthReport.Gateway(
                name: "upstairs", state: "online", connected: true,
                lastNotification: timestamp.addingTimeInterval(-2.14), notificationsPerSecond: 0.21666,
                statistics: HubStatistics(
                    reconnects: 1, lastNotification: timestamp.addingTimeInterval(-2.14), notifications: 812,
                    commandsSent: 120, commandsFailed: 2, queuedCommands: 3)),
            HealthReport.Gateway(
                name: "garden", state: "pairing_needed", connected: false, lastNotification: nil,
                notificationsPerSecond: 0, statistics: HubStatistics()),
        ],
        broker: HealthReport.Broker(connected: true, reconnects: 4, publishQueue: 5, published: 5120, received: 130),
        messagesPerSecond: 1.45678)

    @Test func theReportCarriesEveryFigure() throws {
        let json = Self.report.json
        #expect(json["timestamp"] == .string(Self.timestamp.formatted(.iso8601)))
        #expect(json["healthy"] == false, "a gateway needs pairing")
        #expect(json["version"] == "9.9.9")
        #expect(
            json["process"] == [
                "uptime_sec": 3600, "memory_used_mib": 30.4, "memory_peak_mib": 31.0, "cpu_percent": 0.0123,
                "cpu_seconds": 3.21,
            ])
        #expect(
            json["gateways"]?["upstairs"] == [
                "state": "online", "connected": true,
                "last_notification": .string(Self.timestamp.addingTimeInterval(-2.14).formatted(.iso8601)),
                "last_notification_sec": 2.1, "notifications": 812, "notifications_per_sec": 0.2167,
                "reconnects": 1, "commands_sent": 120, "commands_failed": 2, "command_queue": 3,
            ])
        #expect(json["gateways"]?["garden"]?["state"] == "pairing_needed")
        #expect(json["gateways"]?["garden"]?["last_notification"] == .null)
        #expect(json["gateways"]?["garden"]?["last_notification_sec"] == .null)
        #expect(
            json["broker"] == [
                "connected": true, "reconnects": 4, "publish_queue": 5, "published": 5120, "received": 130,
            ])
        #expect(json["messages_per_sec"] == 1.4568)
        var healthy = Self.report
        healthy.gateways.removeLast()
        #expect(healthy.json["healthy"] == true)
        healthy.broker.connected = false
        #expect(healthy.json["healthy"] == false)
    }

    /// Averages over the window since the last periodic report.
    @Test func ratesAreAveragesOverTheWindow() {
        let window = HealthWindow(start: 100, cpuSeconds: 2, messages: 1000, notifications: ["gateway": 10])
        #expect(window.rate(1600, from: 1000, at: 700) == 1)
        #expect(abs(window.rate(2.6, from: 2, at: 700) - 0.001) < 1e-12)
        #expect(window.rate(5, from: 10, at: 700) == 0, "a count that went back (never negative)")
        #expect(window.rate(1600, from: 1000, at: 100) == 0, "an empty window")
    }

    @Test func theProcessFiguresComeFromProc() throws {
        let status = "Name:\ttradfri-bridge\nVmHWM:\t   31744 kB\nVmRSS:\t   31128 kB\n"
        #expect(ProcessFigures.kilobytes("VmRSS", in: status) == 31128)
        #expect(ProcessFigures.kilobytes("VmHWM", in: status) == 31744)
        #expect(ProcessFigures.kilobytes("VmSwap", in: status) == 0)
        let stat = "4242 (tradfri bridge) S 1 4242 4242 0 -1 4194560 900 0 0 0 250 71 0 0 20 0 6 0 1 0"
        #expect(ProcessFigures.cpuSeconds(stat: stat, ticksPerSecond: 100) == 3.21)
        // This process: what /proc says, as `top` would show it.
        let mine = ProcessFigures.current()
        let rss = ProcessFigures.kilobytes(
            "VmRSS", in: try String(contentsOfFile: "/proc/self/status", encoding: .utf8))
        #expect(mine.residentBytes > 1_000_000)
        #expect(abs(mine.residentBytes - rss * 1024) < mine.residentBytes / 5)
        #expect(mine.peakResidentBytes >= mine.residentBytes)
        #expect(mine.cpuSeconds > 0)
    }

    /// The Prometheus text format: every figure, counters as `_total`, a gateway label.
    @Test func theMetricsCarryTheSameFigures() throws {
        let text = String(decoding: PrometheusMetrics.render(Self.report), as: UTF8.self)
        var values: [String: Double] = [:]
        var types: [String: String] = [:]
        for line in text.split(separator: "\n") {
            if line.hasPrefix("# TYPE ") {
                let parts = line.split(separator: " ")
                types[String(parts[2])] = String(parts[3])
            } else if !line.hasPrefix("#") {
                let parts = line.split(separator: " ")
                values[String(parts[0])] = Double(parts[1])
            }
        }
        #expect(values["process_resident_memory_bytes"] == 31_876_096)
        #expect(values["process_cpu_seconds_total"] == 3.214)
        #expect(values["process_start_time_seconds"] == (Self.timestamp.timeIntervalSince1970 - 3600.7).rounded())
        #expect(values["tradfri_bridge_uptime_seconds"] == 3600)
        #expect(values["tradfri_bridge_healthy"] == 0)
        #expect(values[#"tradfri_bridge_info{version="9.9.9"}"#] == 1)
        #expect(values["tradfri_broker_connected"] == 1)
        #expect(values["tradfri_broker_reconnects_total"] == 4)
        #expect(values["tradfri_broker_publish_queue"] == 5)
        #expect(values["tradfri_mqtt_messages_published_total"] == 5120)
        #expect(values["tradfri_mqtt_messages_received_total"] == 130)
        #expect(values["tradfri_mqtt_messages_per_second"] == 1.45678)
        let upstairs = #"{gateway="upstairs"}"#
        let garden = #"{gateway="garden"}"#
        #expect(values["tradfri_gateway_connected" + upstairs] == 1)
        #expect(values["tradfri_gateway_connected" + garden] == 0)
        #expect(values["tradfri_gateway_pairing_needed" + garden] == 1)
        #expect(values["tradfri_gateway_last_notification_age_seconds" + upstairs] ?? 0 > 2.1)
        #expect(values["tradfri_gateway_last_notification_age_seconds" + garden] == nil, "none yet")
        #expect(values["tradfri_gateway_notifications_total" + upstairs] == 812)
        #expect(values["tradfri_gateway_reconnects_total" + upstairs] == 1)
        #expect(values["tradfri_gateway_commands_sent_total" + upstairs] == 120)
        #expect(values["tradfri_gateway_commands_failed_total" + upstairs] == 2)
        #expect(values["tradfri_gateway_command_queue" + upstairs] == 3)
        for (name, type) in types {
            #expect(name.hasSuffix("_total") == (type == "counter"), "\(name) is a \(type)")
        }
        #expect(text.contains("# HELP tradfri_gateway_commands_failed_total "))
    }

    /// The bridge's device and each gateway's health sensors: valid for Home Assistant, and
    /// their templates show the report's figures (rendered with Jinja2, as Home Assistant does).
    @Test func theSensorsAreValidAndShowTheReport() async throws {
        let builder = HomeAssistantConfigBuilder(
            discoveryPrefix: "homeassistant", baseTopic: "tradfri", gatewayID: "7e11515204400072",
            gatewayName: "upstairs", severalGateways: true, version: "9.9.9")
        let garden = HomeAssistantConfigBuilder(
            discoveryPrefix: "homeassistant", baseTopic: "tradfri", gatewayID: "1112131415161718",
            gatewayName: "garden", severalGateways: true, version: "9.9.9")
        let configs =
            builder.bridgeConfigs() + builder.gatewayConfigs(firmware: "1.19.32") + garden.gatewayConfigs(firmware: nil)
        let problems = configs.flatMap(HomeAssistantSchema.problems)
        #expect(problems.isEmpty, "\(problems.joined(separator: "\n"))")
        #expect(Set(configs.compactMap(\.uniqueID)).count == configs.count)
        #expect(Set(configs.map(\.topic)).count == configs.count)
        for config in configs where config.payload["state_topic"] == "tradfri/bridge/health" {
            #expect(config.payload["entity_category"] == "diagnostic", "\(config.topic)")
            #expect(
                config.payload["availability"] == [
                    ["topic": "tradfri/bridge/state", "value_template": "{{ value_json.state }}"]
                ], "available while the bridge runs")
        }
        let bridge = builder.bridgeConfigs()
        #expect(bridge.allSatisfy { $0.payload["device"]?["identifiers"] == ["tradfri_bridge_tradfri"] })
        #expect(builder.gatewayConfigs(firmware: nil)[0].payload["device"]?["via_device"] == "tradfri_bridge_tradfri")
        #expect(
            Set(bridge.compactMap { $0.payload["default_entity_id"]?.stringValue }) == [
                "sensor.tradfri_bridge_uptime", "sensor.tradfri_bridge_memory", "sensor.tradfri_bridge_cpu",
                "sensor.tradfri_bridge_broker_reconnects", "sensor.tradfri_bridge_publish_queue",
                "sensor.tradfri_bridge_messages_per_second",
            ])

        let payload = Self.report.json.description
        var shown: [String: String] = [:]
        for config in configs {
            guard let template = config.payload["value_template"]?.stringValue,
                config.payload["state_topic"] == "tradfri/bridge/health",
                let entity = config.payload["default_entity_id"]?.stringValue
            else { continue }
            shown[entity] = try await Jinja.state(template, payload: payload)
        }
        #expect(shown["sensor.tradfri_bridge_uptime"] == "3600")
        #expect(shown["sensor.tradfri_bridge_memory"] == "30.4")
        #expect(shown["sensor.tradfri_bridge_cpu"] == "0.0123")
        #expect(shown["sensor.tradfri_bridge_broker_reconnects"] == "4")
        #expect(shown["sensor.tradfri_bridge_publish_queue"] == "5")
        #expect(shown["sensor.tradfri_bridge_messages_per_second"] == "1.4568")
        #expect(shown["sensor.tradfri_upstairs_state"] == "online")
        #expect(shown["sensor.tradfri_upstairs_last_notification_age"] == "2.1")
        #expect(shown["sensor.tradfri_upstairs_reconnects"] == "1")
        #expect(shown["sensor.tradfri_upstairs_commands_sent"] == "120")
        #expect(shown["sensor.tradfri_upstairs_commands_failed"] == "2")
        #expect(shown["sensor.tradfri_upstairs_command_queue"] == "3")
        #expect(shown["sensor.tradfri_garden_state"] == "pairing_needed")
        #expect(shown["sensor.tradfri_garden_last_notification_age"] == "None", "unknown in Home Assistant")
    }

    @Test func anotherBaseTopicIsAnotherBridgeDevice() {
        let builder = HomeAssistantConfigBuilder(
            discoveryPrefix: "homeassistant", baseTopic: "home/tradfri", gatewayID: "7e11515204400072")
        let config = builder.bridgeConfigs()[0]
        #expect(config.nodeID == "tradfri_bridge_home_tradfri")
        #expect(config.payload["device"]?["name"] == "TRÅDFRI bridge (home/tradfri)")
        #expect(config.payload["state_topic"] == "home/tradfri/bridge/health")
        #expect(config.payload["default_entity_id"] == "sensor.tradfri_bridge_home_tradfri_uptime")
        #expect(builder.isBridgeOwn(topic: config.topic))
        #expect(!builder.isBridgeOwn(topic: "homeassistant/sensor/tradfri_bridge_tradfri/uptime/config"))
        #expect(!builder.isOwn(topic: config.topic), "not a gateway's")
    }
}
