import Atomics
import FerryConfig
import FerryPolicy
import NIOConcurrencyHelpers
import NIOCore

/// What all event loops share about one service: each endpoint's failure accrual (so a
/// failing endpoint is ejected after its threshold of failures wherever they happened, and
/// probed once per backoff, not once per loop) and the count of calls in flight for load
/// shedding. The common case touches only atomics: a healthy endpoint's success or a pick
/// of a non-ejected endpoint takes no lock.
package final class ServiceHealth: Sendable {
    package let name: String
    private let state: NIOLockedValueBox<State>
    /// Calls in flight across the proxy (load shedding).
    private let inFlight = ManagedAtomic<Int>(0)
    /// Retries allowed to this service, shared by every loop (replaced when its settings change).
    private let budget: NIOLockedValueBox<RetryBudget>
    package var retryBudget: RetryBudget { budget.withLockedValue { $0 } }
    /// The rate limits written for the service and its `methods` entries, by where they were
    /// written (`services.x`, `services.x.methods[1]`): one bucket each for every loop. A reload
    /// keeps a bucket whose limit did not change (its tokens too).
    private let rateLimiters: NIOLockedValueBox<[String: RateLimiter]>
    /// The same for limits written `per: caller`: a bucket per caller identity each.
    private let callerLimits: NIOLockedValueBox<[String: CallerRateLimits]>

    private struct State {
        var settings: FailureAccrualConfig
        var maxConcurrentCalls: Int?
        var endpoints: [HostPort: EndpointHealth] = [:]
        /// Outlier detection by success rate: how many sweeps in a row found each endpoint an
        /// outlier (its ejection doubles with each), reset by a sweep that judges it fine.
        var outlierStreaks: [HostPort: Int] = [:]
    }

    /// Ejections of endpoints that were taking calls, by why (a failed probe's re-ejection
    /// is not counted again).
    private let consecutiveFailureEjections = ManagedAtomic<Int>(0)
    private let successRateEjections = ManagedAtomic<Int>(0)
    package var ejections: (consecutiveFailures: Int, successRate: Int) {
        (consecutiveFailureEjections.load(ordering: .relaxed), successRateEjections.load(ordering: .relaxed))
    }
    fileprivate func countEjectionAfterFailures() { consecutiveFailureEjections.wrappingIncrement(ordering: .relaxed) }

    package init(service: ServiceConfig) {
        name = service.name
        state = NIOLockedValueBox(State(settings: service.failureAccrual, maxConcurrentCalls: service.maxConcurrentCalls))
        budget = NIOLockedValueBox(RetryBudget(settings: Self.budgetSettings(service.retryBudget)))
        rateLimiters = NIOLockedValueBox(Self.limiters(for: service, keeping: [:]))
        callerLimits = NIOLockedValueBox(Self.callerLimits(for: service, keeping: [:]))
    }

    private static func settings(_ limit: RateLimitConfig) -> RateLimiter.Settings {
        RateLimiter.Settings(calls: limit.calls, periodNanoseconds: limit.period.totalNanoseconds, burst: limit.burst)
    }

    private static func callerLimits(for service: ServiceConfig, keeping old: [String: CallerRateLimits]) -> [String: CallerRateLimits] {
        var limits: [String: CallerRateLimits] = [:]
        for policy in [service.policy] + service.methods.map(\.policy) {
            guard let limit = policy.rateLimit, limit.per == .caller else { continue }
            if let kept = old[policy.origin], kept.settings == settings(limit), kept.maxCallers == limit.maxCallers {
                limits[policy.origin] = kept
            } else {
                limits[policy.origin] = CallerRateLimits(settings(limit), maxCallers: limit.maxCallers)
            }
        }
        return limits
    }

    /// The per-caller buckets of the rate limit written at `origin` with `per: caller`, if one was.
    package func callerRateLimits(origin: String) -> CallerRateLimits? {
        callerLimits.withLockedValue { $0[origin] }
    }

    private static func limiters(for service: ServiceConfig, keeping old: [String: RateLimiter]) -> [String: RateLimiter] {
        var limiters: [String: RateLimiter] = [:]
        for policy in [service.policy] + service.methods.map(\.policy) {
            guard let limit = policy.rateLimit, limit.per == .all else { continue }
            let settings = settings(limit)
            if let kept = old[policy.origin], kept.settings == settings {
                limiters[policy.origin] = kept
            } else {
                limiters[policy.origin] = RateLimiter(settings)
            }
        }
        return limiters
    }

    /// The shared bucket of the rate limit written at `origin`, if one was.
    package func rateLimiter(origin: String) -> RateLimiter? {
        rateLimiters.withLockedValue { $0[origin] }
    }

    package static func budgetSettings(_ config: RetryBudgetConfig) -> RetryBudget.Settings {
        var settings = RetryBudget.Settings()
        settings.ttlSeconds = Int(config.ttl.totalNanoseconds / 1_000_000_000)
        settings.minPerSecond = config.minRetriesPerSecond
        settings.percent = config.retryPercent
        return settings
    }

    /// A reload's settings; endpoint states are kept (new thresholds apply from the next failure).
    package func update(_ service: ServiceConfig) {
        let settings = Self.budgetSettings(service.retryBudget)
        budget.withLockedValue { if $0.settings != settings { $0 = RetryBudget(settings: settings) } }
        rateLimiters.withLockedValue { $0 = Self.limiters(for: service, keeping: $0) }
        callerLimits.withLockedValue { $0 = Self.callerLimits(for: service, keeping: $0) }
        state.withLockedValue { state in
            state.maxConcurrentCalls = service.maxConcurrentCalls
            guard state.settings != service.failureAccrual else { return }
            state.settings = service.failureAccrual
            for (address, _) in state.endpoints { state.endpoints[address] = EndpointHealth(address: address, settings: service.failureAccrual, service: self) }
        }
    }

    package var maxConcurrentCalls: Int? { state.withLockedValue { $0.maxConcurrentCalls } }

    /// The shared health of `address` (made on first use by any loop).
    package func endpoint(_ address: HostPort) -> EndpointHealth {
        state.withLockedValue { state in
            if let existing = state.endpoints[address] { return existing }
            let health = EndpointHealth(address: address, settings: state.settings, service: self)
            state.endpoints[address] = health
            return health
        }
    }

    /// Discovery's current set: endpoints that left are forgotten.
    package func keepOnly(_ addresses: Set<HostPort>) {
        state.withLockedValue { state in
            state.endpoints = state.endpoints.filter { addresses.contains($0.key) }
            state.outlierStreaks = state.outlierStreaks.filter { addresses.contains($0.key) }
        }
    }

    /// Whether one more endpoint may be ejected without crossing the floor of the set.
    fileprivate func mayEjectAnother() -> Bool {
        state.withLockedValue { state in
            let total = state.endpoints.count
            let ejected = state.endpoints.values.filter(\.isEjected).count
            return (ejected + 1) * 100 <= total * state.settings.maxEjectedPercent
        }
    }

    /// Whether every endpoint but `address` is ejected (or probing): all failing together.
    fileprivate func everyOtherEjected(than address: HostPort) -> Bool {
        let others = state.withLockedValue { state in state.endpoints.filter { $0.key != address }.map(\.value) }
        return !others.isEmpty && others.allSatisfy(\.isEjected)
    }

    /// `address` came back (its probe succeeded): the other ejected endpoints may be probed
    /// at once, with their backoffs from the minimum again.
    fileprivate func endpointRecovered(_ address: HostPort, at now: Int64) {
        let others = state.withLockedValue { state in state.endpoints.filter { $0.key != address }.map(\.value) }
        for other in others where other.isEjected { other.shortenWait(at: now) }
    }

    /// One endpoint ejected by a success-rate sweep, for the log.
    package struct OutlierEjection: Sendable {
        package var address: HostPort
        package var successRate: Double
        package var calls: Int
        package var mean: Double
        package var threshold: Double
        /// The ejection's backoff before jitter (nanoseconds).
        package var backoff: Int64
    }

    /// Outlier detection by success rate, once per interval (by one loop for the whole proxy):
    /// takes every endpoint's counts since the last sweep, and ejects the outliers, the worst
    /// first, while `max_ejected_percent` allows. Returns what it ejected.
    package func sweepSuccessRates(at now: Int64) -> [OutlierEjection] {
        let (settings, endpoints) = state.withLockedValue { ($0.settings, Array($0.endpoints)) }
        guard let config = settings.successRate else { return [] }
        let samples = endpoints.map { $0.value.takeOutcomes() }
        let verdict = SuccessRateOutliers.evaluate(samples, settings: SuccessRateOutliers.Settings(
            minimumRequests: config.minRequests, minimumEndpoints: config.minEndpoints, stdevFactor: config.stdevFactor,
            minimumDistance: config.minDistancePercent / 100))
        guard let verdict else { return [] }
        let outliers = Set(verdict.outliers)
        var ejected: [OutlierEjection] = []
        var random = SystemRandomNumberGenerator()
        for index in verdict.judged where !outliers.contains(index) {
            state.withLockedValue { _ = $0.outlierStreaks.removeValue(forKey: endpoints[index].key) }
        }
        for index in verdict.outliers {
            let (address, health) = endpoints[index]
            guard !health.isEjected, mayEjectAnother() else { continue }
            let streak = state.withLockedValue { state -> Int in
                let streak = (state.outlierStreaks[address] ?? 0) + 1
                state.outlierStreaks[address] = streak
                return streak
            }
            let base = settings.minBackoff.totalNanoseconds
            let backoff = min(settings.maxBackoff.totalNanoseconds, base.multipliedReportingOverflow(by: 1 << min(streak - 1, 30)).partialValue)
            guard health.ejectAsOutlier(at: now, backoff: backoff, random: &random) else { continue }
            successRateEjections.wrappingIncrement(ordering: .relaxed)
            ejected.append(OutlierEjection(address: address, successRate: samples[index].successRate, calls: samples[index].total,
                                           mean: verdict.mean, threshold: verdict.threshold, backoff: backoff))
        }
        return ejected
    }

    package var sweepsSuccessRates: Bool { state.withLockedValue { $0.settings.successRate != nil } }

    /// Takes a slot for a call, or false when the service is at its limit.
    package func admitCall(limit: Int?) -> Bool {
        guard let limit else { return true }
        if inFlight.loadThenWrappingIncrement(ordering: .relaxed) >= limit {
            inFlight.wrappingDecrement(ordering: .relaxed)
            return false
        }
        return true
    }

    package func callFinished(limit: Int?) {
        if limit != nil { inFlight.wrappingDecrement(ordering: .relaxed) }
    }

    /// Each endpoint's health-check verdict and counts (for the admin server and metrics).
    package func healthCheckSnapshot() -> [(HostPort, HealthCheckState.Status, passed: Int, failed: Int)] {
        let endpoints = state.withLockedValue { Array($0.endpoints) }
        return endpoints.compactMap { address, health in
            let s = health.healthCheckSnapshot
            return s.status.map { (address, $0, s.passed, s.failed) }
        }
    }

    /// Each endpoint's accrual state (for logs, tests and the admin server).
    package func snapshot() -> [(HostPort, FailureAccrual.State)] {
        let endpoints = state.withLockedValue { Array($0.endpoints) }
        return endpoints.map { ($0.key, $0.value.accrualState) }
    }
}

