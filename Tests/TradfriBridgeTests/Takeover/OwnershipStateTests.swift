import Foundation
import MQTT
import Testing

@testable import TradfriBridge

/// The ownership protocol (the real `OwnershipState`) in simulated time against a model broker
/// (`OwnershipSimulation`), with the timing the bridge ships with: hundreds of seeds of start-up
/// races, kills, silences, clean stops and broker restarts, checking on every run that no two
/// instances ever drove one gateway at the same time and that one instance ends up driving them all.
@Suite struct OwnershipStateTests {
    static let gateways = ["7e1151520440aaaa", "7e1151520440bbbb", "7e1151520440cccc"]
    static let settings = GatewayOwnership.Settings()

    /// Every gateway driven by exactly one live instance, the same one for all.
    static func expectOneOwnerOfEverything(_ simulation: OwnershipSimulation, seed: UInt64) {
        let drivers = simulation.drivers
        var owners: Set<String> = []
        for gateway in gateways {
            let driving = drivers[gateway] ?? []
            #expect(driving.count == 1, "seed \(seed): \(gateway) driven by \(driving)")
            owners.formUnion(driving)
        }
        #expect(owners.count == 1, "seed \(seed): the gateways are split between \(owners.sorted())")
    }

    static func expectNoOverlap(_ simulation: OwnershipSimulation, seed: UInt64) {
        for (a, b) in simulation.overlaps {
            Issue.record("seed \(seed): \(a) while \(b)")
        }
    }

    /// How long after `start` the instance had acquired every gateway (each for the first time).
    static func takeoverTime(_ simulation: OwnershipSimulation, by instance: String, after start: Duration) -> Duration
    {
        var latest = Duration.zero
        for gateway in gateways {
            let first = simulation.acquisitions.filter {
                $0.instance == instance && $0.gateway == gateway && $0.at >= start
            }
            .map(\.at).min()
            latest = max(latest, (first ?? .seconds(100_000)) - start)
        }
        return latest
    }

    /// The owner in `simulation` (index), once there is exactly one.
    static func owner(_ simulation: OwnershipSimulation, instances: Int) -> Int? {
        let owners = (0..<instances).filter { !simulation.owned(by: $0).isEmpty }
        return owners.count == 1 ? owners[0] : nil
    }

