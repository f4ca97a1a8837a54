import FerryUpstream
import FerryGRPC
import FerryH2
import FerryPolicy
import NIOCore

/// The shell's side of the call's state machine: what its actions mean in pools, streams,
/// timers and metrics. Every function here performs an answer the machine already gave; none
/// decides what the call does next.
extension ProxyCall: UpstreamWaiter {
    // MARK: - Attempts

    @inline(__always)
    func perform(_ placement: Machine.PlaceAction) {
        switch placement {
        case .acquire(let pool, let startedAt, let ended):
            finish(ended)
            disarm(.hedge)
            pool.attemptStarted(at: startedAt)
            access?.entry.endpointsTried.append(pool.endpointName)
            // The per-try clock starts when the attempt is placed: waiting for a connection to
            // the endpoint counts (a connection being set up again can take the connect timeout).
            armPerTry()
            pool.acquire(self)
        case .noEndpoints(let ended):
            finish(ended)
            routeMetrics?.noEndpoints += 1
            if let (endpoint, reason) = service?.unreachable() {
                fail(.unreachable(service: serviceName, endpoint: endpoint, reason: reason))
            } else {
                fail(.noEndpoints(service: serviceName))
            }
        }
    }

    @inline(__always)
    func perform(_ action: Machine.PoolFailureAction) {
        switch action {
        case .ignore: break
        case .hedgeGaveUp(let ended): finish(ended)
        case .place(let placement): perform(placement)
        case .fail(let error): fail(error)
        }
    }

    /// Ends the attempts a transition ended; `resetStreams` false leaves their streams to
    /// finish (the caller's stream closed cleanly).
    @inline(__always)
    func finish(_ ended: Machine.EndedAttempts, resetStreams: Bool = true) {
        guard !ended.isEmpty else { return }
        let now = now()
        if let primary = ended.primary { finish(primary, at: now, resetStream: resetStreams) }
        if let others = ended.others { for other in others { finish(other, at: now, resetStream: resetStreams) } }
    }

    @inline(__always)
    func finish(_ ended: Machine.EndedAttempt, at now: Int64? = nil, resetStream: Bool = true) {
        if ended.waiting { ended.pool.cancel(self) }
        ended.pool.attemptFinished(ended.outcome, at: now ?? self.now(), startedAt: ended.startedAt, answered: ended.answered)
        if let stream = ended.stream {
            if resetStream && !stream.isClosed { stream.reset(H2ErrorCode.cancel) }
            stream.consumeAll()
        }
    }

    /// The pool the call waited in retired (its endpoint left the service): place it again.
    func poolRetired() {
        perform(machine.poolRetired(at: now()) { self.service?.pickPool(avoiding: $0) })
    }

    /// The pool could not lend a connection (connect failure, overload, draining).
    func upstreamFailed(_ failure: UpstreamFailure) {
        let error = ProxyError(upstream: failure)
        perform(machine.poolFailed(error, at: now()) { self.service?.pickPool(avoiding: $0) })
    }

    // MARK: - Retries and hedges

    /// Takes one retry (or hedge) from the service's budget; counts a refusal.
    func withdrawRetry() -> Bool {
        guard let service else { return false }
        if service.withdrawRetry(at: now()) { return true }
        routeMetrics?.retryBudgetExhausted += 1
        return false
    }

    /// The server's `grpc-retry-pushback-ms` (FerryGRPC reads it from the bytes).
    static func pushback(in headers: H2Headers) -> GRPCRetryPushback {
        headers.withValue(of: GRPCRetryPushback.headerName) { GRPCHeaderValues.retryPushback($0) }
    }

    /// A failed attempt ended: wait out the backoff (or the server's pushback) before the next.
    @inline(__always)
    func perform(_ retry: Machine.Retry) {
        finish(retry.ended)
        disarm(.hedge)
        disarm(.perTry)
        routeMetrics?.retries += 1
        replayedBytesToSend = 0
        let delay: Int64
        switch retry.delay {
        case .pushback(let nanoseconds):
            delay = nanoseconds
        case .backoff(let n):
            delay = RetryBackoff.delay(retry: n, base: policy?.retry.backoffBaseNanoseconds ?? 0,
                                       max: policy?.retry.backoffMaxNanoseconds ?? 0, using: &environment.random)
        }
        timers.armed(.retryBackoff, deadlines.arm(self, expiresAt: now() + delay))
    }

    /// The backoff is over: place the next attempt, unless the deadline would end it first.
    func retryTimerFired() {
        guard let retryError = machine.retryError else { return }
        if let deadline, let service {
            // Never start an attempt that cannot finish: the deadline must leave more than the
            // best endpoint's latency estimate.
            let now = now()
            let best = service.pools.map { $0.latency.current(at: now) }.min() ?? 0
            if Double(deadline.remaining(at: now)) <= best {
                fail(retryError)
                return
            }
        }
        if let placement = machine.backoffElapsed(at: now(), pick: { self.service?.pickPool(avoiding: $0) }) {
            perform(placement)
        }
    }

    /// Arms the attempt's per-try timeout, if the policy has one (when the attempt is placed).
    func armPerTry() {
        guard let perTry = policy?.perTryTimeoutNanoseconds else { return }
        disarm(.perTry)
        timers.armed(.perTry, deadlines.arm(self, expiresAt: now() + perTry))
    }

    func perTryTimerFired() {
        switch machine.perTryTimeoutExpired(withdrawRetry: { self.withdrawRetry() }) {
        case .ignore: break
        case .retry(let retry): perform(retry)
        case .fail(let error): fail(error)
        }
    }

