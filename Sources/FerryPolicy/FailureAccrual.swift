/// Linkerd-style failure accrual for one endpoint: after `threshold` consecutive failures it
/// is ejected for a backoff; when the backoff ends exactly one probe call is let through;
/// the probe's success restores the endpoint, its failure ejects it again for twice as long
/// (with jitter, within `minBackoff`..`maxBackoff`). Pure: time and randomness come in.
///
/// When every endpoint of a service is failing the fault is likely not theirs (a shared
/// dependency, the network): the caller then asks for a failed probe not to grow the backoff,
/// and once any endpoint's probe succeeds, the others' waits are cut short
/// (`shortenWait`), so all of them come back within about one minimum backoff of recovery.
public struct FailureAccrual: Sendable, Equatable {
    public enum State: Sendable, Equatable {
        /// Taking calls; `failures` consecutive failures so far.
        case active(failures: Int)
        /// Taking no calls until `until`; the last backoff was `backoff`.
        case ejected(until: Int64, backoff: Int64)
        /// One probe call is out; no other call until it ends.
        case probing(backoff: Int64)
    }

    public struct Settings: Sendable, Equatable {
        public var threshold: Int = 7
        public var minBackoff: Int64 = 1_000_000_000
        public var maxBackoff: Int64 = 60_000_000_000
        public init() {}
    }

    public private(set) var state = State.active(failures: 0)
    public let settings: Settings
    /// Whether the wait may end early on a sign of life (`endWait`): once per backoff, so an
    /// endpoint that accepts connections and fails every call is still probed at most twice a backoff.
    private var earlyProbe = EarlyProbe.available

    private enum EarlyProbe: Sendable, Equatable {
        case available
        /// The wait was ended early; the next probe is the early one.
        case granted
        /// The early probe failed: the next one waits for the backoff.
        case spent
    }

    public init(settings: Settings = Settings()) {
        self.settings = settings
    }

    /// Whether a call may be sent now. In `ejected` whose time is up this admits the probe
    /// (and moves to `probing`), so only the caller that got `true` may send.
    public mutating func admit(at now: Int64) -> Bool {
        switch state {
        case .active: return true
        case .probing: return false
        case .ejected(let until, let backoff):
            guard now >= until else { return false }
            state = .probing(backoff: backoff)
            return true
        }
    }

    /// Whether a call could be sent now, without admitting a probe.
    public func isAvailable(at now: Int64) -> Bool {
        switch state {
        case .active: return true
        case .probing: return false
        case .ejected(let until, _): return now >= until
        }
    }

    public var isEjected: Bool { if case .active = state { return false } else { return true } }

    /// The probe ended without a verdict (the caller cancelled, the deadline ran out): the
    /// endpoint may be probed again at once rather than stay in `probing` forever.
    public mutating func abandonProbe(at now: Int64) {
        if case .probing(let backoff) = state { state = .ejected(until: now, backoff: backoff) }
    }

    /// A call sent after the ejection (the probe, or a call of panic mode) succeeded: the
    /// endpoint takes calls again. (Calls sent before the ejection that answer late are the
    /// caller's to leave out: they say nothing of the endpoint since.)
    public mutating func recordSuccess() {
        state = .active(failures: 0)
        earlyProbe = .available
    }

    /// Records a failure; returns true when it ejected the endpoint. `mayEject` false (the
    /// floor of available endpoints would be crossed) keeps it active however many failed.
    /// `growBackoff` false (every endpoint is failing) keeps a failed probe's backoff as it was.
    @discardableResult
    public mutating func recordFailure<R: RandomNumberGenerator>(at now: Int64, random: inout R, mayEject: Bool = true,
                                                                 growBackoff: Bool = true) -> Bool {
        switch state {
        case .active(let failures):
            let count = failures + 1
            guard count >= settings.threshold, mayEject else {
                state = .active(failures: count)
                return false
            }
            eject(at: now, backoff: settings.minBackoff, random: &random)
            return true
        case .probing(let backoff):
            earlyProbe = earlyProbe == .granted ? .spent : .available
            eject(at: now, backoff: growBackoff ? min(settings.maxBackoff, backoff * 2) : backoff, random: &random)
            return true
        case .ejected:
            // A call admitted before the ejection failed late: the ejection stands.
            return false
        }
    }

    /// Ejects an endpoint taking calls for `backoff` (with jitter), whatever its count of
    /// failures: outlier detection found its success rate far below the others'. The probe
    /// after it, and a failed probe's doubling, are as for consecutive failures. Returns
    /// whether it ejected (an endpoint already out is left as it is).
    @discardableResult
    public mutating func ejectAsOutlier<R: RandomNumberGenerator>(at now: Int64, backoff: Int64, random: inout R) -> Bool {
        guard case .active = state else { return false }
        eject(at: now, backoff: backoff, random: &random)
        return true
    }

    /// Another endpoint of the service recovered: an ejected one may be probed at once, and its
    /// backoff starts again from the minimum (a probe out already is left to finish).
    public mutating func shortenWait(at now: Int64) {
        if case .ejected(let until, _) = state { state = .ejected(until: min(until, now), backoff: settings.minBackoff) }
    }

    /// The endpoint shows a sign of life (a connection to it was made): it may be probed at
    /// once. Its backoff is kept, so a probe that fails still ejects it for longer, and the
    /// wait ends early at most once per backoff. Returns whether it did.
    @discardableResult
    public mutating func endWait(at now: Int64) -> Bool {
        guard case .ejected(let until, let backoff) = state, earlyProbe == .available, until > now else { return false }
        state = .ejected(until: now, backoff: backoff)
        earlyProbe = .granted
        return true
    }

    /// Ejects for `backoff` with jitter: a time drawn from [backoff/2, backoff], at least the minimum.
    private mutating func eject<R: RandomNumberGenerator>(at now: Int64, backoff: Int64, random: inout R) {
        let base = max(settings.minBackoff, min(settings.maxBackoff, backoff))
        let jittered = max(settings.minBackoff, Int64.random(in: (base / 2)...base, using: &random))
        state = .ejected(until: now + jittered, backoff: base)
    }
}
