import FerryUpstream
import FerryMetrics
import FerryConfig
import FerryDiscovery
import FerryH2
import FerryPolicy
import Logging
import NIOCore

/// A method's policy with its durations converted to nanoseconds once, not per call.
final class ResolvedPolicy {
    let timeoutNanoseconds: Int64?
    /// Whether a caller's timeout replaces `timeoutNanoseconds`, and up to what (nil: no cap).
    let callerTimeoutReplaces: Bool
    let callerTimeoutCapNanoseconds: Int64?
    let deadlineOffsetNanoseconds: Int64
    let maxMessageSize: Int
    let streamIdleNanoseconds: Int64?
    let sendsDeadlineHeader: Bool
    /// gRPC status codes counted as endpoint failures, as a bit set (bit n: status n).
    let failureStatusBits: UInt32
    /// Where the policy was configured (`services.greeter.methods[0]`), named in messages.
    let origin: String

    var failureStatuses: FailureStatuses { FailureStatuses(bits: failureStatusBits) }
    let retry: RetryPolicy
    let retryOn: FailureStatuses
    let perTryTimeoutNanoseconds: Int64?
    let hedge: HedgePolicy?
    /// What the call's state machine needs of it (`isGRPC` is set per call).
    let attempts: CallAttemptPolicy
    /// The rate limit written with this policy (shared by every loop), and how it reads.
    let rateLimiter: RateLimiter?
    /// Instead, with `per: caller`: a bucket per caller identity.
    let callerLimits: CallerRateLimits?
    let rateLimit: RateLimitConfig?
    /// Faults injected into the method's calls (a route's own come first).
    let fault: FaultInjector?

    init(_ policy: CallPolicy, rateLimiter: RateLimiter? = nil, callerLimits: CallerRateLimits? = nil) {
        fault = policy.fault.map(FaultInjector.init)
        self.rateLimiter = policy.rateLimit?.per == .all ? rateLimiter : nil
        self.callerLimits = policy.rateLimit?.per == .caller ? callerLimits : nil
        rateLimit = policy.rateLimit
        timeoutNanoseconds = policy.timeout?.totalNanoseconds
        callerTimeoutReplaces = policy.callerTimeoutCap != nil
        callerTimeoutCapNanoseconds = policy.callerTimeoutCap??.totalNanoseconds
        deadlineOffsetNanoseconds = policy.deadlineOffset.totalNanoseconds
        maxMessageSize = policy.maxMessageSize
        streamIdleNanoseconds = policy.streamIdleTimeout?.totalNanoseconds
        sendsDeadlineHeader = policy.deadlineHeader
        failureStatusBits = policy.failureStatuses.reduce(0) { $0 | (1 << UInt32($1.rawValue)) }
        retry = policy.retry
        retryOn = FailureStatuses(bits: policy.retry.on.reduce(0) { $0 | (1 << UInt32($1.rawValue)) })
        perTryTimeoutNanoseconds = policy.retry.perTryTimeout?.totalNanoseconds
        hedge = policy.hedge
        origin = policy.origin
        attempts = CallAttemptPolicy(
            retryEnabled: policy.retry.enabled, retryOn: retryOn, failureStatuses: FailureStatuses(bits: failureStatusBits),
            maxAttempts: policy.retry.maxAttempts, holdResponseCap: policy.retry.enabled ? policy.retry.holdResponse : 0,
            perTryTimeoutNanoseconds: perTryTimeoutNanoseconds, hedgeMaxAttempts: policy.hedge?.maxAttempts)
    }
}

extension ResolvedPolicy {
    var limitsRate: Bool { rateLimiter != nil || callerLimits != nil }

    /// Takes a token from the policy's bucket for this call (the caller's own with `per: caller`).
    func admitsRate(at now: Int64, caller: CallerLimiterCache?) -> Bool {
        if let rateLimiter { return rateLimiter.admit(at: now) }
        guard let callerLimits else { return true }
        return (caller?.limiter(in: callerLimits, at: now) ?? callerLimits.anonymous).admit(at: now)
    }
}

