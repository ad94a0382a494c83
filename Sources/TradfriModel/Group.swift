import HubModel

/// A group ("room") at `15004/<id>`. Its 5850/5851 are not kept in sync with its members by the
/// gateway; a bridge derives group state from member lights.
public struct Group: GatewayResource, Sendable, Hashable, Identifiable {
    public var id: Int
    public var name: String
    public var createdAt: Int?
    public var on: Bool?
    public var brightness: Int?
    /// The active scene ("mood"), 0 when none.
    public var sceneID: Int?
    public var memberIDs: [Int]
    public var groupType: Int?

    public init(json: JSON) throws(ModelError) {
        let reader = try ObjectReader(json, "group")
        id = try reader.requiredInt(GatewayKey.instanceID)
        name = reader.string(GatewayKey.name) ?? ""
        createdAt = reader.int(GatewayKey.createdAt)
        on = reader.bool(GatewayKey.on)
        brightness = reader.int(GatewayKey.dimmer)
        sceneID = reader.int(GatewayKey.sceneID)
        groupType = reader.int(GatewayKey.groupType)
        let members = reader.members[GatewayKey.groupMembers]?[GatewayKey.groupMemberLink]?[GatewayKey.instanceID]
        memberIDs = members?.arrayValue?.compactMap(\.intValue) ?? []
    }
}

/// One light's settings inside a scene (15013 items).
public struct SceneLightSetting: Sendable, Hashable {
    public var deviceID: Int
    public var on: Bool?
    public var brightness: Int?
    public var colorHex: String?
    public var hue: Int?
    public var saturation: Int?
    public var x: Int?
    public var y: Int?
    public var colorTemperature: Int?
}

/// A scene ("mood") at `15005/<group>/<id>`.
public struct Scene: GatewayResource, Sendable, Hashable, Identifiable {
    public var id: Int
    public var name: String
    public var index: Int?
    public var isActive: Bool?
    public var isPredefined: Bool?
    public var icon: Int?
    public var lightSettings: [SceneLightSetting]

    public init(json: JSON) throws(ModelError) {
        let reader = try ObjectReader(json, "scene")
        id = try reader.requiredInt(GatewayKey.instanceID)
        name = reader.string(GatewayKey.name) ?? ""
        index = reader.int(GatewayKey.sceneIndex)
        isActive = reader.bool(GatewayKey.sceneActive)
        isPredefined = reader.bool(GatewayKey.scenePredefined)
        icon = reader.int(GatewayKey.sceneIcon)
        lightSettings = (reader.members[GatewayKey.sceneLightSettings]?.arrayValue ?? []).compactMap { item in
            guard let setting = item.objectValue, let device = setting[GatewayKey.instanceID]?.intValue else {
                return nil
            }
            return SceneLightSetting(
                deviceID: device,
                on: setting[GatewayKey.on]?.boolValue,
                brightness: setting[GatewayKey.dimmer]?.intValue,
                colorHex: setting[GatewayKey.colorHex]?.stringValue,
                hue: setting[GatewayKey.hue]?.intValue,
                saturation: setting[GatewayKey.saturation]?.intValue,
                x: setting[GatewayKey.colorX]?.intValue,
                y: setting[GatewayKey.colorY]?.intValue,
                colorTemperature: setting[GatewayKey.colorTemperature]?.intValue)
        }
    }
}

/// Gateway details at `15011/15012`.
public struct GatewayDetails: GatewayResource, Sendable, Hashable {
    /// 9081: 16 hex characters, stable: the bridge's gateway identity.
    public var id: String
    public var firmware: String
    /// Unix seconds (UTC).
    public var time: Int?
    public var ntpServer: String?
    public var commissioningMode: Int?
    public var otaState: Int?
    public var updateProgress: Int?

    public init(json: JSON) throws(ModelError) {
        let reader = try ObjectReader(json, "gateway details")
        guard let id = reader.string(GatewayKey.gatewayID) else {
            throw .missingKey(GatewayKey.gatewayID, in: "gateway details")
        }
        self.id = id
        firmware = reader.string(GatewayKey.gatewayFirmware) ?? ""
        time = reader.int(GatewayKey.gatewayTime)
        ntpServer = reader.string(GatewayKey.ntpServer)
        commissioningMode = reader.int(GatewayKey.commissioningMode)
        otaState = reader.int(GatewayKey.otaState)
        updateProgress = reader.int(GatewayKey.updateProgress)
    }
}

/// One entry of the gateway's notification list (`15006`).
public struct GatewayNotification: Sendable, Hashable {
    public var event: Int
    public var isActive: Bool
    public var timestamp: Int?
    /// The "key=value" strings of 9017, split.
    public var details: [String: String]

    public init(json: JSON) throws(ModelError) {
        let reader = try ObjectReader(json, "notification")
        event = try reader.requiredInt(GatewayKey.notificationEvent)
        isActive = reader.bool(GatewayKey.notificationActive) ?? false
        timestamp = reader.int(GatewayKey.createdAt)
        var details: [String: String] = [:]
        for item in reader.members[GatewayKey.notificationDetails]?.arrayValue ?? [] {
            guard let text = item.stringValue, let equals = text.firstIndex(of: "=") else { continue }
            details[String(text[..<equals])] = String(text[text.index(after: equals)...])
        }
        self.details = details
    }

    /// Parses the whole `15006` array.
    public static func list(payload: [UInt8]) throws(ModelError) -> [GatewayNotification] {
        let json = try JSON.gatewayPayload(payload)
        guard let items = json.arrayValue else { throw .notAnObject("notification list") }
        var result: [GatewayNotification] = []
        for item in items { result.append(try GatewayNotification(json: item)) }
        return result
    }
}

/// A list resource (`15001`, `15004`, `15005/<g>`): an array of integer ids.
public enum IDList {
    public static func parse(_ payload: [UInt8], what: String) throws(ModelError) -> [Int] {
        let json = try JSON.gatewayPayload(payload)
        guard let items = json.arrayValue else { throw .notAnObject("\(what) list") }
        var ids: [Int] = []
        for item in items {
            guard let id = item.intValue else {
                throw .wrongType(key: "[]", expected: "integer ids", found: item.kindDescription, in: "\(what) list")
            }
            ids.append(id)
        }
        return ids
    }
}
