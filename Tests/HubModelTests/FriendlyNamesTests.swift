import Foundation
import HubModel
import Testing

@Suite struct FriendlyNamesTests {
    func id(_ number: Int, hub: String = "home") -> ItemID { ItemID(hub: hub, number) }

    @Test func namesAreTopicSafe() {
        #expect(FriendlyNames.slug("Living room – Ceiling (2)", fallback: "x") == "living_room_ceiling_2")
        #expect(FriendlyNames.slug("Kök/Bänk #1 +", fallback: "x") == "kok_bank_1")
        #expect(FriendlyNames.slug("Straße", fallback: "x") == "strasse")
        #expect(FriendlyNames.slug("💡", fallback: "light_65537") == "light_65537")
    }

    @Test func collisionsAreResolvedDeterministically() {
        let names = FriendlyNames([
            FriendlyNames.Inventory(
                hub: "home", prefix: nil,
                devices: [
                    (id(65538), "Lamp", "light"), (id(65537), "Lamp", "light"), (id(65540), "", "remote"),
                    (id(65541), "Bridge", "plug"),
                ],
                groups: [(id(131073), "Lamp"), (id(131074), "Hallway")])
        ])
        #expect(names[.device(id(65537))] == "lamp")
        #expect(names[.device(id(65538))] == "lamp_2")
        #expect(names[.device(id(65540))] == "remote_65540")
        #expect(names[.device(id(65541))] == "bridge_65541")
        #expect(names[.group(id(131073))] == "lamp_group")
        #expect(names[.group(id(131074))] == "hallway")
        #expect(names.entity(named: "lamp_2") == .device(id(65538)))
        #expect(names.entity(named: "65537") == .device(id(65537)), "the numeric id is an alias")
        #expect(names.entity(named: "131074") == .group(id(131074)))
        #expect(names.entity(named: "nobody") == nil)
    }

    // MARK: Several hubs

    /// Home (no prefix) and a garden shed's gateway under "garden": the same device names and the
    /// same local ids on both.
    let home = FriendlyNames.Inventory(
        hub: "home", prefix: nil,
        devices: [
            (ItemID(hub: "home", 65537), "Lamp", "light"), (ItemID(hub: "home", 65538), "Hallway", "light"),
        ],
        groups: [(ItemID(hub: "home", 131073), "Lamp")])
    let shed = FriendlyNames.Inventory(
        hub: "shed", prefix: "garden",
        devices: [
            (ItemID(hub: "shed", 65537), "Lamp", "light"), (ItemID(hub: "shed", 65540), "", "remote"),
            (ItemID(hub: "shed", 65541), "Bridge", "plug"), (ItemID(hub: "shed", 65542), "Lamp", "light"),
        ],
        groups: [(ItemID(hub: "shed", 131073), "Lamp")])

    @Test func eachHubsNamesGoUnderItsPrefix() {
        let names = FriendlyNames([home, shed])
        #expect(names[.device(id(65537))] == "lamp")
        #expect(names[.device(id(65538))] == "hallway")
        #expect(names[.group(id(131073))] == "lamp_group")
        // The rules apply within the hub, and the result goes under "garden/".
        #expect(names[.device(id(65537, hub: "shed"))] == "garden/lamp")
        #expect(names[.device(id(65542, hub: "shed"))] == "garden/lamp_2")
        #expect(names[.device(id(65540, hub: "shed"))] == "garden/remote_65540")
        #expect(names[.device(id(65541, hub: "shed"))] == "garden/bridge_65541")
        #expect(names[.group(id(131073, hub: "shed"))] == "garden/lamp_group")
        #expect(names.names.count == 8)
        #expect(Set(names.names.values).count == 8, "every name is unique across the hubs")
        #expect(names.entity(named: "garden/lamp") == .device(id(65537, hub: "shed")))
        #expect(names.entity(named: "garden/lamp_group") == .group(id(131073, hub: "shed")))
        #expect(names.entity(named: "lamp") == .device(id(65537)))
        #expect(names.entity(named: "garden/hallway") == nil, "hallway is on the other hub")
        #expect(names.entity(named: "garden/nobody") == nil)
    }

