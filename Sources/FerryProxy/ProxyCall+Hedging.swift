import FerryConfig
import FerryGRPC
import FerryH2
import FerryPolicy
import NIOCore

/// Hedged requests: when the method has a hedge policy and the first attempt has not
/// answered within the delay (fixed, or the method's observed p95), the call races another
/// attempt against it, on an endpoint not yet tried when there is one. Hedges are only sent
/// for a request whose body is complete and held for replay, and each spends one retry from
/// the service's budget. The first response that is not a retryable failure wins: the others
/// are reset with CANCEL and the call goes on with the winner as its one upstream stream.
extension ProxyCall {
    struct Racer {
        let stream: H2Stream
        let pool: UpstreamPool
        let openedAt: Int64
    }

    var hedgePolicy: HedgePolicy? { policy?.hedge }

    /// Arms the timer for the next hedge, if one may be sent.
    func armHedgeIfWanted() {
        guard let hedge = hedgePolicy, hedgeID == 0, hedgeWaitingPool == nil, !responseStarted,
              case .forwarding = phase, case .ended = requestEnd, replay.canReplay,
              1 + hedgesSent < hedge.maxAttempts, let service, let policy else { return }
        let delay: Int64
        switch hedge.delay {
        case .fixed(let d): delay = d.totalNanoseconds
        case .p95: delay = service.latencyP95(origin: policy.origin) ?? 50_000_000
        }
        hedgeID = deadlines.arm(self, expiresAt: Self.now() + delay)
    }

    /// No answer yet: send a hedge, budget permitting.
    func hedgeTimerFired() {
        hedgeID = 0
        guard case .forwarding = phase, !responseStarted, case .ended = requestEnd, replay.canReplay,
              let service, let hedge = hedgePolicy, 1 + hedgesSent < hedge.maxAttempts else { return }
        guard service.withdrawRetry(at: Self.now()) else {
            routeMetrics?.retryBudgetExhausted += 1
            return
        }
        var tried = triedPools
        if let pool { tried.append(ObjectIdentifier(pool)) }
        for racer in racers { tried.append(ObjectIdentifier(racer.pool)) }
        guard let pool = service.pickPool(avoiding: tried) else { return }
        hedgesSent += 1
        routeMetrics?.hedges += 1
        hedgeWaitingPool = pool
        pool.attemptStarted()
        pool.acquire(self)
    }

    /// The hedge's pool lends a connection: open the racing stream with the whole request.
    func openHedge(on connection: H2Connection) {
        guard let pool = hedgeWaitingPool else { return }
        hedgeWaitingPool = nil
        guard !responseStarted, case .forwarding = phase, let requestHeaders, var headers = headersForAttempt(requestHeaders) else {
            pool.attemptFinished(.neutral, at: Self.now())
            return
        }
        headers = headers.replacingValue(of: Self.previousAttemptsHeader, with: String(countedAttempts + hedgesSent - 1))
        let empty = replay.byteCount == 0
        let trailers: H2Headers? = { if case .trailers(let t) = requestEnd { return t } else { return nil } }()
        guard let stream = connection.openStream(headers: headers, endStream: empty && trailers == nil, delegate: self) else {
            pool.attemptFinished(.neutral, at: Self.now())
            return
        }
        racers.append(Racer(stream: stream, pool: pool, openedAt: Self.now()))
        for chunk in replay.chunks { stream.sendData(chunk) }
        if let trailers { stream.sendTrailers(trailers) } else if !empty { stream.sendEnd() }
        armHedgeIfWanted()
    }

    /// The hedge could not get a connection (connect failure, the pool retired): give up on it.
    func hedgeWaitFailed(_ error: ProxyError) {
        guard let pool = hedgeWaitingPool else { return }
        hedgeWaitingPool = nil
        pool.attemptFinished(error.isEndpointFailure ? .failure : .neutral, at: Self.now())
    }

    func racerIndex(_ stream: H2Stream) -> Int? {
        racers.firstIndex { $0.stream === stream }
    }

    /// Response headers from the primary or a racer, before the call committed. Returns true
    /// when they were handled here (a racer dropped, or waiting goes on); false to go on with
    /// `stream` (now the call's one upstream) as usual.
    func raceAnswered(_ stream: H2Stream, headers: H2Headers, endStream: Bool) -> Bool {
        let failedFast = endStream && isGRPC && Self.grpcStatus(in: headers).map { policy?.retryOn.contains($0) ?? false } == true
        let others = racers.count + (upstream == nil ? 0 : 1) - 1
        if failedFast && others > 0 {
            // A retryable failure while another attempt still runs: drop this one, keep waiting.
            dropRacer(stream, outcome: .failure)
            return true
        }
        promote(stream)
        return false
    }

    /// Makes `stream` the call's upstream; every other attempt is cancelled.
    func promote(_ stream: H2Stream) {
        if stream !== upstream, let index = racerIndex(stream) {
            let winner = racers.remove(at: index)
            if let previous = upstream {
                upstream = nil
                finishAttempt(.neutral)
                if !previous.isClosed { previous.reset(H2ErrorCode.cancel) }
                previous.consumeAll()
            }
            upstream = winner.stream
            pool = winner.pool
            attemptPool = winner.pool
            attemptOpenedAt = winner.openedAt
            attemptRTT = nil
        }
        cancelRacers()
    }

    /// An attempt that is not the winner leaves the race.
    func dropRacer(_ stream: H2Stream, outcome: UpstreamPool.AttemptOutcome) {
        if stream === upstream {
            // The primary lost: the oldest racer takes its place (and keeps racing the rest).
            guard !racers.isEmpty else { return }
            finishAttempt(outcome)
            upstream = nil
            if !stream.isClosed { stream.reset(H2ErrorCode.cancel) }
            stream.consumeAll()
            let next = racers.removeFirst()
            upstream = next.stream
            pool = next.pool
            attemptPool = next.pool
            attemptOpenedAt = next.openedAt
            attemptRTT = nil
            return
        }
        guard let index = racerIndex(stream) else { return }
        let racer = racers.remove(at: index)
        racer.pool.attemptFinished(outcome, at: Self.now())
        if !stream.isClosed { stream.reset(H2ErrorCode.cancel) }
        stream.consumeAll()
    }

    /// Cancels every racer and a hedge still waiting for a connection.
    func cancelRacers() {
        disarm(&hedgeID)
        if let waiting = hedgeWaitingPool {
            hedgeWaitingPool = nil
            waiting.cancel(self)
            waiting.attemptFinished(.neutral, at: Self.now())
        }
        let losers = racers
        racers.removeAll()
        for racer in losers {
            racer.pool.attemptFinished(.neutral, at: Self.now())
            if !racer.stream.isClosed { racer.stream.reset(H2ErrorCode.cancel) }
            racer.stream.consumeAll()
        }
    }

    /// The primary's stream failed while racers run: a racer takes over instead of a retry.
    func racerTakesOver(after error: H2StreamError) -> Bool {
        guard !racers.isEmpty, !responseStarted, let stream = upstream else { return false }
        dropRacer(stream, outcome: .failure)
        return true
    }
}
