import Atomics

/// A local rate limit shared by every event loop without a lock: the generic cell rate
/// algorithm (a token bucket kept as one number). The limiter remembers the instant at which
/// the bucket would be full again (the theoretical arrival time, TAT); each admitted call moves
/// it one emission interval (period / calls) later, and a call is refused when the TAT is more
/// than `burst - 1` intervals ahead of now. So `burst` calls may go at once after a quiet time,
/// and over any long window no more than `calls` per `period` (plus the burst) are admitted.
/// One compare-and-exchange per call; loops racing for the last token retry on the new value.
public final class RateLimiter: Sendable {
    public struct Settings: Sendable, Equatable {
        /// `calls` per `period` (nanoseconds), with up to `burst` at once.
        public var calls: Int
        public var periodNanoseconds: Int64
        public var burst: Int

        public init(calls: Int, periodNanoseconds: Int64, burst: Int) {
            self.calls = calls
            self.periodNanoseconds = periodNanoseconds
            self.burst = burst
        }
    }

    public let settings: Settings
    private let interval: Int64
    private let tolerance: Int64
    /// When the bucket is full again, in the clock's nanoseconds (Int64.min: full now).
    private let theoreticalArrival = ManagedAtomic<Int64>(.min)

    public init(_ settings: Settings) {
        precondition(settings.calls > 0 && settings.periodNanoseconds > 0 && settings.burst > 0)
        self.settings = settings
        interval = max(1, settings.periodNanoseconds / Int64(settings.calls))
        tolerance = interval * Int64(settings.burst - 1)
    }

    /// Whether the bucket is full at `now` (no call for long enough): a fresh bucket would be the same.
    public func isFull(at now: Int64) -> Bool {
        theoreticalArrival.load(ordering: .relaxed) <= now
    }

    /// Takes a call's token at `now` (monotonic nanoseconds); false when over the limit.
    public func admit(at now: Int64) -> Bool {
        var seen = theoreticalArrival.load(ordering: .relaxed)
        while true {
            let from = max(seen, now)
            if from - now > tolerance { return false }
            let (exchanged, current) = theoreticalArrival.compareExchange(expected: seen, desired: from + interval, ordering: .relaxed)
            if exchanged { return true }
            seen = current
        }
    }
}