    /// Both hubs have a device 65537 and a group 131073: the id finds the one of the hub the topic
    /// names, `<id>` on the hub without prefix and `<prefix>/<id>` on the other.
    @Test func theSameLocalIDOnTwoHubsIsKeptApart() {
        let names = FriendlyNames([home, shed])
        let homeLamp = FriendlyNames.Entity.device(id(65537))
        let shedLamp = FriendlyNames.Entity.device(id(65537, hub: "shed"))
        #expect(homeLamp != shedLamp)
        #expect(shedLamp.id == ItemID(hub: "shed", local: "65537"))
        #expect(names[homeLamp] != names[shedLamp])
        #expect(names.entity(named: "65537") == homeLamp)
        #expect(names.entity(named: "garden/65537") == shedLamp)
        #expect(names.entity(named: "131073") == .group(id(131073)))
        #expect(names.entity(named: "garden/131073") == .group(id(131073, hub: "shed")))
        #expect(names.entity(named: "65538") == .device(id(65538)))
        #expect(names.entity(named: "garden/65538") == nil, "65538 is on the hub without prefix only")
        #expect(names.entity(named: "65542") == nil, "65542 is on the garden hub only")
        #expect(names.entity(named: "garden/65542") == .device(id(65542, hub: "shed")))
        #expect(names.entity(named: "shed/65537") == nil, "a hub's name is not its prefix")
        #expect(names.entity(named: "attic/65537") == nil)
        #expect(names.entity(named: "garden/") == nil)
    }

    /// With a prefix on every hub, a plain id names nothing: it would not say which hub.
    @Test func withEveryHubPrefixedAPlainIDNamesNothing() {
        var house = home
        house.prefix = "house"
        let names = FriendlyNames([house, shed])
        #expect(names[.device(id(65537))] == "house/lamp")
        #expect(names.entity(named: "65537") == nil)
        #expect(names.entity(named: "lamp") == nil)
        #expect(names.entity(named: "house/65537") == .device(id(65537)))
        #expect(names.entity(named: "garden/65537") == .device(id(65537, hub: "shed")))
    }

    /// Whatever happens on one hub never changes a name on another, and the order the hubs are
    /// given in does not matter.
    @Test func aHubsNamesDependOnItsOwnInventoryOnly() {
        let alone = FriendlyNames([shed])
        let together = FriendlyNames([home, shed])
        for device in shed.devices {
            #expect(alone[.device(device.id)] == together[.device(device.id)])
        }
        var busierHome = home
        busierHome.devices.append((ItemID(hub: "home", 65536), "Lamp", "light"))
        busierHome.groups.append((ItemID(hub: "home", 131074), "Garden"))
        let changed = FriendlyNames([busierHome, shed])
        #expect(changed[.device(id(65536))] == "lamp", "the lower id gets the plain name")
        #expect(changed[.device(id(65537))] == "lamp_2")
        for device in shed.devices {
            #expect(changed[.device(device.id)] == together[.device(device.id)])
        }
        #expect(FriendlyNames([home, shed]) == FriendlyNames([shed, home]))
    }
}

@Suite struct LastSeenTests {
    /// `last_seen` is formatted by hand (it runs for every published state): it must read exactly
    /// as Foundation's `.iso8601` style, across leap years, centuries and the epoch.
    @Test func lastSeenReadsLikeFoundationISO8601() {
        var seconds: [Int] = [
            0, 1, 59, 86_399, 86_400, 951_782_400, 951_868_799, 1_642_111_763, 1_709_164_800,
            4_107_542_399, 4_107_542_400, 253_402_300_799,
        ]
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<2000 { seconds.append(Int.random(in: 0...4_102_444_800, using: &generator)) }
        for value in seconds {
            #expect(
                LastSeen.isoTime(value) == Date(timeIntervalSince1970: TimeInterval(value)).formatted(.iso8601),
                "\(value)")
        }
    }

    @Test func lastSeenIsPublishedOnceKnown() {
        var state: [String: JSON] = [:]
        LastSeen.state(nil, into: &state)
        LastSeen.state(0, into: &state)
        #expect(state.isEmpty, "0 is how a hub says it never heard from the device")
        LastSeen.state(1_642_111_763, into: &state)
        #expect(state == ["last_seen": "2022-01-13T22:09:23Z"])
    }
}
