import FerryConfig
import FerryDiscovery
import FerryMetrics
import FerryH2
import Logging
import NIOCore
import NIOPosix
import FerryPolicy

/// HTTP/2 connections to one endpoint, owned by one event loop (no locks: only that loop
/// touches it). Streams are multiplexed on as few connections as the peer's
/// MAX_CONCURRENT_STREAMS allows; another connection opens only when those are full.
package final class UpstreamPool {
    package let endpoint: Endpoint
    package let address: HostPort
    /// The endpoint's weight from discovery (for weighted balancing).
    package var weight: Int
    /// `endpoint` as text, made once: error messages and logs name it.
    package let endpointName: String
    package let serviceName: String
    package let settings: PoolConfig
    /// Failure accrual, shared with the other loops' pools for this endpoint.
    package let health: EndpointHealth
    /// Calls sent here and not finished (waiting for a connection or forwarding), on this loop.
    package private(set) var pending = 0
    /// This loop's latency estimate for the endpoint (time to response headers).
    package private(set) var latency: PeakEWMA
    /// This loop's attempts here still waiting for their response headers.
    package private(set) var unanswered = UnansweredAttempts()
    /// Attempts, responses by status, latency and connect failures here, on this loop.
    package var counts = EndpointCounts()
    /// Which attempts that end unanswered count as failures in accrual.
    private let accrual: FailureAccrualConfig
    package let eventLoop: EventLoop
    package let logger: Logger
    private let h2Settings: H2Settings

    private var connections: [UpstreamConnection] = []
    /// The loop's header blocks (shared with the downstream connections, which forward them).
    package let headerBlocks: HeaderBlockPool
    /// Calls waiting for a stream, served in turn by downstream connection (one client's queue
    /// does not hold back another's calls).
    private var waiters = FairQueue<ObjectIdentifier, any UpstreamWaiter>()
    /// When the latest attempt to connect failed, so the balancer can avoid this endpoint a while.
    package private(set) var lastConnectFailure: Int64?
    /// Why the last connect failed (for the answer of a call failed fast).
    package private(set) var lastConnectError = ""
    /// The loop's time, and how connections to the endpoint are made.
    package let clock: MonotonicClock
    /// How new connections are made (TCP, or TLS); a reload or a certificate rotation swaps it.
    package var connector: UpstreamConnector
    private var draining = false
    /// The endpoint left the service (discovery or reload): nothing new is lent here.
    private var retired = false

    /// Streams a connection is assumed to allow before the peer's SETTINGS say otherwise.
    package static let assumedStreamsPerConnection = 100

    package init(endpoint: Endpoint, service: String, settings: PoolConfig, balancer: BalancerConfig,
         accrual: FailureAccrualConfig = FailureAccrualConfig(), clock: MonotonicClock = .system,
         connector: UpstreamConnector = .tcp, health: EndpointHealth,
         eventLoop: EventLoop, headerBlocks: HeaderBlockPool = HeaderBlockPool(), logger: Logger) {
        self.headerBlocks = headerBlocks
        self.accrual = accrual
        self.clock = clock
        self.connector = connector
        self.endpoint = endpoint
        self.health = health
        self.latency = PeakEWMA(initial: balancer.initialRTT.totalNanoseconds, decay: balancer.decay.totalNanoseconds,
                                now: clock.now())
        self.address = HostPort(host: endpoint.host, port: endpoint.port)
        self.weight = endpoint.weight
        self.endpointName = endpoint.description
        self.serviceName = service
        self.settings = settings
        self.eventLoop = eventLoop
        self.logger = logger
        var h2 = H2Settings()
        h2.initialStreamWindow = settings.http2.initialStreamWindow
        h2.connectionWindow = settings.http2.connectionWindow
        h2.maxHeaderListSize = settings.http2.maxHeaderListSize
        h2.maxFrameSize = settings.http2.maxFrameSize
        h2.maxConcurrentStreams = 100
        self.h2Settings = h2
    }

    package var openConnectionCount: Int { connections.filter(\.isReady).count }
    /// Streams open on this pool's connections (ready or retiring).
    package var openStreamCount: Int { connections.reduce(0) { $0 + $1.openStreamCount } }
    package var pendingCallCount: Int { waiters.count }

    /// True when the latest attempt to connect failed and no connection is up (since when: any time).
    package var lastConnectFailed: Bool {
        lastConnectFailure != nil && !connections.contains(where: \.isReady)
    }

    /// True when a connect attempt failed within `window` and no connection is up.
    package func isFailing(within window: TimeAmount) -> Bool {
        guard let failed = lastConnectFailure, !connections.contains(where: \.isReady) else { return false }
        return clock.now() - failed < window.nanoseconds
    }

    // MARK: - Attempts (for the balancer and failure accrual)

    /// An attempt was placed here (the call's shell tells the pool as its state machine says).
    package func attemptStarted(at now: Int64) {
        pending += 1
        counts.requests += 1
        unanswered.started(at: now)
        health.callStarted()
    }

    /// The attempt placed at `startedAt` got its response headers at `now`.
    package func attemptAnswered(startedAt: Int64, at now: Int64) {
        unanswered.ended(startedAt: startedAt)
        counts.latency.observe(now - startedAt)
    }

    /// Why an attempt ended before it was answered, when neither side failed outright.
    package enum Expiry {
        /// The call's deadline (or its stream idle timeout) ran out.
        case deadline
        /// The attempt's per-try timeout ran out.
        case perTryTimeout
        /// The caller cancelled (reset its stream, or its connection was lost).
        case cancelled
        /// Another attempt of a hedged call answered first.
        case lostRace
    }

    /// How an attempt here ended, for the balancer's estimate and failure accrual.
    package enum AttemptOutcome {
        /// Answered, not with a failure status; `rtt` to the response headers, if they came.
        case success(rtt: Int64?)
        /// Connect failure, reset, lost connection, or a status the route counts as failure.
        case failure
        /// Ended for `Expiry`. If it was still unanswered, the time it waited is a lower bound
        /// of the endpoint's latency (the estimate rises to it), and failure accrual counts it
        /// as the service's `failure_accrual` settings say for that expiry.
        case expired(Expiry)
        /// No verdict: moved elsewhere unsent, or the call failed for reasons not the endpoint's.
        case neutral
    }

    /// The outcome of the attempt placed at `startedAt` (`answered`: its response headers came).
    package func attemptFinished(_ outcome: AttemptOutcome, at now: Int64, startedAt: Int64, answered: Bool) {
        pending -= 1
        if !answered { unanswered.ended(startedAt: startedAt) }
        health.callEnded()
        switch outcome {
        case .success(let rtt):
            if let rtt { latency.observe(rtt, at: now) }
            if health.recordSuccess(at: now, startedAt: startedAt) {
                logger.info("endpoint restored: a call sent since its ejection succeeded (its probe, or one of panic mode)",
                            metadata: ["service": "\(serviceName)", "endpoint": "\(endpointName)"])
            }
        case .failure:
            recordFailure(at: now)
        case .expired(let expiry):
            guard !answered else {
                health.recordNeutral(at: now)
                return
            }
            latency.observeAtLeast(now - startedAt, at: now)
            if accrual.counts(expiry) { recordFailure(at: now) } else { health.recordNeutral(at: now) }
        case .neutral:
            health.recordNeutral(at: now)
        }
    }

    private func recordFailure(at now: Int64) {
        if health.recordFailure(at: now) {
            let backoff = health.ejectionBackoff.map { ConfigSummary.format(.nanoseconds($0)) } ?? "?"
            logger.warning("endpoint ejected after consecutive failures",
                           metadata: ["service": "\(serviceName)", "endpoint": "\(endpointName)", "backoff": "\(backoff)",
                                      "then": "one probe call"])
            if !connections.contains(where: \.isReady) { scheduleReconnectProbe() }
        }
    }

    /// The balancer's cost of sending one more call here at `now` (lower is better).
    package func cost(at now: Int64) -> Double {
        latency.cost(pending: health.inFlight, unanswered: unanswered, at: now) / effectiveWeight(at: now)
    }

    // MARK: - Slow start

    /// The warm-up window (nanoseconds; 0: no slow start), the least share of the weight, and
    /// when this pool joined beside serving ones (Int64.min: it did not).
    package var slowStartWindow: Int64 = 0
    package var slowStartMinimum = 0.1
    package var joinedAt = Int64.min

    /// The weight the balancers use at `now`: all of it, or during a warm-up after the
    /// endpoint joined or came back, a share growing linearly from the minimum.
    @inline(__always)
    package func effectiveWeight(at now: Int64) -> Double {
        let full = Double(max(1, weight))
        guard slowStartWindow > 0 else { return full }
        return full * warmUpShare(at: now)
    }

    package func warmUpShare(at now: Int64) -> Double {
        let since = max(joinedAt, health.restoredAt)
        guard since != .min, now - since < slowStartWindow else { return 1 }
        return max(slowStartMinimum, Double(max(0, now - since)) / Double(slowStartWindow))
    }

    // MARK: - Lending streams

    /// Gives `call` a connection with room for a stream, now or once one has room.
    package func acquire(_ call: any UpstreamWaiter) {
        if retired {
            call.poolRetired()
            return
        }
        if draining {
            call.upstreamFailed(.shuttingDown)
            return
        }
        if waiters.isEmpty, let connection = connectionWithRoom() {
            lend(connection, to: call)
            return
        }
        guard waiters.count < settings.maxPendingCalls else {
            call.upstreamFailed(.overloaded(endpoint: endpointName))
            return
        }
        waiters.append(call, key: call.fairnessKey)
        openConnectionIfNeeded()
    }

    package func cancel(_ call: any UpstreamWaiter) {
        waiters.remove(key: call.fairnessKey) { $0 === call }
    }

    private func lend(_ connection: UpstreamConnection, to call: any UpstreamWaiter) {
        guard let h2 = connection.h2 else { return }
        connection.streamWillOpen()
        call.upstreamReady(h2)
        // The call may have declined (its deadline ran out meanwhile): keep idle accounting right.
        if h2.openStreamCount == 0 { connection.streamsMayBeIdle() }
    }

    private func connectionWithRoom() -> UpstreamConnection? {
        connections.first { $0.h2?.canOpenStream ?? false }
    }

    /// Serves waiting calls while any connection has room; opens another connection if the
    /// ones being established cannot take the rest.
    private func serveWaiters() {
        while !waiters.isEmpty, let connection = connectionWithRoom() {
            lend(connection, to: waiters.popFirst()!)
        }
        if !waiters.isEmpty { openConnectionIfNeeded() }
    }

    private func openConnectionIfNeeded() {
        let connecting = connections.filter(\.isConnecting).count
        guard waiters.count > connecting * Self.assumedStreamsPerConnection,
              connections.count < settings.maxConnectionsPerEndpoint else { return }
        openConnection()
    }

    private func openConnection() {
        let connection = UpstreamConnection(pool: self)
        connections.append(connection)
        connection.connect(settings: h2Settings, connectTimeout: .nanoseconds(settings.connectTimeout.totalNanoseconds))
    }

    // MARK: - Ending an ejection early

    /// How often a pool whose endpoint is ejected, with no connection up, tries to connect.
    package static let reconnectProbeInterval = TimeAmount.milliseconds(200)
    private var reconnectProbe: Scheduled<Void>?

    /// The endpoint was ejected while this pool has no connection up (it crashed, or refuses
    /// connections): try to connect now and then, without a call. Once a connection is made,
    /// the endpoint's wait ends and the next call is its probe, so an endpoint that restarted
    /// is back within about one interval instead of the rest of its backoff. An endpoint that
    /// accepts connections but fails calls gains nothing: its connection is up, so no attempt
    /// is made, and a failed probe grows its backoff as before.
    private func scheduleReconnectProbe() {
        guard reconnectProbe == nil, !draining else { return }
        reconnectProbe = eventLoop.assumeIsolatedUnsafeUnchecked().scheduleTask(in: Self.reconnectProbeInterval) {
            self.reconnectProbe = nil
            guard !self.draining, self.health.isEjected, !self.connections.contains(where: \.isReady) else { return }
            if self.connections.isEmpty { self.openConnection() }
            self.scheduleReconnectProbe()
        }
    }

    // MARK: - Connection events

    package func connectionReady(_ connection: UpstreamConnection) {
        lastConnectFailure = nil
        if health.isEjected { health.endWait(at: clock.now()) }
        logger.debug("upstream connected", metadata: ["endpoint": "\(endpoint)"])
        serveWaiters()
    }

    package func connectionHasRoom(_ connection: UpstreamConnection) {
        serveWaiters()
    }

    package func connectFailed(_ connection: UpstreamConnection, reason: String) {
        remove(connection)
        counts.connectFailures += 1
        lastConnectFailure = clock.now()
        lastConnectError = reason
        if health.isEjected {
            // Ejected (the warning said so): its reconnect attempts, every 200 ms, fail quietly.
            logger.debug("upstream connect failed", metadata: ["endpoint": "\(endpoint)", "error": "\(reason)"])
            if !connections.contains(where: \.isReady) { scheduleReconnectProbe() }
        } else {
            logger.warning("upstream connect failed", metadata: ["endpoint": "\(endpoint)", "error": "\(reason)"])
        }
        if connections.isEmpty {
            for call in waiters.removeAll() { call.upstreamFailed(.connectFailed(endpoint: endpointName, reason: reason)) }
        } else {
            serveWaiters()
        }
    }

    /// `connection` takes no more streams (closed, retired or told to go away).
    package func connectionLeftPool(_ connection: UpstreamConnection) {
        remove(connection)
        logger.debug("upstream connection left the pool", metadata: ["endpoint": "\(endpoint)"])
        if !waiters.isEmpty { serveWaiters() }
    }

    private func remove(_ connection: UpstreamConnection) {
        connections.removeAll { $0 === connection }
    }

    /// Stops lending: waiting calls fail, idle connections close, busy ones close when done.
    package func drain() {
        draining = true
        reconnectProbe?.cancel()
        reconnectProbe = nil
        for call in waiters.removeAll() { call.upstreamFailed(.shuttingDown) }
        for connection in connections { connection.closeWhenIdle() }
    }

    /// The endpoint is no longer part of its service: waiting calls go back to be placed
    /// elsewhere, open streams finish, connections close once idle.
    package func retire() {
        guard !retired else { return }
        retired = true
        draining = true
        reconnectProbe?.cancel()
        reconnectProbe = nil
        for call in waiters.removeAll() { call.poolRetired() }
        for connection in connections { connection.closeWhenIdle() }
    }

    package var idleTimeout: TimeAmount { .nanoseconds(settings.idleTimeout.totalNanoseconds) }
    package var isDraining: Bool { draining }
}

extension FailureAccrualConfig {
    /// Whether an attempt that ended unanswered for `expiry` counts as the endpoint's failure.
    package func counts(_ expiry: UpstreamPool.Expiry) -> Bool {
        switch expiry {
        case .deadline: return countDeadlineExceeded
        case .perTryTimeout: return countPerTryTimeout
        case .cancelled: return countCancelled
        case .lostRace: return false
        }
    }
}
