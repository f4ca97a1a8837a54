/// The id of an entry in the loop's deadline queue (`CallDeadlines`).
struct TimerID: Equatable {
    let raw: UInt64
}

/// The timers one call may have armed: at most one of each kind, each named by its entry in
/// the loop's deadline queue. Disarming forgets the id (the queue skips the entry when it
/// surfaces); a fired timer is forgotten before its handler runs, so the handler may arm it
/// again.
struct CallTimers {
    enum Kind {
        /// The call's deadline.
        case deadline
        /// The stream idle check.
        case idle
        /// The backoff before a retry.
        case retryBackoff
        /// The current attempt's per-try timeout.
        case perTry
        /// The delay before the next hedge.
        case hedge
        /// An injected fault delay before the first attempt.
        case faultDelay
    }

    // The queue's ids start at 1, so 0 is free to mean "not armed" inside this type only.
    private var deadline: UInt64 = 0
    private var idle: UInt64 = 0
    private var retryBackoff: UInt64 = 0
    private var perTry: UInt64 = 0
    private var hedge: UInt64 = 0
    private var faultDelay: UInt64 = 0

    func isArmed(_ kind: Kind) -> Bool { raw(kind) != 0 }

    mutating func armed(_ kind: Kind, _ id: TimerID) {
        precondition(id.raw != 0, "deadline queue ids start at 1")
        setRaw(kind, id.raw)
    }

    /// Forgets the timer of `kind`; returns its id if one was armed.
    mutating func take(_ kind: Kind) -> TimerID? {
        let id = raw(kind)
        guard id != 0 else { return nil }
        setRaw(kind, 0)
        return TimerID(raw: id)
    }

    /// Which of this call's armed timers `id` is, if any.
    func kind(of id: TimerID) -> Kind? {
        switch id.raw {
        case 0: return nil
        case deadline: return .deadline
        case idle: return .idle
        case retryBackoff: return .retryBackoff
        case perTry: return .perTry
        case hedge: return .hedge
        case faultDelay: return .faultDelay
        default: return nil
        }
    }

    private func raw(_ kind: Kind) -> UInt64 {
        switch kind {
        case .deadline: return deadline
        case .idle: return idle
        case .retryBackoff: return retryBackoff
        case .perTry: return perTry
        case .hedge: return hedge
        case .faultDelay: return faultDelay
        }
    }

    private mutating func setRaw(_ kind: Kind, _ value: UInt64) {
        switch kind {
        case .deadline: deadline = value
        case .idle: idle = value
        case .retryBackoff: retryBackoff = value
        case .perTry: perTry = value
        case .hedge: hedge = value
        case .faultDelay: faultDelay = value
        }
    }
}
