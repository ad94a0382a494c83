import Foundation
import HubModel

/// `gateway/reboot`, `health_check` and `resync`. With several gateways `gateway/reboot` needs
/// `{"gateway": "<name>"}`; `resync` takes it optionally (without it every gateway re-syncs).
extension BridgeRequests {
    func registerGatewayVerbs() {
        register(verb: "gateway/reboot") { [unowned self] request in try await self.reboot(request) }
        register(verb: "health_check") { [unowned self] request in try self.healthCheck(request) }
        register(verb: "resync") { [unowned self] request in try await self.resync(request) }
    }

    /// The hub a request names with `gateway`, or the only one; nil for "all" when `all` allows it.
    private func hub(of request: BridgeRequest, allowAll: Bool) throws(BridgeRequestError) -> (any Hub)? {
        guard request.members["gateway"] != nil else {
            if context.hubs.count == 1 || allowAll { return context.hubs.count == 1 ? context.hubs[0] : nil }
            throw BridgeRequestError(
                "several gateways: name one with {\"gateway\": \"…\"} (\(context.hubs.map(\.name).joined(separator: ", ")))"
            )
        }
        let name = try request.string("gateway")
        guard let hub = context.hub(named: name) else {
            throw BridgeRequestError(
                "no gateway named '\(name)' (known: \(context.hubs.map(\.name).joined(separator: ", ")))")
        }
        return hub
    }

    /// Asks the gateway to reboot. It answers, announces the reboot and drops every session; the
    /// bridge reconnects by itself (its devices are `offline` meanwhile, `gateway_offline` /
    /// `gateway_online` go out on `bridge/event`).
    private func reboot(_ request: BridgeRequest) async throws -> JSON {
        try request.allowOnly(["gateway"])
        guard let hub = try hub(of: request, allowAll: false) else { return [:] }
        do {
            try await hub.reboot()
        } catch let error as HubError {
            throw BridgeRequestError(error.description)
        }
        logger.notice("gateway reboot requested over MQTT", metadata: ["gateway": "\(hub.name)"])
        return context.topicsUseHubNames ? ["gateway": .string(hub.name)] : [:]
    }

    /// The state of every connection, what the bridge knows, and for how long.
    private func healthCheck(_ request: BridgeRequest) throws -> JSON {
        try request.allowOnly([])
        let broker = context.outbox.isConnected
        let uptime = Date().timeIntervalSince(context.startedAt)
        var gateways: [String: JSON] = [:]
        for hub in context.hubs { gateways[hub.name] = health(of: hub) }
        var data: [String: JSON] = [
            "healthy": .bool(context.allHubsConnected && broker),
            "gateways": .object(gateways),
            "broker": ["connected": .bool(broker)],
            "devices": .int(context.hubs.reduce(0) { $0 + $1.devices.count }),
            "groups": .int(context.hubs.reduce(0) { $0 + $1.groups.count }),
            "scenes": .int(sceneCount(context.hubs)),
            "uptime": .int(Int(uptime)),
            "started_at": .string(context.startedAt.formatted(.iso8601)),
            "version": .string(BridgeVersion.current),
        ]
        // The first gateway's, as before several gateways existed.
        if let first = context.hubs.first { data["gateway"] = health(of: first) }
        return .object(data)
    }

    private func health(of hub: any Hub) -> JSON {
        var gateway: [String: JSON] = [
            "connected": .bool(hub.connected), "id": .string(hub.hardwareID), "kind": .string(hub.kind),
            "devices": .int(hub.devices.count), "groups": .int(hub.groups.count),
        ]
        if let address = hub.address { gateway["address"] = .string(address) }
        if let firmware = hub.firmware { gateway["firmware"] = .string(firmware) }
        gateway["state"] = .string(hub.connected ? "online" : hub.needsPairing ? "pairing_needed" : "offline")
        gateway["view"] = hub.viewFigures
        if let contact = hub.lastContact {
            gateway["last_contact"] = .string(contact.formatted(.iso8601))
            gateway["seconds_since_contact"] = .double((Date().timeIntervalSince(contact) * 10).rounded() / 10)
        }
        return .object(gateway)
    }

    private func sceneCount(_ hubs: [any Hub]) -> Int {
        hubs.reduce(0) { total, hub in total + hub.groups.values.reduce(0) { $0 + $1.scenes.count } }
    }

    /// Re-reads and re-observes everything on the gateway (for a copy that drifted: a lost
    /// notification, an observation the gateway forgot). Differences are published as usual.
    private func resync(_ request: BridgeRequest) async throws -> JSON {
        try request.allowOnly(["gateway"])
        let hubs = try hub(of: request, allowAll: true).map { [$0] } ?? context.hubs
        if let offline = hubs.first(where: { !$0.connected }) {
            throw BridgeRequestError(
                context.topicsUseHubNames ? "the gateway '\(offline.name)' is offline" : "the gateway is offline")
        }
        let started = ContinuousClock.now
        var finished = true
        for hub in hubs where !(await hub.resync(within: .seconds(120))) { finished = false }
        guard finished else {
            throw BridgeRequestError(
                "the re-sync did not finish within 120 s (the gateway is offline or not answering); the bridge keeps trying"
            )
        }
        let elapsed = ContinuousClock.now - started
        var data: [String: JSON] = [
            "devices": .int(hubs.reduce(0) { $0 + $1.devices.count }),
            "groups": .int(hubs.reduce(0) { $0 + $1.groups.count }),
            "scenes": .int(sceneCount(hubs)),
            "seconds": .double((elapsed.seconds * 100).rounded() / 100),
        ]
        if context.topicsUseHubNames { data["gateways"] = .array(hubs.map { .string($0.name) }) }
        return .object(data)
    }
}
