import CoAP
import Foundation
import HubModel
import TradfriModel

/// `device/rename` and `group/rename`: `{"from": <friendly name, id, or name in the IKEA app>,
/// "to": "New name"}`.
///
/// The new name is written to the gateway (PUT 9001, as the IKEA app does), so the app shows it
/// too; the bridge then follows the gateway's notification like any rename: topics move to the
/// new friendly name, the old retained ones are cleared, `device_renamed` / `group_renamed` go
/// out on `bridge/event`, and Home Assistant's entities follow in place. The response comes once
/// the gateway has reported the new name (or after 5 s without it), with the new friendly name.
extension BridgeRequests {
    enum RenameTarget { case device, group }

    /// Longest name accepted (the IKEA app's own names are far shorter).
    static let maxNameLength = 64

    func registerRenameVerbs() {
        register(verb: "device/rename") { [unowned self] request in try await self.rename(request, .device) }
        register(verb: "group/rename") { [unowned self] request in try await self.rename(request, .group) }
    }

    private func rename(_ request: BridgeRequest, _ target: RenameTarget) async throws -> JSON {
        try request.allowOnly(["from", "to"])
        let from = try request.string("from")
        let to = try request.string("to").trimmingCharacters(in: .whitespaces)
        guard !to.isEmpty else { throw BridgeRequestError("'to' must not be empty") }
        guard to.count <= Self.maxNameLength else {
            throw BridgeRequestError("'to' is longer than \(Self.maxNameLength) characters")
        }
        guard !to.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            throw BridgeRequestError("'to' must not contain control characters")
        }
        guard let entity = context.names.entity(named: from) ?? entity(withAppName: from, target) else {
            throw BridgeRequestError("no device or group named '\(from)'")
        }
        let id: ItemID
        let oldName: String
        switch (entity, target) {
        case (.device(let deviceID), .device):
            guard let device = context.device(deviceID) else { throw BridgeRequestError("the device is gone") }
            (id, oldName) = (deviceID, device.name)
        case (.group(let groupID), .group):
            guard let group = context.group(groupID) else { throw BridgeRequestError("the group is gone") }
            (id, oldName) = (groupID, group.name)
        case (.group, .device):
            throw BridgeRequestError("'\(from)' is a group: use bridge/request/group/rename")
        case (.device, .group):
            throw BridgeRequestError("'\(from)' is a device: use bridge/request/device/rename")
        }
        guard let hub = context.hub(named: id.hub) else { throw BridgeRequestError("the gateway is gone") }
        do {
            try await hub.rename(id, to: to)
        } catch let error as HubError {
            throw BridgeRequestError(error.description)
        }

        // Follow the gateway's notification, so the answer names the topic that now exists.
        let followed = await waitForGateway(within: .seconds(5)) { [unowned self] in
            switch target {
            case .device: self.context.device(id)?.name == to
            case .group: self.context.group(id)?.name == to
            }
        }
        let entityNow: FriendlyNames.Entity = target == .device ? .device(id) : .group(id)
        var data: [String: JSON] = [
            "id": id.number.map(JSON.int) ?? .string(id.local), "from": .string(oldName), "to": .string(to),
            "friendly_name": context.names[entityNow].map(JSON.string) ?? .null,
        ]
        if context.topicsUseHubNames { data["gateway"] = .string(id.hub) }
        if !followed { data["note"] = "the gateway accepted the name but has not reported it yet" }
        return .object(data)
    }

    /// The one device or group with exactly this name in the IKEA app (of any gateway).
    private func entity(withAppName name: String, _ target: RenameTarget) -> FriendlyNames.Entity? {
        switch target {
        case .device:
            let matches = context.hubs.flatMap { $0.devices.values.filter { $0.name == name } }
            return matches.count == 1 ? .device(matches[0].id) : nil
        case .group:
            let matches = context.hubs.flatMap { $0.groups.values.filter { $0.name == name } }
            return matches.count == 1 ? .group(matches[0].id) : nil
        }
    }
}
