import HubModel

/// The bridge's health (`<base>/bridge/health`, `HealthReport`) as Home Assistant diagnostic
/// sensors: the bridge's own figures on a device of its own ("TRÅDFRI bridge"), each gateway's on
/// that gateway's device (which is via the bridge). Available while the bridge runs; the values
/// are those of the latest report (every `health.interval`, and whenever the broker connects).
extension HomeAssistantConfigBuilder {
    /// What goes into a bridge object id: the base topic, made safe (`tradfri`, `home_tradfri`).
    private var baseSlug: String {
        String(baseTopic.map { $0.isASCII && ($0.isLetter || $0.isNumber) ? Character($0.lowercased()) : "_" })
    }

    /// The bridge's node id and device identifier: `tradfri_bridge_<base topic>` (the base topic
    /// tells two bridges on one broker apart).
    public var bridgeIdentifier: String { "tradfri_bridge_\(baseSlug)" }

    /// The entity ids' stem: `tradfri_bridge`, or `tradfri_bridge_<base topic>` for another base topic.
    private var bridgeEntity: String { baseTopic == "tradfri" ? "tradfri_bridge" : "tradfri_bridge_\(baseSlug)" }

    private var healthTopic: String { "\(baseTopic)/bridge/health" }

    /// Whether a config topic belongs to the bridge's own device (for clearing stale ones).
    public func isBridgeOwn(topic: String) -> Bool {
        let parts = topic.split(separator: "/", omittingEmptySubsequences: false)
        return topic.hasPrefix(discoveryPrefix + "/") && parts.count == discoveryPrefix.split(separator: "/").count + 4
            && parts[parts.count - 3] == bridgeIdentifier && parts.last == "config"
    }

    /// The bridge device and its sensors: uptime, memory, CPU, broker reconnects, the publish
    /// queue and MQTT messages per second. (The broker connection has no sensor: the figures
    /// reach Home Assistant through that broker, so it could only ever show "connected".)
    public func bridgeConfigs() -> [HomeAssistantConfig] {
        let device: JSON = [
            "identifiers": [.string(bridgeIdentifier)],
            "name": .string(baseTopic == "tradfri" ? "TRÅDFRI bridge" : "TRÅDFRI bridge (\(baseTopic))"),
            "manufacturer": "tradfri-bridge", "model": "TRÅDFRI–MQTT bridge", "sw_version": .string(version),
        ]
        func sensor(_ object: String, _ name: String, _ value: String, _ keys: [String: JSON]) -> HomeAssistantConfig {
            var keys = keys
            keys["state_topic"] = .string(healthTopic)
            keys["value_template"] = .string("{{ value_json.\(value) }}")
            keys["entity_category"] = "diagnostic"
            return diagnosticConfig(
                "sensor", node: bridgeIdentifier, object: object, name: name, entityID: "\(bridgeEntity)_\(object)",
                device: device, keys)
        }
        return [
            sensor(
                "uptime", "Uptime", "process.uptime_sec",
                ["device_class": "duration", "unit_of_measurement": "s", "icon": "mdi:timer-outline"]),
            sensor(
                "memory", "Memory", "process.memory_used_mib",
                [
                    "device_class": "data_size", "unit_of_measurement": "MiB", "state_class": "measurement",
                    "suggested_display_precision": 1, "icon": "mdi:memory",
                ]),
            sensor(
                "cpu", "CPU", "process.cpu_percent",
                [
                    "unit_of_measurement": "%", "state_class": "measurement", "suggested_display_precision": 2,
                    "icon": "mdi:cpu-64-bit",
                ]),
            sensor(
                "broker_reconnects", "Broker reconnects", "broker.reconnects",
                ["state_class": "total_increasing", "icon": "mdi:lan-disconnect"]),
            sensor(
                "publish_queue", "Publish queue", "broker.publish_queue",
                ["state_class": "measurement", "icon": "mdi:tray-full"]),
            sensor(
                "messages_per_second", "MQTT messages per second", "messages_per_sec",
                [
                    "unit_of_measurement": "msg/s", "state_class": "measurement", "suggested_display_precision": 2,
                    "icon": "mdi:swap-vertical",
                ]),
        ]
    }

    /// The gateway's own figures from `bridge/health`, as sensors of the gateway's device: its
    /// session state (`online`, `offline`, `pairing_needed`), how long before the report it last
    /// notified a change, reconnects, commands sent and failed, and the command queue.
    func gatewayHealthConfigs(device: JSON, entity: String) -> [HomeAssistantConfig] {
        let gateway = "value_json.gateways['\(gatewayName)']"
        func sensor(_ object: String, _ name: String, _ template: String, _ keys: [String: JSON]) -> HomeAssistantConfig
        {
            var keys = keys
            keys["state_topic"] = .string(healthTopic)
            keys["value_template"] = .string(template)
            keys["entity_category"] = "diagnostic"
            return diagnosticConfig(
                "sensor", node: gatewayNodeID, object: object, name: name, entityID: "\(entity)_\(object)",
                device: device, keys)
        }
        return [
            sensor("state", "Session", "{{ \(gateway).state }}", ["icon": "mdi:lan-connect"]),
            // The age at the report, not a timestamp: before the first notification (a quiet home
            // at night) JSON null renders as None, which a number sensor shows as "unknown" and a
            // timestamp sensor logs as an invalid state message at every report.
            sensor(
                "last_notification_age", "Since last notification", "{{ \(gateway).last_notification_sec }}",
                [
                    "device_class": "duration", "unit_of_measurement": "s", "state_class": "measurement",
                    "suggested_display_precision": 0, "icon": "mdi:bell-ring-outline",
                ]),
            sensor(
                "reconnects", "Reconnects", "{{ \(gateway).reconnects }}",
                ["state_class": "total_increasing", "icon": "mdi:lan-disconnect"]),
            sensor(
                "commands_sent", "Commands sent", "{{ \(gateway).commands_sent }}",
                ["state_class": "total_increasing", "icon": "mdi:send"]),
            sensor(
                "commands_failed", "Commands failed", "{{ \(gateway).commands_failed }}",
                ["state_class": "total_increasing", "icon": "mdi:alert-circle-outline"]),
            sensor(
                "command_queue", "Command queue", "{{ \(gateway).command_queue }}",
                ["state_class": "measurement", "icon": "mdi:tray-full"]),
        ]
    }

    /// A config available while the bridge runs (`<base>/bridge/state` only).
    private func diagnosticConfig(
        _ component: String, node: String, object: String, name: String, entityID: String, device: JSON,
        _ keys: [String: JSON]
    ) -> HomeAssistantConfig {
        var payload = keys
        payload["unique_id"] = .string("\(node)_\(object)")
        payload["name"] = .string(name)
        payload["object_id"] = .string(entityID)
        payload["default_entity_id"] = .string("\(component).\(entityID)")
        payload["device"] = device
        payload["origin"] = origin
        payload["availability"] = [
            ["topic": .string("\(baseTopic)/bridge/state"), "value_template": "{{ value_json.state }}"]
        ]
        payload["availability_mode"] = "all"
        return HomeAssistantConfig(
            prefix: discoveryPrefix, component: component, nodeID: node, objectID: object, payload: .object(payload))
    }
}
