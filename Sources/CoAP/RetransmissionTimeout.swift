/// How long a client waits for the answer to a confirmable message before sending it again,
/// learnt from the answers it gets: RFC 6298's estimator in the form CoCoA gives it for CoAP
/// (draft-ietf-core-cocoa: a "strong" estimate from exchanges answered before any
/// retransmission, a "weak" one from exchanges that needed one or two, each blended into the
/// overall timeout).
///
/// Why: with RFC 7252's fixed 2 s (2–3 s with its random factor), every lost datagram stalls the
/// one outstanding exchange, and every request queued behind it, for 2–3 s; with 5 % loss each
/// way that is one request in ten, and a sync of a hundred lights took twenty seconds. A gateway
/// on the LAN answers in milliseconds, so a timeout that follows the measured round trip costs a
/// lost datagram a fraction of a second instead. A gateway that gets slow makes the estimate
/// grow (weak samples), and libcoap still doubles the wait on every retransmission.
///
/// The timeout stays within `bounds`. The lower bound, 0.1 s, is some twenty times the round trip
/// of a gateway on a LAN (loopback answers in under a millisecond), so a gateway whose answers
/// come in a few milliseconds is asked again only when a datagram was really lost, and one that
/// takes longer raises the estimate above the bound by itself; the initial value is RFC 7252's
/// 2 s, or three times the DTLS handshake's round trip (`seed`).
public struct RetransmissionTimeout: Sendable, Equatable {
    public static let defaultBounds: ClosedRange<Double> = 0.1...8

    public let bounds: ClosedRange<Double>
    /// The timeout to use for the next confirmable message, in seconds.
    public private(set) var seconds: Double
    /// The smoothed round trip of exchanges answered at the first try (nil before the first one).
    public private(set) var smoothedRoundTrip: Double?
    private var strong: Estimator?
    private var weak: Estimator?

    private struct Estimator: Equatable {
        var smoothed: Double
        var variation: Double

        init(_ sample: Double) {
            smoothed = sample
            variation = sample / 2
        }

        mutating func add(_ sample: Double) {
            variation = 0.75 * variation + 0.25 * abs(smoothed - sample)
            smoothed = 0.875 * smoothed + 0.125 * sample
        }
    }

    public init(initial: Double = 2, bounds: ClosedRange<Double> = Self.defaultBounds) {
        self.bounds = bounds
        seconds = min(max(initial, bounds.lowerBound), bounds.upperBound)
    }

    /// Starts from a round trip measured another way (the DTLS handshake) instead of the initial
    /// value.
    public mutating func seed(roundTrip: Double) {
        guard roundTrip >= 0, roundTrip.isFinite, strong == nil else { return }
        strong = Estimator(roundTrip)
        smoothedRoundTrip = roundTrip
        seconds = min(max(3 * roundTrip, bounds.lowerBound), bounds.upperBound)
    }

    /// Records how long an exchange took, from the first transmission to the answer.
    /// - Parameter timeoutAtSend: the timeout the message was sent with: an answer later than
    ///   that may answer a retransmission (a weak sample, which overstates the round trip by the
    ///   waits before the retransmissions). Unlike CoCoA, weak samples after more than two
    ///   retransmissions count too: a gateway that suddenly takes ten times longer to answer must
    ///   raise the timeout, not be asked four times per request.
    public mutating func record(_ sample: Double, timeoutAtSend: Double) {
        guard sample >= 0, sample.isFinite else { return }
        if sample < timeoutAtSend {
            if strong == nil { strong = Estimator(sample) } else { strong?.add(sample) }
            smoothedRoundTrip = strong?.smoothed
            guard let strong else { return }
            blend(strong.smoothed + 4 * strong.variation, weight: 0.5)
        } else {
            if weak == nil { weak = Estimator(sample) } else { weak?.add(sample) }
            guard let weak else { return }
            blend(weak.smoothed + weak.variation, weight: 0.25)
        }
    }

    private mutating func blend(_ estimate: Double, weight: Double) {
        let value = weight * estimate + (1 - weight) * seconds
        seconds = min(max(value, bounds.lowerBound), bounds.upperBound)
    }
}
