import CoAP
import HubModel
import TradfriModel

/// Everything the gateway holds, read once (for `tradfri-bridge devices`).
public struct GatewayInventory: Sendable {
    public var details: GatewayDetails
    public var devices: [Device]
    public var groups: [Group]
    public var scenes: [Int: [Scene]]

    /// Reads details, devices, groups and scenes one request at a time (the gateway's pace).
    public static func read(from session: CoAPClient) async throws -> GatewayInventory {
        let details = try GatewayDetails(payload: try await content(session, GatewayPath.gatewayDetails))
        var devices: [Device] = []
        for id in try IDList.parse(try await content(session, GatewayPath.devices), what: "device") {
            devices.append(try Device(payload: try await content(session, GatewayPath.device(id))))
        }
        var groups: [Group] = []
        var scenes: [Int: [Scene]] = [:]
        for id in try IDList.parse(try await content(session, GatewayPath.groups), what: "group") {
            groups.append(try Group(payload: try await content(session, GatewayPath.group(id))))
            let sceneList = try await session.get(GatewayPath.scenes(ofGroup: id))
            guard sceneList.code == .content else { continue }
            for sceneID in try IDList.parse(sceneList.payload, what: "scene") {
                scenes[id, default: []].append(
                    try Scene(payload: try await content(session, GatewayPath.scene(sceneID, ofGroup: id))))
            }
        }
        return GatewayInventory(details: details, devices: devices, groups: groups, scenes: scenes)
    }

    public struct UnexpectedResponse: Error, CustomStringConvertible {
        public let path: String
        public let code: CoAPCode
        public var description: String { "the gateway answered \(code) for \(path)" }
    }

    private static func content(_ session: CoAPClient, _ path: String) async throws -> [UInt8] {
        let response = try await session.get(path)
        guard response.code == .content else { throw UnexpectedResponse(path: path, code: response.code) }
        return response.payload
    }

    /// A plain-text table of devices and groups.
    public var table: String {
        var rows = [["ID", "TYPE", "NAME", "MODEL", "STATE"]]
        for gatewayDevice in devices.sorted(by: { $0.id < $1.id }) {
            let device = gatewayDevice.hubDevice(hub: "gateway")
            var kind = device.type.description
            if let spectrum = device.light?.spectrum, spectrum != .white { kind += " (\(spectrum.rawValue))" }
            rows.append([String(gatewayDevice.id), kind, device.name, device.model, device.stateSummary])
        }
        var text = "Gateway \(details.id), firmware \(details.firmware)\n\n" + Self.format(rows)
        if !groups.isEmpty {
            var groupRows = [["ID", "GROUP", "MEMBERS", "SCENES"]]
            for group in groups.sorted(by: { $0.id < $1.id }) {
                let sceneNames = (scenes[group.id] ?? []).map(\.name).sorted().joined(separator: ", ")
                groupRows.append([String(group.id), group.name, String(group.memberIDs.count), sceneNames])
            }
            text += "\n" + Self.format(groupRows)
        }
        return text
    }

    public static func format(_ rows: [[String]]) -> String {
        let widths = rows[0].indices.map { column in rows.map { $0[column].count }.max() ?? 0 }
        return rows.map { row in
            row.enumerated().map { index, cell in
                index == row.count - 1 ? cell : cell.padding(toLength: widths[index], withPad: " ", startingAt: 0)
            }.joined(separator: "  ")
        }.joined(separator: "\n") + "\n"
    }
}