    /// Arms the timer for the next hedge, if one may be sent.
    func armHedgeIfWanted() {
        guard !timers.isArmed(.hedge), machine.wantsHedgeTimer, let service, let policy, let hedge = policy.hedge else { return }
        let delay: Int64
        switch hedge.delay {
        case .fixed(let d): delay = d.totalNanoseconds
        case .p95: delay = service.latencyP95(origin: policy.origin) ?? 50_000_000
        }
        timers.armed(.hedge, deadlines.arm(self, expiresAt: now() + delay))
    }

    /// No answer within the hedge delay: a hedge waits for a connection, budget permitting.
    func hedgeTimerFired() {
        let action = machine.hedgeDelayPassed(at: now(), withdrawRetry: { self.withdrawRetry() },
                                              pick: { self.service?.pickPool(avoiding: $0) })
        guard case .acquire(let pool, let startedAt) = action else { return }
        routeMetrics?.hedges += 1
        pool.attemptStarted(at: startedAt)
        access?.entry.endpointsTried.append(pool.endpointName)
        pool.acquire(self)
    }

    // MARK: - The response

    /// The call committed: nothing is sent again, so the per-try timer and the request's
    /// headers (their buffers go back to the loop's header blocks) are no longer needed.
    @inline(__always)
    func committed(requestHeaders: H2Headers?) {
        disarm(.perTry)
        if let requestHeaders { downstream.connection.recycle(requestHeaders) }
    }

    /// The held response goes to the caller: headers, then the held body.
    func releaseHeld(_ held: Machine.HeldRelease) {
        committed(requestHeaders: held.requestHeaders)
        forwardResponseHeaders(held.headers, endStream: false)
        var data = held.data
        while let chunk = data.popFirst() {
            access?.entry.responseBytes += chunk.readableBytes
            downstream.sendData(chunk)
        }
    }

    /// The response is complete: success or failure by its status, for the balancer and accrual.
    func responseCompleted(trailers: H2Headers?) {
        var failed = responseStatusIsFailure
        let status = isGRPC ? trailers.flatMap(Self.grpcStatus(in:)) : nil
        if let status, let policy {
            failed = policy.failureStatuses.contains(status)
        }
        recordOutcome(grpcStatus: status, httpStatus: responseHTTPStatus)
        disarmAll()
        guard let completion = machine.responseCompleted(failed: failed) else { return }
        if isGRPC { completion.ended.pool.counts.countGRPCStatus(status ?? GRPCStatusCode.unknown.rawValue) }
        if !failed, let rtt = completion.rtt, let policy, policy.hedge?.delay == .p95 {
            service?.recordLatency(rtt, origin: policy.origin)
        }
        finish(completion.ended)
        // Only a call that took a slot gives one back (the health object is shared by the
        // loops and weakly referenced by its endpoints: touching it costs slow reference counts).
        if let slot = completion.shedSlot { service?.health.callFinished(limit: slot) }
    }

    // MARK: - Ending

    /// Answers the caller with a proxy-made error and stops forwarding.
    func fail(_ error: ProxyError) {
        let teardown = machine.fail(error)
        let answering = !downstream.isClosed && teardown.answer != .complete
        if answering {
            if teardown.answer == .nothing { responseHeadersSent() }
            access?.entry.proxyError = error.message
            recordOutcome(grpcStatus: error.grpcStatus.rawValue,
                          httpStatus: teardown.answer == .headers ? responseHTTPStatus : error.httpStatus)
        }
        finish(teardown.ended)
        if let upstream = teardown.remainingUpstream, !upstream.isClosed { upstream.reset(H2ErrorCode.cancel) }
        release(teardown)
        guard answering else { return }
        switch teardown.answer {
        case .nothing:
            downstream.connection.sendHeaders(downstream, environment.responseHeaders(for: error, grpc: isGRPC), endStream: isGRPC)
            if !isGRPC {
                var body = ByteBufferAllocator().buffer(capacity: error.message.utf8.count + 1)
                body.writeString(error.message + "\n")
                downstream.sendData(body, endStream: true)
            }
        case .headers:
            if isGRPC && !responseDeclaredLength {
                downstream.sendTrailers(error.grpcTrailers)
            } else {
                downstream.reset(H2ErrorCode.internalError)
            }
        case .complete:
            break
        }
        downstream.consumeAll()
    }

    func downstreamClosed(_ error: H2StreamError?) {
        let cancelled = error != nil && !machine.responseEnded
        if cancelled {
            // The caller went away before the response ended: gRPC's CANCELLED, nginx's 499.
            access?.entry.proxyError = "the caller cancelled the call"
            recordOutcome(grpcStatus: GRPCStatusCode.cancelled.rawValue, httpStatus: 499)
        }
        let teardown = machine.downstreamClosed(cancelled: cancelled)
        // The caller went away (reset or lost connection): stop the upstream's work at once.
        finish(teardown.ended, resetStreams: error != nil)
        if let upstream = teardown.remainingUpstream {
            if error != nil && !upstream.isClosed { upstream.reset(H2ErrorCode.cancel) }
            upstream.consumeAll()
        }
        release(teardown)
    }

    /// What a call that ended held: its timers, its load-shedding slot, its request headers
    /// and any body that waited for a stream.
    @inline(__always)
    private func release(_ teardown: Machine.Teardown) {
        disarmAll()
        if let slot = teardown.shedSlot { service?.health.callFinished(limit: slot) }
        if let headers = teardown.requestHeaders { downstream.connection.recycle(headers) }
        pendingBody.removeAll()
    }
}
