import FerryMetrics
import FerryGRPC
import FerryH2
import FerryPolicy
import NIOCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One request through the proxy: a downstream stream tied to (at most) one upstream stream.
///
/// Bytes move between the two without being copied into a buffer of our own: DATA received on
/// one side is queued on the other side's stream and returned to the sender's flow-control
/// window (`consume`) only when the other side's nghttp2 has taken it into a frame. A slow
/// reader therefore slows its writer; the proxy holds at most about one window per stream.
///
/// Until the response starts, the request (headers and up to the method's replay buffer of
/// body) is kept, so a stream the upstream never processed (refused by GOAWAY's last-stream-id
/// or REFUSED_STREAM, or a failed connect) is sent again without the caller noticing, and a
/// failed attempt can be retried by policy (see ProxyCall+Retries.swift).
///
/// The parts of a call live in several files (this one: reaching an upstream, forwarding,
/// ending; +Timers, +Outcome, +Retries, +Hedging); their shared state is internal to the
/// module but belongs to the call alone.
final class ProxyCall {
    enum Phase {
        /// The downstream stream is open; its request headers have not arrived yet.
        case awaitingRequestHeaders
        /// Waiting in `pool` for a connection with room for a stream.
        case awaitingUpstream
        /// A failed attempt is to be retried after a backoff (no upstream stream open).
        case retryPending
        /// The upstream stream is open and bytes flow both ways.
        case forwarding
        /// The response is complete or failed; nothing more goes upstream.
        case finished
    }

    /// How the request's sender side ended (replayed to a new upstream stream if one opens later).
    enum RequestEnd {
        case open
        case ended
        case trailers(H2Headers)
    }

    let downstream: H2Stream
    let listener: ListenerRuntime
    /// The service the call was routed to, and its method's policy (fixed for the call's life,
    /// whatever a reload changes meanwhile).
    var service: ServiceRuntime?
    var policy: ResolvedPolicy?
    var serviceName: String { service?.name ?? "?" }
    var phase = Phase.awaitingRequestHeaders
    var upstream: H2Stream?
    /// The pool the call was sent to (for its endpoint's name in errors).
    var pool: UpstreamPool?
    var endpointName: String { pool?.endpointName ?? "?" }
    /// The current attempt's claim on its pool, until the attempt's outcome is told.
    var attempt: UpstreamAttempt?
    /// When the current attempt's stream opened, and the time to its response headers.
    var attemptOpenedAt: Int64 = 0
    var attemptRTT: Int64?
    /// The plain HTTP/2 response status was 502/503/504 (an endpoint failure for accrual).
    var responseStatusIsFailure = false
    /// The load-shedding slot this call holds in its service (the limit it was admitted under).
    var shedSlot: Int??

    // Metrics and the access log: where the call counts, when it arrived and got headers,
    // whether its final status was counted, and how many attempts it made.
    var routeMetrics: RouteMetrics?
    var methodMetrics: MethodMetrics?
    var arrivedAt: Int64 = 0
    var responseHeadersAt: Int64 = 0
    var outcomeRecorded = false
    var attempts = 0
    var accessLogged = false
    var responseHTTPStatus = 0
    /// The request's :path, kept only for a call the access log will write.
    var accessLogPath: String?

