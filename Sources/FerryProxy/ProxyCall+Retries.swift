import FerryGRPC
import FerryH2
import FerryPolicy
import NIOCore

/// Retries by policy: a failed attempt (a retryable status in Trailers-Only headers, or in
/// trailers of a held-back response; a reset or lost stream; an attempt past its per-try
/// timeout) is sent again, after a full-jitter backoff or the server's pushback, to another
/// endpoint, if the call has not committed (nothing of a response reached the caller), its
/// body is still held, attempts remain, the service's retry budget allows it, and the
/// deadline leaves time for the attempt to finish.
extension ProxyCall {
    static let previousAttemptsHeader = "grpc-previous-rpc-attempts"

    var retriesEnabled: Bool { policy?.retry.enabled ?? false }

    /// Whether response headers must be held back until trailers (unary responses).
    var holdsResponse: Bool { retriesEnabled && isGRPC && (policy?.retry.holdResponse ?? 0) > 0 }

    // MARK: - Deciding

    /// Whether a failed attempt with `status` may be retried, taking one retry from the budget
    /// if so. `pushback` is the server's `grpc-retry-pushback-ms` (nil: none sent).
    func mayRetry(status: GRPCStatusCode, pushback: GRPCRetryPushback, anyStatus: Bool = false) -> Bool {
        guard let policy, policy.retry.enabled, anyStatus || policy.retryOn.contains(status.rawValue), !responseStarted,
              replay.canReplay, requestHeaders != nil, countedAttempts < policy.retry.maxAttempts else { return false }
        if case .refuse = pushback { return false }
        guard let service else { return false }
        guard service.withdrawRetry(at: now()) else {
            routeMetrics?.retryBudgetExhausted += 1
            return false
        }
        return true
    }

    /// The server's `grpc-retry-pushback-ms` (FerryGRPC reads it from the bytes).
    static func pushback(in headers: H2Headers) -> GRPCRetryPushback {
        headers.withValue(of: GRPCRetryPushback.headerName) { GRPCHeaderValues.retryPushback($0) }
    }

    // MARK: - Doing

    /// Ends the current attempt and schedules the next after the backoff (or pushback).
    func scheduleRetry(after error: ProxyError, pushback: GRPCRetryPushback, attemptOutcome: UpstreamPool.AttemptOutcome) {
        guard let policy else { return }
        finishAttempt(attemptOutcome)
        cancelHedgeWait()
        // Forget the attempt's stream before cancelling it: its close is then an earlier attempt's.
        let previous = upstream
        upstream = nil
        if let previous, !previous.isClosed { previous.reset(H2ErrorCode.cancel) }
        previous?.consumeAll()
        dropHeldResponse()
        disarmPerTry()
        countedAttempts += 1
        routeMetrics?.retries += 1
        lastRetryableError = error
        replayOnOpen = true
        replayedBytesToSend = 0
        phase = .retryPending
        let delay: Int64
        if case .after(let ns) = pushback {
            delay = ns
        } else {
            delay = RetryBackoff.delay(retry: countedAttempts - 1, base: policy.retry.backoffBaseNanoseconds,
                                       max: policy.retry.backoffMaxNanoseconds, using: &environment.random)
        }
        timers.armed(.retryBackoff, deadlines.arm(self, expiresAt: now() + delay))
    }

    /// The backoff is over: place the next attempt, unless the deadline would end it first.
    func retryTimerFired() {
        guard case .retryPending = phase else { return }
        if let deadline, let service {
            // Never start an attempt that cannot finish: the deadline must leave more than the
            // best endpoint's latency estimate.
            let now = now()
            let best = service.pools.map { $0.latency.current(at: now) }.min() ?? 0
            if Double(deadline.remaining(at: now)) <= best {
                fail(lastRetryableError ?? deadlineError(deadline))
                return
            }
        }
        dispatch()
    }

    /// Arms the attempt's per-try timeout, if the policy has one (when the attempt is placed).
    func armPerTry() {
        guard let perTry = policy?.perTryTimeoutNanoseconds else { return }
        disarmPerTry()
        timers.armed(.perTry, deadlines.arm(self, expiresAt: now() + perTry))
    }

    func disarmPerTry() { disarm(.perTry) }

