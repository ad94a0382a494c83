import GatewaySimulator
import TradfriModel

/// The simulator's demo home as the bridge's model sees it: a device of each kind, rooms, scenes.
enum DemoHome {
    static let fixture = Fixture.demoHome()
    static let devices: [Device] = fixture.devices.keys.sorted().compactMap { try? Device(json: fixture.devices[$0]!) }
    static let groups: [Group] = fixture.groups.keys.sorted().compactMap { try? Group(json: fixture.groups[$0]!) }

    static func members(of group: Group) -> [Device] {
        devices.filter { group.memberIDs.contains($0.id) }
    }

    static func scenes(of group: Group) -> [Scene] {
        (fixture.scenes[group.id] ?? [:]).keys.sorted().compactMap { try? Scene(json: fixture.scenes[group.id]![$0]!) }
    }
}