    var isGRPC = false
    /// Message boundaries of a gRPC call, each way, to hold messages to the service's size limit.
    var requestFramer: GRPCMessageFramer?
    var responseFramer: GRPCMessageFramer?
    /// Kept until the call commits (response headers arrive), for transparent retries.
    var requestHeaders: H2Headers?
    /// Request body that arrived while no upstream stream was open (bounded by the downstream window).
    var pendingBody = ByteBufferQueue()
    var requestEnd = RequestEnd.open
    var replay = ReplayBuffer()
    /// True from a transparent retry until the new upstream stream opens and gets the replay.
    var replayOnOpen = false
    /// Bytes of the current attempt's body that came from the replay buffer: their downstream
    /// window was returned on the first attempt, so sending them again must not consume twice.
    var replayedBytesToSend = 0
    var transparentRetries = 0
    static let maxTransparentRetries = 3
    /// Streams refused by a GOAWAY may be sent again more often: a connection sends one GOAWAY,
    /// so each such refusal means the call met another connection ending before it got to the
    /// stream (seen in storms where every connection ends after a few streams), and the
    /// upstream did no work for it. Then the retry policy decides, as for the other refusals.
    static let maxTransparentRetriesAfterGoAway = 10
    var responseStarted = false
    var responseEnded = false
    /// The forwarded response headers declared a content-length: a body cut short can then only
    /// end in a reset (trailers after fewer bytes would break HTTP/2's messaging rules).
    var responseDeclaredLength = false

    /// When the call must be over.
    var deadline: CallDeadline?
    /// The call's armed timers (deadline, idle check, retry backoff, per-try, hedge).
    var timers = CallTimers()
    /// When DATA last arrived either way (read time), for the stream idle check.
    var lastActivity: Int64 = 0

    // Retries by policy (ProxyCall+Retries.swift): attempts counted against max_attempts, a
    // response held back until its trailers, the backoff and per-try timers, and the error to
    // answer with if the retries run out.
    var countedAttempts = 1
    var heldHeaders: H2Headers?
    var heldData = ByteBufferQueue()
    var heldBytes = 0
    var lastRetryableError: ProxyError?
    /// The pools earlier attempts went to (a retry prefers another endpoint).
    var triedPools: [ObjectIdentifier] = []

    // Hedging (ProxyCall+Hedging.swift): attempts racing the primary `upstream`, the pool a
    // hedge waits in for a connection, its timer, and how many were sent.
    var racers: [Racer] = []
    var hedgeWaiting: UpstreamAttempt?
    var hedgesSent = 0
    let environment: CallEnvironment
    var deadlines: CallDeadlines { environment.deadlines }

    /// Which queue the call waits in when an upstream pool is full: its client connection's.
    var fairnessKey: ObjectIdentifier { ObjectIdentifier(downstream.connection) }

    init(downstream: H2Stream, listener: ListenerRuntime, environment: CallEnvironment) {
        self.downstream = downstream
        self.listener = listener
        self.environment = environment
    }

    /// The loop's time: every timestamp of the call and every timer it arms read this.
    func now() -> Int64 { environment.clock.now() }