    /// The attempt ran past its per-try timeout before the response started (waiting for a
    /// connection, or for the response): cancel it and retry if allowed, else end the call
    /// with DEADLINE_EXCEEDED.
    func perTryTimerFired() {
        guard !responseStarted, let timeout = policy?.perTryTimeoutNanoseconds else { return }
        switch phase {
        case .forwarding: break
        case .awaitingUpstream: pool?.cancel(self)
        case .awaitingRequestHeaders, .retryPending, .finished: return
        }
        let error = ProxyError.perTryTimeout(timeout, endpoint: endpointName)
        // The attempt, not the call, ran out of time: that is what a per-try timeout is for, so
        // it is retried whatever the status list says, within the same limits and budget.
        if mayRetry(status: .deadlineExceeded, pushback: .none, anyStatus: true) {
            scheduleRetry(after: error, pushback: .none, attemptOutcome: .expired(.perTryTimeout))
        } else {
            fail(error)
        }
    }

    // MARK: - Hooks from forwarding

    /// Response headers of the current attempt. Returns true when the call took them over
    /// (a retry was scheduled, or the response is being held back); false to forward them.
    func retryInterceptsResponseHeaders(_ headers: H2Headers, endStream: Bool) -> Bool {
        guard retriesEnabled, isGRPC, !responseStarted else { return false }
        if endStream {
            // Trailers-Only: the status is here.
            guard let code = Self.grpcStatus(in: headers).flatMap(GRPCStatusCode.init(rawValue:)) else { return false }
            let pushback = Self.pushback(in: headers)
            guard mayRetry(status: code, pushback: pushback) else { return false }
            let failed = policy?.failureStatuses.contains(code.rawValue) ?? false
            scheduleRetry(after: ProxyError.upstreamStatus(code, endpoint: endpointName), pushback: pushback,
                          attemptOutcome: failed ? .failure : .neutral)
            return true
        }
        guard holdsResponse else { return false }
        heldHeaders = headers
        if attemptRTT == nil { attemptRTT = rttSample() }
        attempt?.markAnswered()
        return true
    }

    var isHoldingResponse: Bool { heldHeaders != nil }

    /// Response DATA while the response is held: kept until trailers, or forwarded (the call
    /// commits) once it outgrows the hold cap.
    func holdResponseData(_ data: ByteBuffer) {
        heldData.append(data)
        heldBytes += data.readableBytes
        if heldBytes > (policy?.retry.holdResponse ?? 0) { releaseHeldResponse() }
    }

    /// Trailers of a held response: retry if their status is retryable and allowed.
    func retryOnHeldTrailers(_ trailers: H2Headers) -> Bool {
        guard let code = Self.grpcStatus(in: trailers).flatMap(GRPCStatusCode.init(rawValue:)) else { return false }
        let pushback = Self.pushback(in: trailers)
        guard mayRetry(status: code, pushback: pushback) else { return false }
        let failed = policy?.failureStatuses.contains(code.rawValue) ?? false
        scheduleRetry(after: ProxyError.upstreamStatus(code, endpoint: endpointName), pushback: pushback,
                          attemptOutcome: failed ? .failure : .neutral)
        return true
    }

    /// Commits: the held headers and data go to the caller; what follows is forwarded as usual.
    func releaseHeldResponse() {
        guard let headers = heldHeaders else { return }
        heldHeaders = nil
        heldBytes = 0
        forwardResponseHeaders(headers, endStream: false)
        while let chunk = heldData.popFirst() { downstream.sendData(chunk) }
    }

    func dropHeldResponse() {
        heldHeaders = nil
        heldBytes = 0
        heldData.removeAll()
    }

    /// The upstream stream failed before the response started: retry if the failure maps to
    /// a retryable status. Returns true when a retry was scheduled.
    func retryAfterStreamError(_ error: H2StreamError) -> Bool {
        guard retriesEnabled, !responseStarted else { return false }
        let code: GRPCStatusCode
        let proxyError: ProxyError
        switch error {
        case .connectionLost:
            code = .unavailable
            proxyError = .upstreamLost(endpoint: endpointName)
        case .resetByPeer(let reset):
            code = GRPCStatusMapping.status(forResetCode: reset.rawValue)
            proxyError = reset == H2ErrorCode.refusedStream ? .upstreamRefused(endpoint: endpointName)
                : .upstreamReset(endpoint: endpointName, code: reset)
        case .refusedByGoAway:
            // Never processed, like a REFUSED_STREAM: once the transparent retries are spent,
            // the retry policy decides (UNAVAILABLE), with its attempts and budget.
            guard mayRetry(status: .unavailable, pushback: .none) else { return false }
            scheduleRetry(after: .upstreamRefused(endpoint: endpointName), pushback: .none, attemptOutcome: .neutral)
            return true
        case .resetLocally:
            return false
        }
        guard mayRetry(status: code, pushback: .none) else { return false }
        scheduleRetry(after: proxyError, pushback: .none, attemptOutcome: .failure)
        return true
    }
}
