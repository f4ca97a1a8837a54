/// The attempts sent to one endpoint that have not been answered yet (no response headers),
/// kept as a count and the sum of their start times, so their mean age is known at any moment
/// in constant time and space.
///
/// A latency estimate fed only by answers cannot see an endpoint that stopped answering: the
/// calls it holds never complete, so the estimate stays where the last answer left it (and
/// decays). The age of what is still unanswered is the signal that rises while the endpoint is
/// silent; `PeakEWMA.cost(pending:unanswered:at:)` takes the larger of the two.
///
/// The mean, not the oldest: one long-poll call must not make a busy endpoint look hung,
/// while an endpoint that answers nothing sees every call's age grow, so the mean grows at
/// about half the rate of time itself.
public struct UnansweredAttempts: Sendable, Equatable {
    public private(set) var count = 0
    @usableFromInline var sumOfStarts: Int64 = 0

    public init() {}

    public mutating func started(at time: Int64) {
        count += 1
        sumOfStarts &+= time
    }

    /// The attempt started at `time` was answered or ended.
    public mutating func ended(startedAt time: Int64) {
        guard count > 0 else { return }
        count -= 1
        sumOfStarts = count == 0 ? 0 : sumOfStarts &- time
    }

    /// The mean time the unanswered attempts have waited, at `now` (0 when there are none).
    @inlinable
    public func meanAge(at now: Int64) -> Int64 {
        guard count > 0 else { return 0 }
        return max(0, now - sumOfStarts / Int64(count))
    }
}

extension PeakEWMA {
    /// Linkerd's load with what is still unanswered: the estimate, or the mean age of the
    /// unanswered attempts when that is larger (an endpoint gone silent costs more every
    /// moment it stays silent), scaled by the calls outstanding.
    @inlinable
    public func cost(pending: Int, unanswered: UnansweredAttempts, at now: Int64) -> Double {
        max(current(at: now), Double(unanswered.meanAge(at: now))) * Double(pending + 1)
    }

    /// An attempt ended unanswered after `elapsed` (cancelled, or its per-try timeout or the
    /// call's deadline ran out): its latency was at least that. Raises the estimate if that is
    /// above it (as a slower answer would); a short wait says nothing about the endpoint and
    /// leaves the estimate alone.
    @inlinable
    public mutating func observeAtLeast(_ elapsed: Int64, at now: Int64) {
        if Double(elapsed) > current(at: now) { observe(elapsed, at: now) }
    }
}