    private static func wallClockMillis() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Int64(now.tv_sec) * 1000 + Int64(now.tv_nsec) / 1_000_000
    }

    // MARK: - Reaching an upstream

    func requestHeadersArrived(_ headers: H2Headers, endStream: Bool) {
        isGRPC = headers.withValue(of: "content-type") { $0.map(GRPCHeaderValues.isGRPCContentType) ?? false }
        arrivedAt = downstream.connection.readStartedAt
        if environment.accessLog != nil {
            accessLogged = environment.accessLog!.sampled()
            if accessLogged { accessLogPath = headers.first(":path") }
        }
        guard let (service, metrics) = listener.route(headers) else {
            environment.metrics?.countNoRoute(listener: listener.name)
            fail(.noRoute(listener: listener.name, authority: headers.first(":authority") ?? headers.first("host") ?? "",
                          path: headers.first(":path") ?? ""))
            return
        }
        if let metrics {
            routeMetrics = metrics
            let method = headers.withValue(of: ":path") { isGRPC ? metrics.method(forPath: $0) : metrics.method(forPath: nil) }
            method.counts.requests += 1
            methodMetrics = method
        }
        let policy = headers.withValue(of: ":path") { service.policy(forPath: $0) }
        self.service = service
        self.policy = policy
        if let limit = service.config.maxConcurrentCalls {
            guard service.health.admitCall(limit: limit) else {
                routeMetrics?.loadShed += 1
                fail(.shed(service: service.name, limit: limit))
                return
            }
            shedSlot = .some(limit)
        }
        var callerTimeout: Int64?
        if isGRPC {
            requestFramer = GRPCMessageFramer(maxMessageSize: policy.maxMessageSize)
            responseFramer = GRPCMessageFramer(maxMessageSize: policy.maxMessageSize)
            // Parsed from the header's bytes (no String, no Array).
            let parsed = headers.withValue(of: "grpc-timeout") { $0.map { GRPCTimeout.parse($0) } }
            switch parsed {
            case .some(.success(let timeout)): callerTimeout = timeout.nanoseconds
            case .some(.failure(let error)):
                // A malformed grpc-timeout fails the call; it is never silently dropped.
                fail(.malformedTimeout(error))
                return
            case .none: break
            }
        } else if listener.acceptsDeadlineHeader {
            let remaining: Int64?? = headers.withValue(of: DeadlineHeader.name) { value in
                value.map { DeadlineHeader.remaining($0, wallClockMillis: Self.wallClockMillis()) }
            }
            switch remaining {
            case .some(.some(let nanoseconds)): callerTimeout = nanoseconds
            case .some(.none):
                fail(.malformedDeadlineHeader())
                return
            case .none: break
            }
        }
        if !armDeadline(callerTimeout: callerTimeout, policy: policy) { return }
        if policy.retry.enabled {
            replay = ReplayBuffer(cap: policy.retry.bufferSize)
            service.depositRetryBudget(at: now())
        }
        if let idle = policy.streamIdleNanoseconds {
            lastActivity = downstream.connection.readStartedAt
            timers.armed(.idle, deadlines.arm(self, expiresAt: lastActivity + idle))
        }
        if endStream { requestEnd = .ended }
        requestHeaders = HeaderRules.forwardedRequest(headers)
        if !isGRPC && listener.acceptsDeadlineHeader && !policy.sendsDeadlineHeader, headers.contains(DeadlineHeader.name) {
            // Taken as this call's deadline here; the next hop gets one only if this service sends it.
            requestHeaders = requestHeaders?.removing { $0.elementsEqual(DeadlineHeader.name.utf8) }
        }
        dispatch()
    }

    /// Picks an endpoint of the call's service and waits in its pool for a stream.
    func dispatch() {
        finishAttempt(.neutral)
        if attempts > 0 { cancelHedgeWait() }
        // A call placed again (a retry) prefers endpoints it has not tried yet. The list is made
        // only then, so a first attempt allocates nothing for it.
        if let previous = pool, triedPools.count < 5 { triedPools.append(ObjectIdentifier(previous)) }
        guard let service, let pool = service.pickPool(avoiding: triedPools) else {
            routeMetrics?.noEndpoints += 1
            fail(.noEndpoints(service: serviceName))
            return
        }
        // The first attempt starts when the request was read (no clock read on the common path).
        let startedAt = attempts == 0 && arrivedAt > 0 ? arrivedAt : now()
        attempts += 1
        self.pool = pool
        attempt = UpstreamAttempt(in: pool, at: startedAt)
        attemptRTT = nil
        phase = .awaitingUpstream
        // The per-try clock starts when the attempt is placed: waiting for a connection to
        // the endpoint counts (a connection being set up again can take the connect timeout).
        armPerTry()
        pool.acquire(self)
    }

    /// Tells the attempt's pool how it went (once per attempt).
    func finishAttempt(_ outcome: UpstreamPool.AttemptOutcome) {
        attempt.take()?.finish(outcome, at: now())
    }

    /// The response is complete: success or failure by its status, for the balancer and accrual.
    func responseCompleted(trailers: H2Headers?) {
        var failed = responseStatusIsFailure
        let status = isGRPC ? trailers.flatMap(Self.grpcStatus(in:)) : nil
        if let status, let policy {
            failed = policy.failureStatuses.contains(status)
        }
        recordOutcome(grpcStatus: status, httpStatus: responseHTTPStatus)
        if !failed, let rtt = attemptRTT, let policy, policy.hedge?.delay == .p95 { service?.recordLatency(rtt, origin: policy.origin) }
        finishAttempt(failed ? .failure : .success(rtt: attemptRTT))
        callOver()
    }

    /// The call holds nothing any more: timers, its attempt, its load-shedding slot.
    func callOver() {
        disarmDeadline()
        finishAttempt(.neutral)
        if let limit = shedSlot.take() {
            service?.health.callFinished(limit: limit)
        }
    }

    /// The pool the call waited in retired (its endpoint left the service): place it again.
    func poolRetired() {
        if case .forwarding = phase, hedgeWaiting != nil {
            hedgeWaitFailed(.shuttingDown())
            return
        }
        guard case .awaitingUpstream = phase else { return }
        dispatch()
    }

    /// The request headers for an attempt starting now: `grpc-timeout` set to what remains of
    /// the deadline (less the offset). nil when nothing remains: the attempt must not start.
    func headersForAttempt(_ headers: H2Headers) -> H2Headers? {
        var headers = headers
        if countedAttempts > 1 {
            headers = headers.replacingValue(of: Self.previousAttemptsHeader, with: String(countedAttempts - 1))
        }
        let perTry = policy?.perTryTimeoutNanoseconds
        guard let deadline else {
            guard isGRPC, let perTry else { return headers }
            return headers.replacingValue(of: "grpc-timeout", with: GRPCTimeout(nanoseconds: perTry).headerValue)
        }
        guard var budget = deadline.propagatedTimeout(at: now(), offset: policy?.deadlineOffsetNanoseconds ?? 0) else {
            return nil
        }
        if let perTry { budget = min(budget, perTry) }
        if isGRPC { return headers.replacingValue(of: "grpc-timeout", with: GRPCTimeout(nanoseconds: budget).headerValue) }
        guard policy?.sendsDeadlineHeader == true else { return headers }
        let now = now()
        return headers.replacingValue(of: DeadlineHeader.name,
                                      with: DeadlineHeader.value(expiresAt: now + budget, monotonicNow: now, wallClockMillis: Self.wallClockMillis()))
    }

    /// The pool lends `connection`, which has room for one more stream.
    func upstreamReady(_ connection: H2Connection) {
        if case .forwarding = phase, hedgeWaiting != nil {
            openHedge(on: connection)
            return
        }
        guard case .awaitingUpstream = phase, let requestHeaders else { return }
        guard let headers = headersForAttempt(requestHeaders) else {
            if let deadline { fail(deadlineError(deadline)) }
            return
        }
        let endAtOnce: Bool
        if case .ended = requestEnd, pendingBody.isEmpty, !(replayOnOpen && replay.byteCount > 0) {
            endAtOnce = true
        } else {
            endAtOnce = false
        }
        guard let stream = connection.openStream(headers: headers, endStream: endAtOnce, delegate: self) else {
            fail(.upstreamRefused(endpoint: endpointName))
            return
        }
        upstream = stream
        phase = .forwarding
        attemptOpenedAt = now()
        if replayOnOpen {
            replayOnOpen = false
            replayedBytesToSend = replay.byteCount
            for chunk in replay.chunks { stream.sendData(chunk) }
        }
        while let chunk = pendingBody.popFirst() { forwardRequestData(chunk, to: stream) }
        switch requestEnd {
        case .open: break
        case .ended: if !endAtOnce { stream.sendEnd() }
        case .trailers(let trailers): stream.sendTrailers(trailers)
        }
        armHedgeIfWanted()
    }

    func forwardRequestData(_ chunk: ByteBuffer, to stream: H2Stream) {
        stream.sendData(chunk)
        replay.record(chunk)
    }

    /// Sends the request again on a new upstream stream if the upstream never processed it,
    /// nothing of the response was forwarded, and the whole body sent so far is still held.
    /// A REFUSED_STREAM counts against the endpoint in failure accrual (an endpoint that refuses
    /// everything is ejected, not tried first again and again); a GOAWAY's refusal does not
    /// (the endpoint is leaving gracefully). Neither spends the caller's retry budget.
    func retryTransparently(after error: H2StreamError) -> Bool {
        let endpointRefused: Bool
        switch error {
        case .refusedByGoAway: endpointRefused = false
        case .resetByPeer(H2ErrorCode.refusedStream): endpointRefused = true
        default: return false
        }
        let limit = endpointRefused ? Self.maxTransparentRetries : Self.maxTransparentRetriesAfterGoAway
        guard !responseStarted, replay.canReplay, requestHeaders != nil, transparentRetries < limit else { return false }
        transparentRetries += 1
        if endpointRefused { finishAttempt(.failure) }
        upstream = nil
        replayOnOpen = true
        replayedBytesToSend = 0
        dispatch()
        return true
    }

    func upstreamFailed(_ error: ProxyError) {
        if case .forwarding = phase, hedgeWaiting != nil {
            hedgeWaitFailed(error)
            return
        }
        guard case .awaitingUpstream = phase else { return }
        // A connect failure sent nothing: always safe to place again elsewhere, and not counted.
        if error.isConnectFailure, transparentRetries < Self.maxTransparentRetries, !responseStarted {
            transparentRetries += 1
            finishAttempt(.failure)
            dispatch()
            return
        }
        fail(error)
    }

    // MARK: - Ending

    /// Answers the caller with a proxy-made error and stops forwarding.
    func fail(_ error: ProxyError) {
        if case .awaitingUpstream = phase { pool?.cancel(self) }
        dropHeldResponse()
        cancelRacers(error.expiry.map { .expired($0) } ?? .neutral)
        phase = .finished
        if !downstream.isClosed && !responseEnded {
            if !responseStarted { responseHeadersSent() }
            recordOutcome(grpcStatus: error.grpcStatus.rawValue, httpStatus: responseStarted ? responseHTTPStatus : error.httpStatus)
        }
        finishAttempt(error.attemptOutcome)
        callOver()
        pendingBody.removeAll()
        releaseRequestHeaders()
        if let upstream, !upstream.isClosed { upstream.reset(H2ErrorCode.cancel) }
        guard !downstream.isClosed, !responseEnded else { return }
        if !responseStarted {
            downstream.connection.sendHeaders(downstream, environment.responseHeaders(for: error, grpc: isGRPC), endStream: isGRPC)
            if !isGRPC {
                var body = ByteBufferAllocator().buffer(capacity: error.message.utf8.count + 1)
                body.writeString(error.message + "\n")
                downstream.sendData(body, endStream: true)
            }
        } else if isGRPC && !responseDeclaredLength {
            downstream.sendTrailers(error.grpcTrailers)
        } else {
            downstream.reset(H2ErrorCode.internalError)
        }
        responseStarted = true
        responseEnded = true
        downstream.consumeAll()
    }

    func upstreamClosed(_ error: H2StreamError?) {
        // Request bytes still queued on the upstream stream are gone: return their window.
        downstream.consumeAll()
        guard let error else { return }
        if responseEnded || downstream.isClosed { return }
        if racerTakesOver(after: error) { return }
        if retryTransparently(after: error) { return }
        if case .forwarding = phase, retryAfterStreamError(error) { return }
        switch error {
        case .connectionLost:
            fail(.upstreamLost(endpoint: endpointName))
        case .refusedByGoAway, .resetByPeer(H2ErrorCode.refusedStream):
            fail(.upstreamRefused(endpoint: endpointName))
        case .resetByPeer(let code), .resetLocally(let code):
            fail(.upstreamReset(endpoint: endpointName, code: code))
        }
    }

    func downstreamClosed(_ error: H2StreamError?) {
        if error != nil && !responseEnded {
            // The caller went away before the response ended: gRPC's CANCELLED, nginx's 499.
            recordOutcome(grpcStatus: GRPCStatusCode.cancelled.rawValue, httpStatus: 499)
            finishAttempt(.expired(.cancelled))
        }
        callOver()
        switch phase {
        case .awaitingUpstream:
            pool?.cancel(self)
        case .forwarding:
            // The caller went away (reset or lost connection): stop the upstream's work at once.
            if error != nil, let upstream, !upstream.isClosed { upstream.reset(H2ErrorCode.cancel) }
        case .awaitingRequestHeaders, .finished, .retryPending:
            break
        }
        dropHeldResponse()
        cancelRacers(error != nil && !responseEnded ? .expired(.cancelled) : .neutral)
        phase = .finished
        pendingBody.removeAll()
        upstream?.consumeAll()
    }
}

