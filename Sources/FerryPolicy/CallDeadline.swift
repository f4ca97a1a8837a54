/// Where a call's deadline came from; named in the DEADLINE_EXCEEDED message.
public enum DeadlineSource: String, Sendable, Equatable {
    /// The caller's `grpc-timeout`.
    case caller
    /// The method's configured timeout (its `methods` entry's, or else its service's).
    case method
    /// The listener's maximum.
    case listener
}

/// A call's deadline: the earliest of the caller's timeout, the configured timeout and the
/// listener's maximum, fixed when the request headers arrive. Times are monotonic nanoseconds
/// from an injected clock, so the arithmetic is tested without sleeping.
public struct CallDeadline: Sendable, Equatable {
    /// The instant the call must be over by.
    public let expiresAt: Int64
    public let source: DeadlineSource
    /// The length of the budget that won (for messages).
    public let budgetNanoseconds: Int64

    /// nil when no source sets a deadline.
    public init?(startedAt now: Int64, callerTimeout: Int64?, methodTimeout: Int64?, listenerMax: Int64?) {
        let candidates: [(Int64, DeadlineSource)] = [
            callerTimeout.map { ($0, .caller) }, methodTimeout.map { ($0, .method) }, listenerMax.map { ($0, .listener) },
        ].compactMap { $0 }
        // The smallest budget wins; on a tie the caller's own deadline is the one named.
        guard let winner = candidates.min(by: { $0.0 < $1.0 }) else { return nil }
        let (budget, overflow) = now.addingReportingOverflow(max(0, winner.0))
        self.expiresAt = overflow ? .max : budget
        self.source = winner.1
        self.budgetNanoseconds = max(0, winner.0)
    }

    public func remaining(at now: Int64) -> Int64 {
        max(0, expiresAt &- now)
    }

    public func hasExpired(at now: Int64) -> Bool {
        now >= expiresAt
    }

    /// The timeout to send upstream with an attempt starting `now`: what remains, less
    /// `offset` (time kept back for the answer's way home). nil when that leaves nothing: the
    /// attempt must not start.
    public func propagatedTimeout(at now: Int64, offset: Int64) -> Int64? {
        let budget = remaining(at: now) - max(0, offset)
        return budget > 0 ? budget : nil
    }
}
