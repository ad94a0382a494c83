import HubModel
import TradfriModel

/// The gateway's content: gateway details, devices, groups and scenes, each kept as the exact JSON
/// the gateway serves for that resource.
///
/// File format (what `--fixture FILE` reads):
/// `{"gateway": {15011/15012 object}, "devices": [15001/<id> objects],
///   "groups": [15004/<id> objects], "scenes": {"<group id>": [15005/<g>/<id> objects]}}`
public struct Fixture: Sendable {
    public var gateway: JSON
    public var devices: [Int: JSON]
    public var groups: [Int: JSON]
    public var scenes: [Int: [Int: JSON]]

    public enum Error: Swift.Error, CustomStringConvertible {
        case invalid(String)
        public var description: String {
            switch self {
            case .invalid(let message): "invalid fixture: \(message)"
            }
        }
    }

    public init(json: JSON) throws(Fixture.Error) {
        guard let root = json.objectValue else { throw .invalid("the top level must be an object") }
        guard let gateway = root["gateway"], gateway.objectValue != nil else {
            throw .invalid("\"gateway\" (the 15011/15012 object) is missing")
        }
        guard gateway[GatewayKey.gatewayID]?.stringValue != nil else {
            throw .invalid("\"gateway\" has no gateway id (key 9081)")
        }
        self.gateway = gateway
        devices = try Self.objectsByID(root["devices"], what: "devices")
        groups = try Self.objectsByID(root["groups"], what: "groups")
        scenes = [:]
        for (key, list) in root["scenes"]?.objectValue ?? [:] {
            guard let group = Int(key), groups[group] != nil else {
                throw .invalid("scenes are listed for \"\(key)\", which is not a group id")
            }
            scenes[group] = try Self.objectsByID(list, what: "scenes of group \(group)")
        }
        for (id, group) in groups {
            let members =
                group[GatewayKey.groupMembers]?[GatewayKey.groupMemberLink]?[GatewayKey.instanceID]?.arrayValue ?? []
            for member in members {
                guard let device = member.intValue, devices[device] != nil else {
                    throw .invalid("group \(id) lists member \(member), which is not a device")
                }
            }
        }
    }

    public init(text: String) throws(Fixture.Error) {
        let json: JSON
        do {
            json = try JSON(parsing: text, limits: .init(maxDepth: 64, maxBytes: 64 << 20))
        } catch {
            throw .invalid("\(error)")
        }
        try self.init(json: json)
    }

    /// The built-in demo home.
    public static func demoHome() -> Fixture {
        // The embedded text is part of the program and checked by tests.
        try! Fixture(text: demoHomeFixture)
    }

    private static func objectsByID(_ value: JSON?, what: String) throws(Fixture.Error) -> [Int: JSON] {
        guard let value else { return [:] }
        guard let items = value.arrayValue else { throw .invalid("\"\(what)\" must be an array") }
        var result: [Int: JSON] = [:]
        for item in items {
            guard let id = item[GatewayKey.instanceID]?.intValue else {
                throw .invalid("an entry of \"\(what)\" has no id (key 9003)")
            }
            guard result[id] == nil else { throw .invalid("id \(id) appears twice in \"\(what)\"") }
            result[id] = item
        }
        return result
    }

    /// Adds `lights` generated bulbs (cycling white, white spectrum, colour) and `groups` groups
    /// that share them, each with two scenes: for scale tests and benchmarks.
    public mutating func addGenerated(lights: Int, groups groupCount: Int) {
        let firstDevice = (devices.keys.max() ?? 65535) + 1
        var generated: [Int] = []
        for index in 0..<lights {
            let id = firstDevice + index
            let light: JSON
            switch index % 3 {
            case 0:
                light = ["5850": 0, "5851": 1, "9003": 0]
            case 1:
                light = ["5706": "f1e0b5", "5709": 30138, "5710": 26909, "5711": 370, "5850": 0, "5851": 1, "9003": 0]
            default:
                light = [
                    "5706": "f5faf6", "5707": 0, "5708": 0, "5709": 20000, "5710": 20000, "5850": 0,
                    "5851": 1, "9003": 0,
                ]
            }
            let model = [
                "TRADFRI bulb E27 W opal 1000lm", "TRADFRI bulb E27 WS opal 980lm",
                "TRADFRI bulb E27 CWS opal 600lm",
            ][index % 3]
            devices[id] = [
                "3": ["0": "IKEA of Sweden", "1": .string(model), "2": "", "3": "2.3.086", "6": 1],
                "3311": [light], "5750": 2, "9001": .string("Light \(index + 1)"), "9002": 1609459200,
                "9003": .int(id), "9019": 1, "9020": 1609459200, "9054": 0,
            ]
            generated.append(id)
        }
        guard groupCount > 0 else { return }
        let firstGroup = max((self.groups.keys.max() ?? 131072) + 1, 131073)
        let firstScene = max((scenes.values.flatMap(\.keys).max() ?? 196608) + 1, 196609)
        for index in 0..<groupCount {
            let id = firstGroup + index
            let members = generated.enumerated().filter { $0.offset % groupCount == index }.map { JSON.int($0.element) }
            self.groups[id] = [
                "5850": 0, "5851": 0, "9001": .string("Room \(index + 1)"), "9002": 1609459300, "9003": .int(id),
                "9018": ["15002": ["9003": .array(members)]], "9039": 0, "9108": 0,
            ]
            var roomScenes: [Int: JSON] = [:]
            for (offset, (name, level)) in [("Bright", 254), ("Dim", 40)].enumerated() {
                let sceneID = firstScene + index * 2 + offset
                roomScenes[sceneID] = [
                    "9001": .string(name), "9002": 1609459300, "9003": .int(sceneID), "9057": .int(offset),
                    "9058": 0, "9068": 0, "9109": 0,
                    "15013": .array(members.map { ["9003": $0, "5850": 1, "5851": .int(level)] }),
                ]
            }
            scenes[id] = roomScenes
        }
    }

    /// The fixture as its file format (for `--print-fixture`).
    public var json: JSON {
        var scenesJSON: [String: JSON] = [:]
        for (group, list) in scenes {
            scenesJSON[String(group)] = .array(list.keys.sorted().map { list[$0]! })
        }
        return [
            "gateway": gateway,
            "devices": .array(devices.keys.sorted().map { devices[$0]! }),
            "groups": .array(groups.keys.sorted().map { groups[$0]! }),
            "scenes": .object(scenesJSON),
        ]
    }
}
