/// A set of latency samples (microseconds) and what became of the events that produced none.
struct Latency: Sendable {
    var samples: [Double]
    /// Events that were started.
    var expected: Int

    init(samples: [Double], expected: Int) {
        self.samples = samples.sorted()
        self.expected = expected
    }

    static let empty = Latency(samples: [], expected: 0)

    var count: Int { samples.count }
    /// Events without a delivery (a later change to the same light overtook them, or they were lost).
    var missing: Int { Swift.max(expected - samples.count, 0) }

    /// Nearest-rank percentile, `fraction` in 0…1.
    func percentile(_ fraction: Double) -> Double {
        guard !samples.isEmpty else { return .nan }
        let rank = Int((fraction * Double(samples.count)).rounded(.up))
        return samples[min(Swift.max(rank - 1, 0), samples.count - 1)]
    }

    var p50: Double { percentile(0.50) }
    var p99: Double { percentile(0.99) }
    var max: Double { samples.last ?? .nan }

    static func + (lhs: Latency, rhs: Latency) -> Latency {
        Latency(samples: lhs.samples + rhs.samples, expected: lhs.expected + rhs.expected)
    }
}

/// One change (a PUT that changed a light, a publish) waiting for its delivery.
struct Stamp: Sendable {
    var device: Int
    var value: Int
    var time: UInt64
}

/// Matches each start stamp to the first delivery of the same (device, value) at or after it.
func match(starts: [Stamp], deliveries: [Stamp]) -> Latency {
    Latency(samples: matchEach(starts: starts, deliveries: deliveries).compactMap { $0 }, expected: starts.count)
}

/// Each start's latency in microseconds (nil: no delivery), in the order of `starts`.
func matchEach(starts: [Stamp], deliveries: [Stamp]) -> [Double?] {
    var arrivals: [Int: [UInt64]] = [:]
    for delivery in deliveries {
        arrivals[delivery.device &* 1024 &+ delivery.value, default: []].append(delivery.time)
    }
    return starts.map { start in
        guard let times = arrivals[start.device &* 1024 &+ start.value],
            let time = times.first(where: { $0 >= start.time })
        else { return nil }
        return Double(time - start.time) / 1000
    }
}