extension ProxyCall: H2StreamDelegate {
    func streamReceivedHeaders(_ stream: H2Stream, headers: H2Headers, endStream: Bool) {
        if stream === downstream {
            requestHeadersArrived(headers, endStream: endStream)
            return
        }
        guard !downstream.isClosed, !responseEnded else { return }
        if !responseStarted, !racers.isEmpty || stream !== upstream {
            guard stream === upstream || racerIndex(stream) != nil else { return }
            if raceAnswered(stream, headers: headers, endStream: endStream) { return }
        }
        guard stream === upstream else { return }
        if retryInterceptsResponseHeaders(headers, endStream: endStream) { return }
        forwardResponseHeaders(headers, endStream: endStream)
    }

    /// The call commits: response headers go to the caller and nothing is retried any more.
    func forwardResponseHeaders(_ headers: H2Headers, endStream: Bool) {
        commit()
        if attemptRTT == nil { attemptRTT = rttSample() }
        attempt?.markAnswered()
        responseHeadersSent()
        if !isGRPC || methodMetrics == nil {
            responseHTTPStatus = headers.withValue(of: ":status") { status in
                guard let status, status.count == 3 else { return 0 }
                return status.reduce(0) { $0 * 10 + Int($1 &- UInt8(ascii: "0")) }
            }
        }
        responseDeclaredLength = headers.contains("content-length")
        if !isGRPC {
            responseStatusIsFailure = headers.withValue(of: ":status") { status in
                guard let status, status.count == 3, status[0] == UInt8(ascii: "5") else { return false }
                return status[2] >= UInt8(ascii: "2") && status[2] <= UInt8(ascii: "4") && status[1] == UInt8(ascii: "0")
            }
        }
        downstream.connection.sendHeaders(downstream, HeaderRules.forwardedResponse(headers), endStream: endStream)
        if endStream {
            responseEnded = true
            responseCompleted(trailers: headers)   // Trailers-Only: the status is in these headers
        }
        downstream.connection.recycle(headers)    // nghttp2 copied the fields
    }