/// One service as one event loop sees it: its method policies, its endpoints with a pool per
/// endpoint, and the picker. Confined to its loop; nothing here is shared or locked.
///
/// A reload updates it in place (new calls see the new policies; calls in flight keep the
/// policy and pool they started with). Endpoint changes from discovery keep the pools of
/// endpoints that stay, add pools for new ones, and retire the pools of endpoints that left:
/// their waiting calls are placed again, their open streams finish, then their connections close.
final class ServiceRuntime {
    private(set) var config: ServiceConfig
    private var methodTable: MethodTable
    private var methodPolicies: [ResolvedPolicy]
    private var servicePolicy: ResolvedPolicy
    private(set) var pools: [UpstreamPool] = []
    /// Failure accrual and load shedding, shared with the other loops.
    let health: ServiceHealth
    private var roundRobin: RoundRobin
    private var weightedRoundRobin = WeightedRoundRobin()
    private var random: FastRandom
    /// True when some endpoint's weight differs from another's (round-robin then goes weighted).
    private var weighted = false
    /// Which discovery source's updates this runtime takes (a reload may start a new one).
    private(set) var sourceID: Int
    private(set) var isRetired = false
    let eventLoop: EventLoop
    let logger: Logger

    /// How long an endpoint whose connect just failed is passed over while others are healthy.
    static let connectFailureAvoidance = TimeAmount.seconds(1)

    /// The loop's header blocks, for the upstream connections' received headers.
    let headerBlocks: HeaderBlockPool

    /// The loop's time, and how its pools reach their endpoints (TCP; in tests, in memory).
    let clock: MonotonicClock
    private(set) var connector: UpstreamConnector

    init(config: ServiceConfig, health: ServiceHealth, sourceID: Int, endpoints: [Endpoint], eventLoop: EventLoop,
         loopIndex: Int, headerBlocks: HeaderBlockPool = HeaderBlockPool(), logger: Logger,
         clock: MonotonicClock = .system, connector: UpstreamConnector = .tcp) {
        self.clock = clock
        self.connector = connector
        self.config = config
        self.health = health
        self.random = FastRandom()
        self.methodTable = MethodTable(config.methods)
        self.methodPolicies = config.methods.map { Self.resolve($0.policy, health) }
        self.servicePolicy = Self.resolve(config.policy, health)
        self.sourceID = sourceID
        self.eventLoop = eventLoop
        self.logger = logger
        self.headerBlocks = headerBlocks
        self.roundRobin = RoundRobin(start: loopIndex)
        self.checksHealth = loopIndex == 0
        noteRateLimits()
        setEndpoints(endpoints)
    }

    private static func resolve(_ policy: CallPolicy, _ health: ServiceHealth) -> ResolvedPolicy {
        ResolvedPolicy(policy, rateLimiter: health.rateLimiter(origin: policy.origin), callerLimits: health.callerRateLimits(origin: policy.origin))
    }

    /// This loop's runtime of the service is the one that health-checks its endpoints (loop 0:
    /// one checker per endpoint for the whole proxy; the verdict is shared).
    private let checksHealth: Bool
    private var checkers: [ObjectIdentifier: EndpointHealthChecker] = [:]

    /// Starts a checker for each pool that has none, stops those of pools that left.
    private func syncHealthCheckers() {
        guard checksHealth else { return }
        guard let check = config.healthCheck, !isRetired else {
            for checker in checkers.values { checker.stop() }
            checkers = [:]
            if config.healthCheck == nil { for pool in pools { pool.health.stopHealthChecks() } }
            return
        }
        var next: [ObjectIdentifier: EndpointHealthChecker] = [:]
        for pool in pools {
            if let running = checkers.removeValue(forKey: ObjectIdentifier(pool)) {
                next[ObjectIdentifier(pool)] = running
                continue
            }
            let checker = EndpointHealthChecker(pool: pool, config: check, logger: logger)
            let spread = Int64(Double(check.interval.totalNanoseconds) * 0.1 * Double(random.next() % 1000) / 1000)
            checker.start(initialDelay: .nanoseconds(spread))
            next[ObjectIdentifier(pool)] = checker
        }
        for checker in checkers.values { checker.stop() }
        checkers = next
    }

    /// Outlier detection by success rate: the lead loop's runtime sweeps the shared counts once
    /// per interval (one sweep for the whole proxy, like the health checks).
    private var successRateSweep: Scheduled<Void>?
    private var sweepInterval: Duration?

