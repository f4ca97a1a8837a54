/// A latency histogram with Prometheus-style fixed buckets (upper bounds in nanoseconds),
/// counted per bucket and summed across event loops when scraped.
package struct LatencyHistogram: Sendable {
    /// 0.5 ms .. 10 s.
    package static let bounds: [Int64] = [500_000, 1_000_000, 2_500_000, 5_000_000, 10_000_000, 25_000_000, 50_000_000,
                                  100_000_000, 250_000_000, 500_000_000, 1_000_000_000, 2_500_000_000,
                                  5_000_000_000, 10_000_000_000]

    /// Per bucket (not cumulative); the last slot counts what exceeds every bound.
    package init() {}

    package private(set) var counts = [Int](repeating: 0, count: LatencyHistogram.bounds.count + 1)
    package private(set) var sumNanoseconds: Int64 = 0
    package private(set) var count = 0

    package mutating func observe(_ nanoseconds: Int64) {
        var slot = 0
        while slot < Self.bounds.count && nanoseconds > Self.bounds[slot] { slot += 1 }
        counts[slot] += 1
        sumNanoseconds &+= max(0, nanoseconds)
        count += 1
    }

    package mutating func add(_ other: LatencyHistogram) {
        for i in counts.indices { counts[i] += other.counts[i] }
        sumNanoseconds &+= other.sumNanoseconds
        count += other.count
    }

    /// Halves every count (an exponential forgetting of old samples).
    package mutating func halve() {
        for i in counts.indices { counts[i] /= 2 }
        sumNanoseconds /= 2
        count = counts.reduce(0, +)
    }

    /// The upper bound of the bucket holding the `q` quantile; nil below `minimumSamples`.
    package func quantile(_ q: Double, minimumSamples: Int) -> Int64? {
        guard count >= minimumSamples else { return nil }
        let rank = Int((Double(count) * q).rounded(.up))
        var seen = 0
        for (i, n) in counts.enumerated() {
            seen += n
            if seen >= rank { return i < Self.bounds.count ? Self.bounds[i] : Self.bounds.last! * 2 }
        }
        return Self.bounds.last
    }

    /// Cumulative counts per bound, then +Inf (what Prometheus exposes).
    package var cumulative: [Int] {
        var total = 0
        return counts.map { total += $0; return total }
    }
}
