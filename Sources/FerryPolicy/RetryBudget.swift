import Atomics

/// Finagle's retry budget, shared by every event loop: over a sliding window of `ttl`, retries
/// may number `minPerSecond * ttl` plus `percent` of the requests made in the window. Requests
/// deposit, retries withdraw; when the budget is spent a retry is refused, so a failing service
/// sees at most (1 + percent) times its request rate, plus the floor: no retry storm.
///
/// The window is a ring of one-second slots of atomic counters (no lock; a slot is reset by
/// whoever first touches it in a new second). Time comes in as nanoseconds.
public final class RetryBudget: Sendable {
    public struct Settings: Sendable, Equatable {
        public var ttlSeconds = 10
        public var minPerSecond = 10
        /// Retries allowed per request, as a fraction (0.2: 20%).
        public var percent = 0.2
        public init() {}
    }

    public let settings: Settings
    private let epochs: [ManagedAtomic<Int64>]
    private let requests: [ManagedAtomic<Int>]
    private let retries: [ManagedAtomic<Int>]

    public init(settings: Settings = Settings()) {
        self.settings = settings
        let slots = max(1, settings.ttlSeconds)
        epochs = (0..<slots).map { _ in ManagedAtomic(-1) }
        requests = (0..<slots).map { _ in ManagedAtomic(0) }
        retries = (0..<slots).map { _ in ManagedAtomic(0) }
    }

    /// `count` requests were made (first attempts).
    public func deposit(_ count: Int = 1, at now: Int64) {
        requests[slot(at: now)].wrappingIncrement(by: count, ordering: .relaxed)
    }

    /// Takes one retry from the budget; false when it is spent. The retry is counted first and
    /// the window summed after, so two loops withdrawing at once cannot both take the last one.
    public func tryWithdraw(at now: Int64) -> Bool {
        let current = slot(at: now)
        retries[current].wrappingIncrement(ordering: .relaxed)
        var madeRequests = 0
        var madeRetries = 0
        let second = now / 1_000_000_000
        for i in 0..<epochs.count where epochs[i].load(ordering: .relaxed) > second - Int64(epochs.count) {
            madeRequests += requests[i].load(ordering: .relaxed)
            madeRetries += retries[i].load(ordering: .relaxed)
        }
        let allowed = settings.minPerSecond * settings.ttlSeconds + Int(Double(madeRequests) * settings.percent)
        guard madeRetries <= allowed else {
            retries[current].wrappingDecrement(ordering: .relaxed)
            return false
        }
        return true
    }

    /// The ring slot for `now`, reset first if it still holds an older second's counts.
    private func slot(at now: Int64) -> Int {
        let second = now / 1_000_000_000
        let index = Int(second % Int64(epochs.count))
        let seen = epochs[index].load(ordering: .relaxed)
        if seen != second, epochs[index].compareExchange(expected: seen, desired: second, ordering: .relaxed).exchanged {
            requests[index].store(0, ordering: .relaxed)
            retries[index].store(0, ordering: .relaxed)
        }
        return index
    }
}

/// Exponential backoff with full jitter (AWS's "full jitter"; Envoy's retry backoff): the
/// n-th retry waits a uniformly random time in [0, min(max, base * 2^(n-1))].
public enum RetryBackoff {
    public static func delay<R: RandomNumberGenerator>(retry: Int, base: Int64, max cap: Int64, using random: inout R) -> Int64 {
        let exponent = Swift.min(30, Swift.max(0, retry - 1))
        let ceiling = Swift.min(cap, base.multipliedReportingOverflow(by: Int64(1) << exponent).overflow ? cap : base << exponent)
        return ceiling <= 0 ? 0 : Int64.random(in: 0...ceiling, using: &random)
    }
}