    private func syncSuccessRateSweep() {
        guard checksHealth else { return }
        let interval = isRetired ? nil : config.failureAccrual.successRate?.interval
        guard interval != sweepInterval else { return }
        successRateSweep?.cancel()
        successRateSweep = nil
        sweepInterval = interval
        scheduleSweep()
    }

    private func scheduleSweep() {
        guard let interval = sweepInterval else { return }
        successRateSweep = eventLoop.scheduleTask(in: .nanoseconds(interval.totalNanoseconds)) { [weak self] in
            guard let self, self.sweepInterval != nil else { return }
            self.sweepSuccessRates()
            self.scheduleSweep()
        }
    }

    private func sweepSuccessRates() {
        for ejection in health.sweepSuccessRates(at: clock.now()) {
            logger.warning("endpoint ejected: its success rate is far below the other endpoints'", metadata: [
                "service": "\(name)", "endpoint": "\(ejection.address)",
                "success_rate": "\(Self.percent(ejection.successRate))", "calls": "\(ejection.calls)",
                "mean": "\(Self.percent(ejection.mean))", "threshold": "\(Self.percent(ejection.threshold))",
                "backoff": "\(ConfigSummary.format(.nanoseconds(ejection.backoff)))"])
        }
    }

    private static func percent(_ share: Double) -> String {
        let tenths = Int((max(0, share) * 1000).rounded())
        return "\(tenths / 10).\(tenths % 10)%"
    }

    var name: String { config.name }

    /// Requests counted here and not yet added to the shared retry budget: touching the
    /// budget's atomics (shared by every loop) once per call costs more than the call's own
    /// counting, so deposits go in batches.
    private var unsentDeposits = 0
    static let depositBatch = 16

    func depositRetryBudget(at now: Int64) {
        unsentDeposits += 1
        if unsentDeposits >= Self.depositBatch { flushDeposits(at: now) }
    }

    /// Takes one retry from the shared budget (after adding this loop's unsent deposits).
    func withdrawRetry(at now: Int64) -> Bool {
        flushDeposits(at: now)
        return health.retryBudget.tryWithdraw(at: now)
    }

    private func flushDeposits(at now: Int64) {
        guard unsentDeposits > 0 else { return }
        health.retryBudget.deposit(unsentDeposits, at: now)
        unsentDeposits = 0
    }

    /// Time to response headers per method policy (by its origin), for hedging at the p95.
    private var observedLatency: [String: LatencyHistogram] = [:]

    func recordLatency(_ nanoseconds: Int64, origin: String) {
        var histogram = observedLatency[origin] ?? LatencyHistogram()
        histogram.observe(nanoseconds)
        if histogram.count >= 2_000 { histogram.halve() }   // forget the distant past
        observedLatency[origin] = histogram
    }

    /// The method's observed 95th percentile (a bucket's upper bound), or nil with too few samples.
    func latencyP95(origin: String) -> Int64? {
        observedLatency[origin]?.quantile(0.95, minimumSamples: 20)
    }

    /// The policy for a request path: its `methods` entry, or the service's own.
    func policy(forPath path: UnsafeRawBufferPointer?) -> ResolvedPolicy {
        guard !methodTable.isEmpty, let path, let index = methodTable.match(path: path) else { return servicePolicy }
        return methodPolicies[index]
    }


    /// Whether any rate limit is written for the service or its methods (calls of services
    /// without one read no clock for it).
    private(set) var limitsRate = false

    private func noteRateLimits() {
        limitsRate = servicePolicy.limitsRate || methodPolicies.contains(where: \.limitsRate)
    }

    /// The rate limit that refuses a call of `policy` now, if one does: the method entry's
    /// own, then the service's (which every call of the service counts against). `caller`:
    /// the connection's buckets for its identity (nil: it has none).
    func rateLimitRefusing(_ policy: ResolvedPolicy, at now: Int64, caller: CallerLimiterCache? = nil) -> ResolvedPolicy? {
        if !policy.admitsRate(at: now, caller: caller) { return policy }
        if policy !== servicePolicy, !servicePolicy.admitsRate(at: now, caller: caller) { return servicePolicy }
        return nil
    }

