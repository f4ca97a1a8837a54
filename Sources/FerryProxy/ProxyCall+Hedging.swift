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
        var attempt: UpstreamAttempt
        let openedAt: Int64
        var pool: UpstreamPool { attempt.pool }
    }

    var hedgePolicy: HedgePolicy? { policy?.hedge }

    /// Arms the timer for the next hedge, if one may be sent.
    func armHedgeIfWanted() {
        guard let hedge = hedgePolicy, !timers.isArmed(.hedge), hedgeWaiting == nil, !responseStarted,
              case .forwarding = phase, case .ended = requestEnd, replay.canReplay,
              1 + hedgesSent < hedge.maxAttempts, let service, let policy else { return }
        let delay: Int64
        switch hedge.delay {
        case .fixed(let d): delay = d.totalNanoseconds
        case .p95: delay = service.latencyP95(origin: policy.origin) ?? 50_000_000
        }
        timers.armed(.hedge, deadlines.arm(self, expiresAt: now() + delay))
    }

    /// No answer yet: send a hedge, budget permitting.
    func hedgeTimerFired() {
        guard case .forwarding = phase, !responseStarted, case .ended = requestEnd, replay.canReplay,
              let service, let hedge = hedgePolicy, 1 + hedgesSent < hedge.maxAttempts else { return }
        guard service.withdrawRetry(at: now()) else {
            routeMetrics?.retryBudgetExhausted += 1
            return
        }
        var tried = triedPools
        if let pool { tried.append(ObjectIdentifier(pool)) }
        for racer in racers { tried.append(ObjectIdentifier(racer.pool)) }
        guard let pool = service.pickPool(avoiding: tried) else { return }
        hedgesSent += 1
        routeMetrics?.hedges += 1
        hedgeWaiting = UpstreamAttempt(in: pool, at: now())
        pool.acquire(self)
    }

    /// The hedge's pool lends a connection: open the racing stream with the whole request.
    func openHedge(on connection: H2Connection) {
        guard let attempt = hedgeWaiting.take() else { return }
        guard !responseStarted, case .forwarding = phase, let requestHeaders, var headers = headersForAttempt(requestHeaders) else {
            attempt.finish(.neutral, at: now())
            return
        }
        headers = headers.replacingValue(of: Self.previousAttemptsHeader, with: String(countedAttempts + hedgesSent - 1))
        let empty = replay.byteCount == 0
        let trailers: H2Headers? = { if case .trailers(let t) = requestEnd { return t } else { return nil } }()
        guard let stream = connection.openStream(headers: headers, endStream: empty && trailers == nil, delegate: self) else {
            attempt.finish(.neutral, at: now())
            return
        }
        racers.append(Racer(stream: stream, attempt: attempt, openedAt: now()))
        for chunk in replay.chunks { stream.sendData(chunk) }
        if let trailers { stream.sendTrailers(trailers) } else if !empty { stream.sendEnd() }
        armHedgeIfWanted()
    }

    /// Stops the hedge timer and a hedge still waiting for a connection. The primary is placed
    /// again (a retry) or the call ends: the hedge belonged to the attempt that is gone, and
    /// left waiting it would be lent a connection as if it were the new primary (the call
    /// waiting in two pools, its outcome told to the wrong endpoint).
    func cancelHedgeWait() {
        disarm(.hedge)
        if hedgeWaiting != nil, let waiting = hedgeWaiting.take() {
            waiting.pool.cancel(self)
            waiting.finish(.neutral, at: now())
        }
    }

    /// The hedge could not get a connection (connect failure, the pool retired): give up on it.
    func hedgeWaitFailed(_ error: ProxyError) {
        hedgeWaiting.take()?.finish(error.attemptOutcome, at: now())
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
                finishAttempt(.expired(.lostRace))
                if !previous.isClosed { previous.reset(H2ErrorCode.cancel) }
                previous.consumeAll()
            }
            upstream = winner.stream
            pool = winner.pool
            attempt = winner.attempt
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
            attempt = next.attempt
            attemptOpenedAt = next.openedAt
            attemptRTT = nil
            return
        }
        guard let index = racerIndex(stream) else { return }
        let racer = racers.remove(at: index)
        racer.attempt.finish(outcome, at: now())
        if !stream.isClosed { stream.reset(H2ErrorCode.cancel) }
        stream.consumeAll()
    }

    /// Cancels every racer and a hedge still waiting for a connection; `outcome` is what the
    /// racers' endpoints are told (by default: another attempt answered first).
    func cancelRacers(_ outcome: UpstreamPool.AttemptOutcome = .expired(.lostRace)) {
        cancelHedgeWait()
        let losers = racers
        racers.removeAll()
        for racer in losers {
            racer.attempt.finish(outcome, at: now())
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