    func streamReceivedData(_ stream: H2Stream, data: ByteBuffer) {
        if timers.isArmed(.idle) { lastActivity = stream.connection.readStartedAt }
        if stream === downstream {
            requestDataArrived(data)
        } else {
            responseDataArrived(data, on: stream)
        }
    }

    func streamReceivedEnd(_ stream: H2Stream) {
        if stream === downstream {
            requestEnd = .ended
            if case .forwarding = phase {
                upstream?.sendEnd()
                armHedgeIfWanted()
            }
            return
        }
        guard !downstream.isClosed, !responseEnded, stream === upstream else { return }
        releaseHeldResponse()
        responseEnded = true
        downstream.sendEnd()
        responseCompleted(trailers: nil)
    }

    func streamReceivedTrailers(_ stream: H2Stream, trailers: H2Headers) {
        if stream === downstream {
            requestEnd = .trailers(trailers)
            if case .forwarding = phase { upstream?.sendTrailers(trailers) }
            return
        }
        guard !downstream.isClosed, !responseEnded, stream === upstream else { return }
        if isHoldingResponse {
            if retryOnHeldTrailers(trailers) { return }
            releaseHeldResponse()
        }
        responseEnded = true
        downstream.sendTrailers(HeaderRules.forwardedTrailers(trailers))
        responseCompleted(trailers: trailers)
    }

