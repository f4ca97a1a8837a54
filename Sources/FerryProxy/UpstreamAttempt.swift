import FerryConfig

/// One attempt's claim on an endpoint's pool, from the moment the attempt is placed there
/// (before it waits for a connection) until its outcome is told, exactly once. The pool counts
/// it as pending and, until it is answered (response headers), as unanswered: the balancer
/// sees the age of what an endpoint has not answered yet.
struct UpstreamAttempt {
    let pool: UpstreamPool
    /// When the attempt was placed (monotonic nanoseconds).
    let startedAt: Int64
    private(set) var answered = false

    /// Places an attempt in `pool` at `now`.
    init(in pool: UpstreamPool, at now: Int64) {
        self.pool = pool
        self.startedAt = now
        pool.attemptStarted(at: now)
    }

    /// Response headers arrived: the attempt no longer counts as unanswered.
    mutating func markAnswered() {
        guard !answered else { return }
        answered = true
        pool.attemptAnswered(startedAt: startedAt)
    }

    /// Tells the pool how the attempt ended. Call once; the value is then spent.
    consuming func finish(_ outcome: UpstreamPool.AttemptOutcome, at now: Int64) {
        pool.attemptFinished(outcome, at: now, startedAt: startedAt, answered: answered)
    }
}

extension FailureAccrualConfig {
    /// Whether an attempt that ended unanswered for `expiry` counts as the endpoint's failure.
    func counts(_ expiry: UpstreamPool.Expiry) -> Bool {
        switch expiry {
        case .deadline: return countDeadlineExceeded
        case .perTryTimeout: return countPerTryTimeout
        case .cancelled: return countCancelled
        case .lostRace: return false
        }
    }
}
