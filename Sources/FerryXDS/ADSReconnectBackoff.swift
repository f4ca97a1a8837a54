import FerryPolicy

/// How long an ADS client waits before opening a new stream: the first reconnect after a
/// stream that was answered waits `minimum`; each further failure in a row doubles the wait up
/// to `maximum`; every wait is spread by ±`jitter` so that a fleet that lost its control plane
/// together does not come back in one burst. Pure: randomness comes from the caller's generator.
public struct ADSReconnectBackoff: Sendable, Equatable {
    public var minimum: Int64 = 1_000_000_000
    public var maximum: Int64 = 30_000_000_000
    /// The share of a wait it may be made shorter or longer by, from 0 to 1.
    public var jitter: Double = 0.2

    public init() {}

    /// The wait before attempt number `failures + 1` when `failures` attempts in a row got no answer.
    public func wait(afterFailures failures: Int, random: inout FastRandom) -> Int64 {
        var base = minimum
        var doublings = failures
        while doublings > 0, base < maximum {
            base = base > maximum / 2 ? maximum : base * 2
            doublings -= 1
        }
        base = min(base, maximum)
        guard jitter > 0 else { return base }
        let spread = Double.random(in: -jitter...jitter, using: &random)
        return max(0, Int64((Double(base) * (1 + spread)).rounded()))
    }
}