    func streamSentData(_ stream: H2Stream, byteCount: Int) {
        // Bytes left this side: the other side's sender may now send as much again.
        if stream === downstream {
            upstream?.consume(byteCount)
            return
        }
        guard stream === upstream else { return }    // a racer sends replayed bytes: already consumed
        let replayed = min(byteCount, replayedBytesToSend)
        replayedBytesToSend -= replayed
        downstream.consume(byteCount - replayed)
    }

    func requestDataArrived(_ data: ByteBuffer) {
        methodMetrics?.counts.requestBytes += data.readableBytes
        if let error = Self.scan(&requestFramer, data) {
            downstream.consume(data.readableBytes)
            if case .finished = phase { return }
            fail(.messageTooLarge(direction: "request", error))
            return
        }
        switch phase {
        case .forwarding:
            if let upstream, !upstream.isClosed {
                forwardRequestData(data, to: upstream)
            } else {
                downstream.consume(data.readableBytes)
            }
        case .awaitingRequestHeaders, .awaitingUpstream, .retryPending:
            pendingBody.append(data)
        case .finished:
            downstream.consume(data.readableBytes)
        }
    }

    func responseDataArrived(_ data: ByteBuffer, on stream: H2Stream) {
        methodMetrics?.counts.responseBytes += data.readableBytes
        if downstream.isClosed || responseEnded || stream !== upstream {
            stream.consume(data.readableBytes)
            return
        }
        if let error = Self.scan(&responseFramer, data) {
            stream.consume(data.readableBytes)
            fail(.messageTooLarge(direction: "response", error))
            return
        }
        if isHoldingResponse {
            holdResponseData(data)
            return
        }
        downstream.sendData(data)
    }

