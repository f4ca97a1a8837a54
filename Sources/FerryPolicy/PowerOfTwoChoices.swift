/// "The power of two choices": pick two different candidates at random and keep the cheaper.
/// Nearly as good as scanning every candidate for the least loaded, at constant cost, and
/// without the herding a full scan causes when every picker sees the same minimum.
public enum PowerOfTwoChoices {
    /// Picks among indices `0..<count` for which `isAvailable` holds. With one available
    /// candidate it is chosen; with two or more, two different ones are drawn and the one with
    /// the lower `cost` wins (ties: the first drawn). Returns nil when none is available.
    ///
    /// Unavailable candidates are skipped by redrawing among the rest, so a few ejected
    /// endpoints do not distort the choice; no allocation is made.
    @inlinable
    public static func pick<R: RandomNumberGenerator>(
        count: Int, using random: inout R, isAvailable: (Int) -> Bool, cost: (Int) -> Double
    ) -> Int? {
        guard count > 0 else { return nil }
        guard count > 1 else { return isAvailable(0) ? 0 : nil }
        // Draw up to a few times among all; if availability is sparse, fall back to a scan.
        var first = -1
        for _ in 0..<8 {
            let i = Int.random(in: 0..<count, using: &random)
            if isAvailable(i) { first = i; break }
        }
        if first < 0 {
            first = (0..<count).first(where: isAvailable) ?? -1
            if first < 0 { return nil }
        }
        var second = -1
        for _ in 0..<8 {
            let j = Int.random(in: 0..<(count - 1), using: &random)
            let candidate = j >= first ? j + 1 : j
            if isAvailable(candidate) { second = candidate; break }
        }
        if second < 0 {
            // Sparse: take any other available candidate, starting at a random place.
            let start = Int.random(in: 0..<count, using: &random)
            for step in 0..<count {
                let candidate = (start + step) % count
                if candidate != first && isAvailable(candidate) { second = candidate; break }
            }
            if second < 0 { return first }
        }
        return cost(second) < cost(first) ? second : first
    }
}

/// Smooth weighted round-robin (as nginx does it): over a cycle each candidate is chosen in
/// proportion to its weight, and the choices are interleaved rather than bunched.
public struct WeightedRoundRobin: Sendable {
    private var current: [Int] = []

    public init() {}

    /// Picks among `weights.indices` for which `isAvailable` holds; nil when none is.
    public mutating func pick(weights: some Collection<Int>, isAvailable: (Int) -> Bool) -> Int? {
        let count = weights.count
        if current.count != count { current = Array(repeating: 0, count: count) }
        var total = 0
        var best = -1
        for (i, weight) in weights.enumerated() where isAvailable(i) {
            let w = max(1, weight)
            current[i] += w
            total += w
            if best < 0 || current[i] > current[best] { best = i }
        }
        guard best >= 0 else { return nil }
        current[best] -= total
        return best
    }
}
