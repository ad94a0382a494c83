import CoAP
import ServiceLifecycle

/// Publishes `bridge/health` every `interval` (`health.interval`; zero: only at connection and
/// on request) until graceful shutdown. The clock is injected, so a test decides when time passes.
public struct HealthReporter<C: Clock>: Service where C.Duration == Duration {
    private let health: BridgeHealth
    private let interval: Duration
    private let clock: C

    public init(health: BridgeHealth, interval: Duration, clock: C) {
        self.health = health
        self.interval = interval
        self.clock = clock
    }

    public func run() async throws {
        let (health, interval, clock) = (self.health, self.interval, self.clock)
        guard interval > .zero else {
            // Nothing to do, but a service that returns early would end the whole group.
            try? await gracefulShutdown()
            return
        }
        await cancelWhenGracefulShutdown {
            while true {
                do {
                    try await clock.sleep(for: interval)
                } catch {
                    return
                }
                await health.publishPeriodic()
            }
        }
    }
}
