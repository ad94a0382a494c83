/// When to try again after a connection attempt failed or an established connection was lost.
///
/// The n-th consecutive retry waits `minimumDelay * 2^n`, capped at `maximumDelay`, minus a random
/// share of up to `jitter` of that (so a fleet of clients does not reconnect in lockstep after a
/// broker restart). The count starts again at 0 once a connection has stayed up for `stableAfter`
/// (5 s): a broker restarted several times in a row is reconnected to within a second or two each
/// time, while a connection the broker drops at once (another client with the same id, an ACL
/// that kicks) still backs off.
public struct MQTTReconnectPolicy: Sendable, Hashable {
    public var minimumDelay: Duration
    public var maximumDelay: Duration
    /// 0 … 1: the largest share of each delay that is randomly taken off.
    public var jitter: Double
    /// A connection that lasted at least this long resets the backoff to `minimumDelay`.
    public var stableAfter: Duration

    public init(
        minimumDelay: Duration = .seconds(1), maximumDelay: Duration = .seconds(60), jitter: Double = 0.5,
        stableAfter: Duration = .seconds(5)
    ) {
        self.minimumDelay = minimumDelay
        self.maximumDelay = max(minimumDelay, maximumDelay)
        self.jitter = min(max(jitter, 0), 1)
        self.stableAfter = stableAfter
    }

    /// The wait before the next attempt after `failures` consecutive failed attempts (0 for the
    /// first retry). `random` is a number in 0 ..< 1.
    public func delay(afterFailures failures: Int, random: Double) -> Duration {
        let minimum = minimumDelay.seconds
        let maximum = maximumDelay.seconds
        // 2^failures, with the exponent bounded so it stays finite for any failure count.
        let growth = Double(sign: .plus, exponent: min(max(failures, 0), 512), significand: 1)
        let base = min(maximum, minimum * growth)
        let jittered = base * (1 - jitter * min(max(random, 0), 1))
        return .seconds(jittered)
    }

    /// The count of consecutive failures after an attempt that ended: reset by a connection that
    /// lasted `stableAfter` (`connectedFor` is nil for an attempt that never connected).
    public func failures(after previous: Int, connectedFor: Duration?) -> Int {
        if let connectedFor, connectedFor >= stableAfter { return 0 }
        return previous + 1
    }

    /// The delay with a fresh random number.
    func delay(afterFailures failures: Int) -> Duration {
        delay(afterFailures: failures, random: Double.random(in: 0..<1))
    }
}

extension Duration {
    /// The duration in seconds, as a floating-point number.
    var seconds: Double {
        let (whole, fraction) = components
        return Double(whole) + Double(fraction) / 1e18
    }
}