    /// The pool for the next call, by the service's balancer, among endpoints that are not
    /// ejected by failure accrual nor just failed to connect. If none is left, every endpoint
    /// is a candidate again (panic mode: better to try than to fail every call). An ejected
    /// endpoint whose backoff ended takes exactly one probe call, whichever loop claims it.
    /// `avoiding`: pools an earlier attempt of the call used; passed over while another is available.
    func pickPool(avoiding tried: [ObjectIdentifier] = [], at time: Int64? = nil) -> UpstreamPool? {
        let pools = self.pools
        guard !pools.isEmpty else { return nil }
        let now = time ?? clock.now()
        if !tried.isEmpty, pools.count > 1,
           let index = pick(pools, now: now, isAvailable: { i in
               !tried.contains(ObjectIdentifier(pools[i])) && pools[i].health.isAvailable(at: now)
                   && !pools[i].isFailing(within: Self.connectFailureAvoidance)
           }), pools[index].health.admit(at: now) {
            return pools[index]
        }
        for _ in 0..<2 {
            guard let index = pick(pools, now: now, isAvailable: { i in
                pools[i].health.isAvailable(at: now) && !pools[i].isFailing(within: Self.connectFailureAvoidance)
            }) else { break }
            if pools[index].health.admit(at: now) { return pools[index] }
            // Another loop took the probe meanwhile: choose again.
        }
        // Every endpoint ejected and failing to connect (a partition, a dead node): calls
        // fail fast; the ejected pools' reconnect probes bring traffic back once one answers.
        if unreachable(pools) != nil { return nil }
        // Panic mode: nothing healthy; use whatever the balancer prefers among all.
        return pick(pools, now: now, isAvailable: { _ in true }).map { pools[$0] }
    }

    /// When no endpoint can take calls: every one is ejected and its last connect failed within
    /// a connect timeout and a second (its reconnects keep that fresh while it stays down).
    /// The endpoint and reason of one of them, for the answer.
    func unreachable() -> (endpoint: String, reason: String)? { unreachable(pools) }

    private func unreachable(_ pools: [UpstreamPool]) -> (endpoint: String, reason: String)? {
        let window = Self.connectFailureAvoidance + .nanoseconds(config.pool.connectTimeout.totalNanoseconds)
        guard !pools.isEmpty, pools.allSatisfy({ $0.health.isEjected && $0.isFailing(within: window) }) else { return nil }
        return (pools[0].endpointName, pools[0].lastConnectError)
    }

    private func pick(_ pools: [UpstreamPool], now: Int64, isAvailable: (Int) -> Bool) -> Int? {
        switch config.balancer.kind {
        case .p2cPeakEWMA:
            return PowerOfTwoChoices.pick(count: pools.count, using: &random, isAvailable: isAvailable) { i in
                pools[i].cost(at: now)
            }
        case .p2cLeastRequest:
            return PowerOfTwoChoices.pick(count: pools.count, using: &random, isAvailable: isAvailable) { i in
                Double(pools[i].health.inFlight + 1) / pools[i].effectiveWeight(at: now)
            }
        case .roundRobin:
            if config.slowStart != nil, pools.contains(where: { $0.warmUpShare(at: now) < 1 }) {
                // Warming endpoints count with their share of their weight (in hundredths).
                return weightedRoundRobin.pick(weights: pools.lazy.map { Int(($0.effectiveWeight(at: now) * 100).rounded()) },
                                               isAvailable: isAvailable)
            }
            if weighted {
                return weightedRoundRobin.pick(weights: pools.lazy.map(\.weight), isAvailable: isAvailable)
            }
            return roundRobin.pick(count: pools.count, isAvailable: isAvailable)
        }
    }

    // MARK: - Changes

