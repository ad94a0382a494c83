import CoAP
import Foundation
import HubModel

extension BridgeContext {
    /// The bridge's health, as `bridge/request/health_check` answers it and the web page shows
    /// it: `healthy` (every gateway and the broker connected), each gateway's session
    /// (`gateways`, by name, and `gateway`, the first), the broker, what the bridge knows
    /// (`devices`, `groups`, `scenes`), and for how long (`uptime`, `started_at`), with the
    /// reconnects and command errors counted since the start.
    public func health() -> JSON {
        let broker = outbox.isConnected
        let uptime = Date().timeIntervalSince(startedAt)
        var gateways: [String: JSON] = [:]
        for hub in hubs { gateways[hub.name] = health(of: hub) }
        var data: [String: JSON] = [
            "healthy": .bool(allHubsConnected && broker),
            "gateways": .object(gateways),
            "broker": ["connected": .bool(broker), "reconnects": .int(figures.brokerReconnects)],
            "devices": .int(hubs.reduce(0) { $0 + $1.devices.count }),
            "groups": .int(hubs.reduce(0) { $0 + $1.groups.count }),
            "scenes": .int(
                hubs.reduce(0) { total, hub in total + hub.groups.values.reduce(0) { $0 + $1.scenes.count } }),
            "command_errors": .int(figures.commandErrors),
            "uptime": .int(Int(uptime)),
            "started_at": .string(startedAt.formatted(.iso8601)),
            "version": .string(BridgeVersion.current),
        ]
        // The first gateway's, as before several gateways existed.
        if let first = hubs.first { data["gateway"] = health(of: first) }
        return .object(data)
    }

    /// One gateway's session: `state` is `online`, `offline` or `pairing_needed`.
    func health(of hub: any Hub) -> JSON {
        var gateway: [String: JSON] = [
            "connected": .bool(hub.connected), "id": .string(hub.hardwareID), "kind": .string(hub.kind),
            "devices": .int(hub.devices.count), "groups": .int(hub.groups.count),
            "reconnects": .int(hub.statistics.reconnects),
        ]
        if let address = hub.address { gateway["address"] = .string(address) }
        if let firmware = hub.firmware { gateway["firmware"] = .string(firmware) }
        gateway["state"] = .string(hub.sessionState)
        gateway["view"] = hub.viewFigures
        if let contact = hub.lastContact {
            gateway["last_contact"] = .string(contact.formatted(.iso8601))
            gateway["seconds_since_contact"] = .double((Date().timeIntervalSince(contact) * 10).rounded() / 10)
        }
        return .object(gateway)
    }
}