/// One endpoint's failure accrual and calls in flight, shared by every loop's pool for that endpoint.
package final class EndpointHealth: Sendable {
    package let address: HostPort
    /// Calls in flight at the endpoint from every loop: the load the balancers weigh, so loops
    /// see each other's calls and act as one balancer would (two loops each keeping one call on
    /// a slow endpoint would double what it gets).
    private let callsInFlight = ManagedAtomic<Int>(0)
    private weak let service: ServiceHealth?
    private let accrual: NIOLockedValueBox<FailureAccrual>
    /// Fast paths: `ejected` false means calls may go; `failures` false means nothing to reset.
    private let ejected = ManagedAtomic<Bool>(false)
    /// When the current ejection began (calls sent before it cannot end it).
    private let ejectedAt = ManagedAtomic<Int64>(.min)
    private let failures = ManagedAtomic<Bool>(false)
    /// Whether failures are counted at all (consecutive failures or success rate).
    private let enabled: Bool
    /// Outlier detection by success rate: the calls since the last sweep, successes in the low
    /// 32 bits and failures in the high ones, so counting one is one atomic add.
    private let outcomes = ManagedAtomic<UInt64>(0)
    private let countsOutcomes: Bool
    private static let oneFailure: UInt64 = 1 << 32

    package init(address: HostPort, settings: FailureAccrualConfig, service: ServiceHealth) {
        self.address = address
        self.service = service
        var s = FailureAccrual.Settings()
        // Only a success rate ejects when consecutive failures are off.
        s.threshold = settings.consecutiveFailures > 0 ? settings.consecutiveFailures : Int.max
        s.minBackoff = settings.minBackoff.totalNanoseconds
        s.maxBackoff = settings.maxBackoff.totalNanoseconds
        self.accrual = NIOLockedValueBox(FailureAccrual(settings: s))
        self.countsOutcomes = settings.successRate != nil
        self.enabled = settings.consecutiveFailures > 0 || countsOutcomes
    }

    /// The calls counted since the last sweep, and a fresh count.
    fileprivate func takeOutcomes() -> SuccessRateOutliers.Sample {
        let packed = outcomes.exchange(0, ordering: .relaxed)
        return SuccessRateOutliers.Sample(successes: Int(packed & 0xFFFF_FFFF), failures: Int(packed >> 32))
    }

    /// A sweep found the endpoint's success rate far below the others'.
    fileprivate func ejectAsOutlier(at now: Int64, backoff: Int64, random: inout SystemRandomNumberGenerator) -> Bool {
        let didEject = accrual.withLockedValue { $0.ejectAsOutlier(at: now, backoff: backoff, random: &random) }
        if didEject {
            ejectedAt.store(now, ordering: .relaxed)
            ejected.store(true, ordering: .relaxed)
        }
        return didEject
    }

    /// Active health checks (when the service has them): the checker's verdict, read on every
    /// pick as one atomic; the state behind it is touched only by the checker and the admin.
    private let activelyUnhealthy = ManagedAtomic<Bool>(false)
    private let activeCheck = NIOLockedValueBox<HealthCheckState?>(nil)
    private let checksPassed = ManagedAtomic<Int>(0)
    /// When the endpoint last came back (an ejection's probe passed, or its health checks):
    /// slow start counts its warm-up from here (Int64.min: never).
    private let restored = ManagedAtomic<Int64>(.min)
    package var restoredAt: Int64 { restored.load(ordering: .relaxed) }
    private let checksFailed = ManagedAtomic<Int>(0)

    package var isEjected: Bool { ejected.load(ordering: .relaxed) }
    package var inFlight: Int { callsInFlight.load(ordering: .relaxed) }
    package func callStarted() { callsInFlight.wrappingIncrement(ordering: .relaxed) }
    package func callEnded() { callsInFlight.wrappingDecrement(ordering: .relaxed) }
    package var accrualState: FailureAccrual.State { accrual.withLockedValue { $0.state } }

    /// Whether a call could go here now (an ejected endpoint whose backoff ended can take its
    /// probe; an endpoint failing its health checks takes none).
    package func isAvailable(at now: Int64) -> Bool {
        if activelyUnhealthy.load(ordering: .relaxed) { return false }
        guard ejected.load(ordering: .relaxed) else { return true }
        return accrual.withLockedValue { $0.isAvailable(at: now) }
    }

    /// Claims the right to send a call (for an ejected endpoint: the single probe).
    package func admit(at now: Int64) -> Bool {
        if activelyUnhealthy.load(ordering: .relaxed) { return false }
        guard ejected.load(ordering: .relaxed) else { return true }
        return accrual.withLockedValue { $0.admit(at: now) }
    }

    // MARK: - Active health checks

    /// A health check's outcome (nil reason: passed); `reported`: a Watch stream's message,
    /// which applies at once. Returns the threshold it crossed, if any.
    package func recordHealthCheck(failure reason: String?, settings: HealthCheckState.Settings, at now: Int64,
                                   reported: Bool = false) -> HealthCheckState.Transition {
        (reason == nil ? checksPassed : checksFailed).wrappingIncrement(ordering: .relaxed)
        let transition = activeCheck.withLockedValue { state in
            if state?.settings != settings { state = HealthCheckState(settings: settings) }
            if reported {
                let transition = state!.reported(servingOr: reason)
                activelyUnhealthy.store(state!.isUnhealthy, ordering: .relaxed)
                return transition
            }
            let transition = reason.map { state!.checkFailed(reason: $0) } ?? state!.checkPassed()
            activelyUnhealthy.store(state!.isUnhealthy, ordering: .relaxed)
            return transition
        }
        if transition == .recovered { restored.store(now, ordering: .relaxed) }
        return transition
    }

    /// The service no longer checks its endpoints: only passive accrual decides.
    package func stopHealthChecks() {
        activeCheck.withLockedValue { $0 = nil }
        activelyUnhealthy.store(false, ordering: .relaxed)
    }

    /// The checks' verdict and counts (nil status: the service does not check).
    package var healthCheckSnapshot: (status: HealthCheckState.Status?, passed: Int, failed: Int) {
        (activeCheck.withLockedValue { $0?.status }, checksPassed.load(ordering: .relaxed), checksFailed.load(ordering: .relaxed))
    }

    /// An attempt here ended with no verdict: if it was the probe, another may go.
    package func recordNeutral(at now: Int64) {
        guard ejected.load(ordering: .relaxed) else { return }
        accrual.withLockedValue { $0.abandonProbe(at: now) }
    }

    /// A success of an attempt sent at `startedAt`. One sent before the endpoint was ejected and
    /// answered after it (a call in flight at the ejection, slow on a busy machine) leaves the
    /// ejection standing; one sent since (the probe, or panic mode's) restores it. Returns true
    /// when it restored an ejected endpoint.
    @discardableResult
    package func recordSuccess(at now: Int64, startedAt: Int64 = .max) -> Bool {
        if countsOutcomes { outcomes.wrappingIncrement(by: 1, ordering: .relaxed) }
        guard failures.load(ordering: .relaxed) || ejected.load(ordering: .relaxed) else { return false }
        let wasEjected = ejected.load(ordering: .relaxed)
        if wasEjected && startedAt < ejectedAt.load(ordering: .relaxed) { return false }
        accrual.withLockedValue { $0.recordSuccess() }
        failures.store(false, ordering: .relaxed)
        ejected.store(false, ordering: .relaxed)
        guard wasEjected else { return false }
        restored.store(now, ordering: .relaxed)
        service?.endpointRecovered(address, at: now)
        return true
    }

    /// The backoff of the current ejection (nanoseconds), if the endpoint is out.
    package var ejectionBackoff: Int64? {
        switch accrualState {
        case .ejected(_, let backoff), .probing(let backoff): return backoff
        case .active: return nil
        }
    }

    /// A connection to the ejected endpoint was made: it may be probed at once.
    package func endWait(at now: Int64) {
        _ = accrual.withLockedValue { $0.endWait(at: now) }
    }

    fileprivate func shortenWait(at now: Int64) {
        accrual.withLockedValue { $0.shortenWait(at: now) }
    }

    /// Returns true when this failure ejected the endpoint.
    @discardableResult
    package func recordFailure(at now: Int64) -> Bool {
        guard enabled else { return false }
        if countsOutcomes { outcomes.wrappingIncrement(by: Self.oneFailure, ordering: .relaxed) }
        failures.store(true, ordering: .relaxed)
        let wouldEject = accrual.withLockedValue { a -> Bool in
            if case .active(let n) = a.state { return n + 1 >= a.settings.threshold }
            return false
        }
        let mayEject = wouldEject ? (service?.mayEjectAnother() ?? true) : true
        // A failed probe while every other endpoint is out too: the fault is likely shared, so
        // the backoff does not grow (it would keep endpoints out long after a recovery).
        let probing = accrual.withLockedValue { if case .probing = $0.state { return true } else { return false } }
        let grow = probing ? !(service?.everyOtherEjected(than: address) ?? false) : true
        var random = SystemRandomNumberGenerator()
        let didEject = accrual.withLockedValue { $0.recordFailure(at: now, random: &random, mayEject: mayEject, growBackoff: grow) }
        if didEject && !probing { ejectedAt.store(now, ordering: .relaxed) }
        if accrual.withLockedValue({ $0.isEjected }) { ejected.store(true, ordering: .relaxed) }
        if didEject && !probing { service?.countEjectionAfterFailures() }
        return didEject
    }
}