    /// Follows the message prefixes in `data`; at the first broken rule it stops following
    /// (the call is failing) and returns the error.
    private static func scan(_ framer: inout GRPCMessageFramer?, _ data: ByteBuffer) -> GRPCMessageFramer.FramingError? {
        guard framer != nil else { return nil }
        do {
            try framer!.scan(data)
            return nil
        } catch {
            framer = nil
            return error
        }
    }

    /// The response started: the call can no longer be retried, the replay state is dropped.
    func commit() {
        disarmPerTry()
        responseStarted = true
        releaseRequestHeaders()
        replay = ReplayBuffer()
    }

    /// The request's headers will not be sent again (the response started, or the call
    /// failed): their buffers go back to the loop's header blocks.
    private func releaseRequestHeaders() {
        if let headers = requestHeaders.take() { downstream.connection.recycle(headers) }
    }

    func streamClosed(_ stream: H2Stream, error: H2StreamError?) {
        if stream === downstream {
            downstreamClosed(error)
        } else if stream === upstream {
            upstreamClosed(error)
        } else if racerIndex(stream) != nil {
            // A racer ended before it won (a reset, a lost connection): it leaves the race.
            dropRacer(stream, outcome: error == nil ? .neutral : .failure)
        } else {
            // An earlier attempt's stream, cancelled for a retry: return the windows of what it
            // held (its unforwarded response bytes; request bytes it never sent are replayed).
            stream.consumeAll()
            downstream.consumeAll()
        }
    }
}

extension H2Stream {
    /// Returns every received-but-unforwarded byte to the peer's windows (the bytes were dropped).
    func consumeAll() {
        consume(unconsumedInboundBytes)
    }
}