    /// A reload: new policies at once; new pools if the pool settings changed; the endpoints
    /// of a new discovery source.
    /// A new `tls` section retires the pools too (their connections were verified under the
    /// old one); `connector` is how new connections are made.
    func update(config newConfig: ServiceConfig, sourceID newSourceID: Int, endpoints: [Endpoint], connector newConnector: UpstreamConnector? = nil) {
        let poolChanged = newConfig.pool != config.pool || newConfig.balancer != config.balancer
            || newConfig.failureAccrual != config.failureAccrual || newConfig.tls != config.tls
        if newConfig.healthCheck != config.healthCheck {
            // New settings: the checks start over (the shared verdict stays until they decide).
            for checker in checkers.values { checker.stop() }
            checkers = [:]
        }
        if let newConnector { setConnector(newConnector) }
        config = newConfig
        methodTable = MethodTable(newConfig.methods)
        methodPolicies = newConfig.methods.map { Self.resolve($0.policy, health) }
        servicePolicy = Self.resolve(newConfig.policy, health)
        noteRateLimits()
        if poolChanged {
            let old = pools
            pools = []
            setEndpoints(endpoints, retiring: old)
        } else if newSourceID != sourceID {
            setEndpoints(endpoints)
        }
        sourceID = newSourceID
        applySlowStart(to: pools)
        syncHealthCheckers()
        syncSuccessRateSweep()
    }

    private func applySlowStart(to pools: [UpstreamPool]) {
        for pool in pools {
            pool.slowStartWindow = config.slowStart?.window.totalNanoseconds ?? 0
            pool.slowStartMinimum = Double(config.slowStart?.minWeightPercent ?? 10) / 100
        }
    }

    /// A certificate rotation: new connections use `connector`; open ones stay until they close.
    func setConnector(_ connector: UpstreamConnector) {
        self.connector = connector
        for pool in pools { pool.connector = connector }
    }

    /// Discovery's new endpoint set.
    func setEndpoints(_ endpoints: [Endpoint]) {
        setEndpoints(endpoints, retiring: [])
    }

    private func setEndpoints(_ endpoints: [Endpoint], retiring alsoRetire: [UpstreamPool]) {
        var existing: [HostPort: UpstreamPool] = [:]
        for pool in pools { existing[pool.address] = pool }
        var next: [UpstreamPool] = []
        for endpoint in endpoints {
            let address = HostPort(host: endpoint.host, port: endpoint.port)
            if let pool = existing.removeValue(forKey: address) {
                pool.weight = endpoint.weight
                next.append(pool)
            } else {
                next.append(UpstreamPool(endpoint: endpoint, service: config.name, settings: config.pool, balancer: config.balancer,
                                         accrual: config.failureAccrual, clock: clock, connector: connector, health: health.endpoint(address), eventLoop: eventLoop, headerBlocks: headerBlocks,
                                         logger: logger))
            }
        }
        // Slow start: endpoints that join beside ones that stay warm up (at start, or when every
        // endpoint is new, all are equal and none does).
        let before = Set(pools.map(ObjectIdentifier.init))
        let joined = next.filter { !before.contains(ObjectIdentifier($0)) }
        if joined.count < next.count {
            let now = clock.now()
            for pool in joined { pool.joinedAt = now }
        }
        applySlowStart(to: next)
        let added = next.count - (pools.count - existing.count)
        if added > 0 || !existing.isEmpty {
            logger.info("endpoints changed", metadata: ["service": "\(name)", "endpoints": "\(next.count)",
                                                         "added": "\(added)", "removed": "\(existing.count)"])
        }
        pools = next
        weighted = Set(next.map(\.weight)).count > 1
        for pool in alsoRetire + Array(existing.values) { pool.retire() }
        syncHealthCheckers()
        syncSuccessRateSweep()
    }

    /// The service left the configuration: every pool retires (calls in flight finish).
    func retire() {
        isRetired = true
        syncSuccessRateSweep()
        for checker in checkers.values { checker.stop() }
        checkers = [:]
        let old = pools
        pools = []
        for pool in old { pool.retire() }
    }

    /// Shutdown: waiting calls fail, connections close when their streams are done.
    func drain() {
        successRateSweep?.cancel()
        sweepInterval = nil
        for checker in checkers.values { checker.stop() }
        checkers = [:]
        for pool in pools { pool.drain() }
    }
}

/// A set of gRPC status codes checked without hashing.
struct FailureStatuses {
    let bits: UInt32
    func contains(_ status: Int) -> Bool { status >= 0 && status < 32 && bits & (1 << UInt32(status)) != 0 }
}