    @Test func instancesStartingTogetherEndWithOneOwnerAndNoHandover() {
        for seed in UInt64(1)...300 {
            let instances = seed % 3 == 0 ? 3 : 2
            var simulation = OwnershipSimulation(
                instances: instances, gateways: Self.gateways, settings: Self.settings, seed: seed)
            Self.traced(&simulation, test: "start", seed: seed)
            defer { Self.printTrace(simulation) }
            for n in 0..<instances {
                // The same instant for some seeds, a few milliseconds apart for others.
                let offset = seed % 4 == 0 ? .zero : simulation.uniform(.zero, .milliseconds(50))
                simulation.schedule(.start(n), at: .seconds(1) + offset)
            }
            simulation.run(until: .seconds(30))
            Self.expectNoOverlap(simulation, seed: seed)
            Self.expectOneOwnerOfEverything(simulation, seed: seed)
            #expect(
                simulation.acquisitions.count == Self.gateways.count,
                "seed \(seed): handed over after the start: \(simulation.acquisitions)")
            let first = simulation.acquisitions.map(\.at).max() ?? .zero
            // Found without an owner at start: sync hold-off, then the full settle time.
            #expect(
                first < .seconds(1) + Self.settings.syncHoldoff + Self.settings.takeoverSettle + .seconds(2),
                "seed \(seed)")
        }
    }

    /// kill -9 of the owner: the broker publishes its will at once; the standby takes over after the
    /// settle time. The killed one comes back and stands by.
    @Test func aKilledOwnerIsReplacedWithin15SecondsAndDoesNotTakeItBack() {
        var worst: Duration = .zero
        for seed in UInt64(1)...200 {
            var simulation = OwnershipSimulation(
                instances: 2, gateways: Self.gateways, settings: Self.settings, seed: seed)
            Self.traced(&simulation, test: "kill", seed: seed)
            defer { Self.printTrace(simulation) }
            simulation.schedule(.start(0), at: .seconds(1))
            simulation.schedule(.start(1), at: .seconds(1) + simulation.uniform(.zero, .seconds(3)))
            simulation.run(until: .seconds(30))
            guard let owner = Self.owner(simulation, instances: 2) else {
                Issue.record("seed \(seed): no single owner before the kill")
                continue
            }
            simulation.schedule(.kill(owner), at: .seconds(30))
            simulation.schedule(.start(owner), at: .seconds(50))
            simulation.run(until: .seconds(90))
            Self.expectNoOverlap(simulation, seed: seed)
            Self.expectOneOwnerOfEverything(simulation, seed: seed)
            let standby = simulation.instanceID(1 - owner)
            let time = Self.takeoverTime(simulation, by: standby, after: .seconds(30))
            worst = max(worst, time)
            #expect(time < .seconds(15), "seed \(seed): took \(time)")
            #expect(
                !simulation.acquisitions.contains {
                    $0.instance == simulation.instanceID(owner) && $0.at >= .seconds(50)
                },
                "seed \(seed): the old owner took a gateway back")
        }
        print("simulated kill -9 takeover, worst of 200: \(worst)")
        #expect(worst < Self.settings.takeoverSettle + .seconds(3))
    }

    /// An owner whose network goes silent (no FIN): the standby notices its silence (or the
    /// broker's keepalive expiry publishes its will) and takes over; the silent one has stopped
    /// by then, and stands by when its network is back.
    @Test func aSilentOwnerIsReplacedWithin15Seconds() {
        var worst: Duration = .zero
        for seed in UInt64(1)...200 {
            var simulation = OwnershipSimulation(
                instances: 2, gateways: Self.gateways, settings: Self.settings, seed: seed)
            Self.traced(&simulation, test: "silent", seed: seed)
            defer { Self.printTrace(simulation) }
            simulation.schedule(.start(0), at: .seconds(1))
            simulation.schedule(.start(1), at: .seconds(2))
            simulation.run(until: .seconds(30))
            guard let owner = Self.owner(simulation, instances: 2) else {
                Issue.record("seed \(seed): no single owner before the silence")
                continue
            }
            simulation.schedule(.partition(owner, .seconds(seed % 2 == 0 ? 40 : 12)), at: .seconds(30))
            simulation.run(until: .seconds(120))
            Self.expectNoOverlap(simulation, seed: seed)
            Self.expectOneOwnerOfEverything(simulation, seed: seed)
            let standby = simulation.instanceID(1 - owner)
            let time = Self.takeoverTime(simulation, by: standby, after: .seconds(30))
            worst = max(worst, time)
            #expect(time < .seconds(15), "seed \(seed): took \(time)")
        }
        print("simulated silent-owner takeover, worst of 200: \(worst)")
    }

    /// The owner's process freezes (SIGSTOP, a paused VM) for 2 to 30 s. Resumed, with its timers
    /// running before it reads what arrived meanwhile, it never takes back what the other took
    /// over, and never drives together with it.
    @Test func aFrozenOwnerDoesNotTakeBackWhenItResumes() {
        var takenOver = 0
        for seed in UInt64(1)...200 {
            var simulation = OwnershipSimulation(
                instances: 2, gateways: Self.gateways, settings: Self.settings, seed: seed)
            Self.traced(&simulation, test: "freeze", seed: seed)
            defer { Self.printTrace(simulation) }
            simulation.schedule(.start(0), at: .seconds(1))
            simulation.schedule(.start(1), at: .seconds(2))
            simulation.run(until: .seconds(30))
            guard let owner = Self.owner(simulation, instances: 2) else {
                Issue.record("seed \(seed): no single owner before the freeze")
                continue
            }
            let frozen = simulation.uniform(.seconds(2), .seconds(30))
            simulation.schedule(.freeze(owner, frozen), at: .seconds(30))
            simulation.run(until: .seconds(100))
            Self.expectNoOverlap(simulation, seed: seed)
            Self.expectOneOwnerOfEverything(simulation, seed: seed)
            let standby = simulation.instanceID(1 - owner)
            // Once the other one claimed, it keeps the gateways: the resumed one takes nothing back.
            if simulation.claims.contains(where: { $0.instance == standby && $0.at >= .seconds(30) }) {
                takenOver += 1
                #expect(simulation.owned(by: 1 - owner) == Self.gateways, "seed \(seed): frozen \(frozen)")
                let back = simulation.acquisitions.filter {
                    $0.instance == simulation.instanceID(owner) && $0.at >= .seconds(30)
                }
                #expect(back.isEmpty, "seed \(seed): frozen \(frozen), then took back \(back)")
            }
        }
        print("frozen owners replaced: \(takenOver) of 200 (frozen 2 to 30 s)")
    }

    @Test func aCleanStopHandsOverAtOnce() {
        var worst: Duration = .zero
        for seed in UInt64(1)...200 {
            var simulation = OwnershipSimulation(
                instances: 2, gateways: Self.gateways, settings: Self.settings, seed: seed)
            Self.traced(&simulation, test: "clean", seed: seed)
            defer { Self.printTrace(simulation) }
            simulation.spikeProbability = 0
            simulation.schedule(.start(0), at: .seconds(1))
            simulation.schedule(.start(1), at: .seconds(2))
            simulation.run(until: .seconds(30))
            guard let owner = Self.owner(simulation, instances: 2) else {
                Issue.record("seed \(seed): no single owner before the stop")
                continue
            }
            simulation.schedule(.stopGracefully(owner), at: .seconds(30))
            simulation.run(until: .seconds(40))
            Self.expectNoOverlap(simulation, seed: seed)
            Self.expectOneOwnerOfEverything(simulation, seed: seed)
            let standby = simulation.instanceID(1 - owner)
            let time = Self.takeoverTime(simulation, by: standby, after: .seconds(30))
            worst = max(worst, time)
            #expect(time < .seconds(1), "seed \(seed): took \(time)")
        }
        print("simulated clean-stop handover, worst of 200: \(worst)")
    }

    @Test func aBrokerRestartThatLosesEveryRecordEndsWithOneOwner() {
        var handovers = 0
        for seed in UInt64(1)...200 {
            let instances = seed % 2 == 0 ? 2 : 3
            var simulation = OwnershipSimulation(
                instances: instances, gateways: Self.gateways, settings: Self.settings, seed: seed)
            Self.traced(&simulation, test: "broker", seed: seed)
            defer { Self.printTrace(simulation) }
            for n in 0..<instances { simulation.schedule(.start(n), at: .seconds(1) + .milliseconds(n * 700)) }
            simulation.run(until: .seconds(30))
            let down = simulation.uniform(.milliseconds(100), .seconds(seed % 5 == 0 ? 10 : 2))
            simulation.schedule(.brokerRestart(down), at: .seconds(30))
            simulation.run(until: .seconds(80))
            Self.expectNoOverlap(simulation, seed: seed)
            Self.expectOneOwnerOfEverything(simulation, seed: seed)
            if simulation.acquisitions.count > Self.gateways.count { handovers += 1 }
        }
        print("broker restarts that moved the gateways to another instance: \(handovers) of 200")
    }

    /// Everything at random: kills, restarts, clean stops, silences and broker restarts for
    /// five minutes, then quiet.
    /// `TAKEOVER_CHAOS_SEEDS=<n>` runs n seeds instead of 150.
    @Test func chaosNeverLetsTwoInstancesDriveOneGateway() {
        let seeds = ProcessInfo.processInfo.environment["TAKEOVER_CHAOS_SEEDS"].flatMap { UInt64($0) } ?? 150
        for seed in UInt64(1)...seeds {
            let instances = 2 + Int(seed % 2)
            var simulation = OwnershipSimulation(
                instances: instances, gateways: Self.gateways, settings: Self.settings, seed: seed)
            Self.traced(&simulation, test: "chaos", seed: seed)
            simulation.spikeLength = .milliseconds(1500)
            defer { Self.printTrace(simulation) }
            for n in 0..<instances { simulation.schedule(.start(n), at: simulation.uniform(.zero, .seconds(3))) }
            var time = Duration.seconds(10)
            while time < .seconds(300) {
                time += simulation.uniform(.seconds(1), .seconds(25))
                let n = Int(simulation.uniform(.zero, .seconds(instances)).components.seconds)
                let fault: OwnershipSimulation.Fault =
                    switch Int(simulation.uniform(.zero, .seconds(6)).components.seconds) {
                    case 0: .kill(n)
                    case 1: .start(n)
                    case 2: .stopGracefully(n)
                    case 3: .partition(n, simulation.uniform(.seconds(1), .seconds(20)))
                    case 4: .brokerRestart(simulation.uniform(.milliseconds(50), .seconds(5)))
                    default: .start(n)
                    }
                simulation.schedule(fault, at: time)
            }
            for n in 0..<instances { simulation.schedule(.start(n), at: .seconds(330)) }
            simulation.run(until: .seconds(330))
            // Quiet from here on (a 3 s round trip at the end would only show a lease running out).
            simulation.spikeProbability = 0
            simulation.run(until: .seconds(400))
            Self.expectNoOverlap(simulation, seed: seed)
            let drivers = simulation.drivers
            for gateway in Self.gateways {
                #expect(drivers[gateway]?.count == 1, "seed \(seed): \(gateway) driven by \(drivers[gateway] ?? [])")
            }
        }
    }
}

extension OwnershipStateTests {
    /// `TAKEOVER_TRACE=<test>:<seed>` prints what happened in that run (for debugging).
    static func traced(_ simulation: inout OwnershipSimulation, test: String, seed: UInt64) {
        let wanted = ProcessInfo.processInfo.environment["TAKEOVER_TRACE"]
        if wanted == "\(test):\(seed)" { simulation.trace = [] }
    }

    static func printTrace(_ simulation: OwnershipSimulation) {
        guard let trace = simulation.trace else { return }
        print(trace.joined(separator: "\n"))
    }
}
