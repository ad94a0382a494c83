import CoAP
import Logging
import MQTT
import ServiceLifecycle
import Synchronization
import SystemdNotify

/// The event loops the watchdog watches.
public protocol WatchedLoops: Sendable {
    /// Runs a job on the libcoap executor (`@CoAPActor`, where every gateway session and feature
    /// runs): it never returns while that executor is stuck. (The bridge's also refreshes the
    /// status line from there, in order with every other status change.)
    func probe() async
    /// How many times the MQTT network thread has come round so far (`MQTTStatistics.loopTurns`).
    func mqttTurns() -> Int
}

/// The systemd watchdog (`WatchdogSec=`): `WATCHDOG=1` every quarter of `WATCHDOG_USEC`, but only
/// while the event loops really turn, so systemd restarts a bridge whose loop is stuck.
///
/// Contract:
/// - Every round (a quarter of the interval) it hands the libcoap executor a probe job and reads
///   the MQTT network thread's turn count. It pings only if the probe of the previous round was
///   run and the count moved (the thread comes round at least once a round: see
///   `MQTTConfiguration.maximumLoopWait`); a loop without a sign of life for `patience` rounds
///   (half the interval) is stuck: the pings stop, one error line names the loop, and systemd
///   kills the bridge once the interval has passed since the last ping (`Restart=on-failure`
///   starts it again). Within the interval a loop that turns again brings the pings back.
/// - The probe also refreshes the status line (`ServiceStatus`: "last change" moves on without a
///   datagram per change). Without a watchdog (no `WATCHDOG_USEC`) the rounds only do that,
///   every 30 s.
/// - Runs until graceful shutdown; the clock is injected, so tests decide when rounds happen. One
///   watchdog runs once (its copies share the probe's state).
public struct SystemdWatchdog<C: Clock>: Service where C.Duration == Duration {
    private let channel: SystemdChannel
    private let loops: any WatchedLoops
    private let round: Duration
    private let pings: Bool
    private let clock: C
    private let patience: Int
    private let logger = Logger(label: "systemd")
    /// Whether the probe sent last round is still unanswered.
    private let probes = ProbeBox()

    /// - Parameter interval: `WATCHDOG_USEC` (rounds are a quarter of it); nil: no watchdog.
    public init(channel: SystemdChannel, loops: any WatchedLoops, interval: Duration?, clock: C, patience: Int = 2) {
        self.channel = channel
        self.loops = loops
        self.round = interval.map { $0 / 4 } ?? .seconds(30)
        self.pings = interval != nil
        self.clock = clock
        self.patience = patience
    }

    /// Whether the probe sent last round has not returned yet (tests wait for it to be answered
    /// before the next round).
    var probeOutstanding: Bool { probes.outstanding }

    /// How long the MQTT network thread may wait idle for the watchdog to see it turn each round.
    public static func mqttLoopWait(forInterval interval: Duration) -> Duration {
        interval / 4 * 0.9
    }

    public func run() async throws {
        let (channel, loops, round, clock, patience, logger, pings) = (
            self.channel, self.loops, self.round, self.clock, self.patience, self.logger, self.pings
        )
        let probes = self.probes
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                var watch = LoopWatch(patience: patience)
                var reported: Set<LoopWatch.Loop> = []
                while !Task.isCancelled {
                    // The probe sent last round: answered by now if the executor turns.
                    let outstanding = probes.outstanding
                    let stuck = watch.round(probeOutstanding: outstanding, mqttTurns: loops.mqttTurns())
                    if stuck.isEmpty {
                        if !reported.isEmpty {
                            logger.notice("the event loops turn again; watchdog pings resume")
                            reported = []
                        }
                        if pings { channel.send([.watchdog]) }
                    } else {
                        for loop in stuck.subtracting(reported) {
                            logger.error(
                                "\(loop.description) shows no sign of life; withholding the watchdog ping, so systemd restarts the bridge",
                                metadata: ["silent.at_least": "\(round * watch.quietRounds(of: loop))"])
                        }
                        reported = stuck
                    }
                    // One probe at a time: a stuck executor holds one job, not one per round.
                    if !outstanding {
                        probes.sent()
                        group.addTask {
                            await loops.probe()
                            probes.answered()
                        }
                    }
                    do {
                        try await clock.sleep(for: round)
                    } catch {
                        break
                    }
                }
                group.cancelAll()
            }
        }
    }
}

/// Whether a probe is in flight.
private final class ProbeBox: Sendable {
    private let state = Mutex(false)

    func sent() { state.withLock { $0 = true } }
    func answered() { state.withLock { $0 = false } }
    var outstanding: Bool { state.withLock { $0 } }
}

/// The watchdog's judgement, round by round (pure: tested without time passing).
struct LoopWatch: Sendable {
    enum Loop: Hashable, Sendable, CustomStringConvertible {
        case coap
        case mqtt

        var description: String {
            switch self {
            case .coap: "the libcoap executor (gateway sessions and bridge features)"
            case .mqtt: "the MQTT network thread"
            }
        }
    }

    /// Rounds a loop may go without a sign of life before it counts as stuck.
    let patience: Int
    private var probeWaited = 0
    private var mqttQuiet = 0
    private var lastTurns: Int?

    init(patience: Int) {
        self.patience = patience
    }

    /// One round: whether the probe sent at an earlier round is still waiting, and the MQTT
    /// thread's turn count now. Returns the loops that are stuck.
    mutating func round(probeOutstanding: Bool, mqttTurns: Int) -> Set<Loop> {
        probeWaited = probeOutstanding ? probeWaited + 1 : 0
        if let lastTurns, lastTurns == mqttTurns {
            mqttQuiet += 1
        } else {
            mqttQuiet = 0
        }
        lastTurns = mqttTurns
        var stuck: Set<Loop> = []
        if probeWaited >= patience { stuck.insert(.coap) }
        if mqttQuiet >= patience { stuck.insert(.mqtt) }
        return stuck
    }

    func quietRounds(of loop: Loop) -> Int {
        loop == .coap ? probeWaited : mqttQuiet
    }
}
