import CoAP
import Foundation
import TradfriModel

/// `gateway/reboot`, `health_check` and `resync`.
extension BridgeRequests {
    func registerGatewayVerbs() {
        register(verb: "gateway/reboot") { [unowned self] request in try await self.reboot(request) }
        register(verb: "health_check") { [unowned self] request in try self.healthCheck(request) }
        register(verb: "resync") { [unowned self] request in try await self.resync(request) }
    }

    /// POST 15011/9030. The gateway answers, announces the reboot and drops every session; the
    /// bridge reconnects by itself (devices are `offline` meanwhile, `gateway_offline` /
    /// `gateway_online` go out on `bridge/event`).
    private func reboot(_ request: BridgeRequest) async throws -> JSON {
        try request.allowOnly([])
        guard context.gatewayConnected else { throw BridgeRequestError("the gateway is offline") }
        let response: CoAPResponse
        do {
            response = try await context.link.request(.post, GatewayPath.reboot, priority: .command)
        } catch {
            throw BridgeRequestError("the gateway did not answer: \(error)")
        }
        guard response.code.isSuccess else {
            throw BridgeRequestError("the gateway refused to reboot (\(response.code))")
        }
        logger.notice("gateway reboot requested over MQTT")
        return [:]
    }

    /// The state of both connections, what the bridge knows, and for how long.
    private func healthCheck(_ request: BridgeRequest) throws -> JSON {
        try request.allowOnly([])
        var gateway: [String: JSON] = [
            "connected": .bool(context.gatewayConnected),
            "id": .string(context.mirror.details?.id ?? context.gatewayIDFromCredentials),
        ]
        if let address = context.gatewayAddress { gateway["address"] = .string(address) }
        if let firmware = context.mirror.details?.firmware { gateway["firmware"] = .string(firmware) }
        gateway["view"] = context.viewFigures
        if let contact = context.link.lastContact {
            gateway["last_contact"] = .string(contact.formatted(.iso8601))
            gateway["seconds_since_contact"] = .double((Date().timeIntervalSince(contact) * 10).rounded() / 10)
        }
        let broker = context.outbox.isConnected
        let uptime = Date().timeIntervalSince(context.startedAt)
        return [
            "healthy": .bool(context.gatewayConnected && broker),
            "gateway": .object(gateway),
            "broker": ["connected": .bool(broker)],
            "devices": .int(context.mirror.devices.count),
            "groups": .int(context.mirror.groups.count),
            "scenes": .int(context.mirror.scenes.values.reduce(0) { $0 + $1.count }),
            "uptime": .int(Int(uptime)),
            "started_at": .string(context.startedAt.formatted(.iso8601)),
            "version": .string(BridgeVersion.current),
        ]
    }

    /// Re-reads and re-observes everything on the gateway (for a copy that drifted: a lost
    /// notification, an observation the gateway forgot). Differences are published as usual.
    private func resync(_ request: BridgeRequest) async throws -> JSON {
        try request.allowOnly([])
        guard context.gatewayConnected else { throw BridgeRequestError("the gateway is offline") }
        let started = ContinuousClock.now
        guard await context.mirror.resync(within: .seconds(120)) else {
            throw BridgeRequestError(
                "the re-sync did not finish within 120 s (the gateway is offline or not answering); the bridge keeps trying"
            )
        }
        let elapsed = ContinuousClock.now - started
        return [
            "devices": .int(context.mirror.devices.count),
            "groups": .int(context.mirror.groups.count),
            "scenes": .int(context.mirror.scenes.values.reduce(0) { $0 + $1.count }),
            "seconds": .double((elapsed.seconds * 100).rounded() / 100),
        ]
    }
}
