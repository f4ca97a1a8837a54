/// An endpoint's standing in active health checks, as a value: the outcome of each check goes
/// in, and out comes whether the endpoint just crossed a threshold. An endpoint starts
/// `unknown` (it takes calls; the first checks decide), is `unhealthy` after
/// `unhealthyThreshold` failed checks in a row, and `healthy` again after `healthyThreshold`
/// passed checks in a row. No I/O and no clock: the checker calls it.
public struct HealthCheckState: Sendable {
    public struct Settings: Sendable, Equatable {
        public var healthyThreshold: Int
        public var unhealthyThreshold: Int

        public init(healthyThreshold: Int, unhealthyThreshold: Int) {
            self.healthyThreshold = max(1, healthyThreshold)
            self.unhealthyThreshold = max(1, unhealthyThreshold)
        }
    }

    public enum Status: Sendable, Equatable {
        case unknown
        case healthy
        /// With the last failed check's reason.
        case unhealthy(reason: String)
    }

    public enum Transition: Sendable, Equatable {
        case none
        /// Crossed `unhealthyThreshold` failures: no new calls until it recovers.
        case becameUnhealthy(reason: String)
        /// An unhealthy endpoint passed `healthyThreshold` checks in a row.
        case recovered
    }

    private enum State: Sendable {
        case unknown(failures: Int)
        case healthy(failures: Int)
        case unhealthy(passes: Int, reason: String)
    }

    public let settings: Settings
    private var state = State.unknown(failures: 0)

    public init(settings: Settings) {
        self.settings = settings
    }

    public var status: Status {
        switch state {
        case .unknown: return .unknown
        case .healthy: return .healthy
        case .unhealthy(_, let reason): return .unhealthy(reason: reason)
        }
    }

    public var isUnhealthy: Bool { if case .unhealthy = state { return true } else { return false } }

    public mutating func checkPassed() -> Transition {
        switch state {
        case .unknown, .healthy:
            state = .healthy(failures: 0)
            return .none
        case .unhealthy(let passes, let reason):
            if passes + 1 >= settings.healthyThreshold {
                state = .healthy(failures: 0)
                return .recovered
            }
            state = .unhealthy(passes: passes + 1, reason: reason)
            return .none
        }
    }

    /// A Watch stream's report: the server's own word on its state, applied at once (the
    /// thresholds are for checks that sample a state; a Watch message is the state).
    public mutating func reported(servingOr reason: String?) -> Transition {
        switch (state, reason) {
        case (.unhealthy, nil):
            state = .healthy(failures: 0)
            return .recovered
        case (_, nil):
            state = .healthy(failures: 0)
            return .none
        case (.unhealthy, let reason?):
            state = .unhealthy(passes: 0, reason: reason)
            return .none
        case (_, let reason?):
            state = .unhealthy(passes: 0, reason: reason)
            return .becameUnhealthy(reason: reason)
        }
    }

    public mutating func checkFailed(reason: String) -> Transition {
        switch state {
        case .unknown(let failures), .healthy(let failures):
            if failures + 1 >= settings.unhealthyThreshold {
                state = .unhealthy(passes: 0, reason: reason)
                return .becameUnhealthy(reason: reason)
            }
            if case .unknown = state { state = .unknown(failures: failures + 1) } else { state = .healthy(failures: failures + 1) }
            return .none
        case .unhealthy:
            state = .unhealthy(passes: 0, reason: reason)
            return .none
        }
    }
}
