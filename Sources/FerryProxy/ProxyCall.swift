import FerryUpstream
import FerryMetrics
import FerryConfig
import FerryGRPC
import FerryH2
import FerryPolicy
import NIOCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One request through the proxy: a downstream stream tied to the upstream streams of its
/// attempts. Which attempts exist, what is kept to send the request again and what the
/// response has done is `CallStateMachine`'s (a value, with the call's state diagram); this
/// class is its shell: it reads the streams' events, asks the machine, and performs what the
/// machine answers (ProxyCall+Actions.swift), with the call's timers (+Timers) and what the
/// call reports (+Outcome).
///
/// Bytes move between the two sides without being copied into a buffer of our own: DATA
/// received on one side is queued on the other side's stream and returned to the sender's
/// flow-control window (`consume`) only when the other side's nghttp2 has taken it into a
/// frame. A slow reader therefore slows its writer; the proxy holds at most about one window
/// per stream.
final class ProxyCall {
    typealias Machine = CallStateMachine<H2Stream, UpstreamPool>

    let downstream: H2Stream
    let listener: ListenerRuntime
    let environment: CallEnvironment
    var deadlines: CallDeadlines<ProxyCall> { environment.deadlines }
    var machine = Machine()

    /// The service the call was routed to, and its method's policy (fixed for the call's life,
    /// whatever a reload changes meanwhile).
    var service: ServiceRuntime?
    var policy: ResolvedPolicy?
    var serviceName: String { service?.name ?? "?" }
    var endpointName: String { machine.endpointName }

    var isGRPC = false
    /// Message boundaries of a gRPC call, each way, to hold messages to the service's size limit.
    var requestFramer: GRPCMessageFramer?
    var responseFramer: GRPCMessageFramer?
    /// Request body that arrived while no upstream stream was open (bounded by the downstream window).
    var pendingBody = ByteBufferQueue()
    /// Bytes of the current attempt's body that came from the replay buffer: their downstream
    /// window was returned on the first attempt, so sending them again must not consume twice.
    var replayedBytesToSend = 0
    /// The plain HTTP/2 response status was 502/503/504 (an endpoint failure for accrual).
    var responseStatusIsFailure = false
    /// The forwarded response headers declared a content-length: a body cut short can then only
    /// end in a reset (trailers after fewer bytes would break HTTP/2's messaging rules).
    var responseDeclaredLength = false

    /// When the call must be over.
    var deadline: CallDeadline?
    /// The call's armed timers (deadline, idle check, retry backoff, per-try, hedge).
    var timers = CallTimers()
    /// When DATA last arrived either way (read time), for the stream idle check.
    var lastActivity: Int64 = 0

    // Metrics and the access log: where the call counts, when it arrived and got headers,
    // whether its final status was counted.
    var routeMetrics: RouteMetrics?
    var methodMetrics: MethodMetrics?
    var arrivedAt: Int64 = 0
    var responseHeadersAt: Int64 = 0
    var outcomeRecorded = false
    var responseHTTPStatus = 0
    /// What the access log will say of this call (only for a call it writes).
    var access: AccessRecord?

    /// Which queue the call waits in when an upstream pool is full: its client connection's.
    var fairnessKey: ObjectIdentifier { ObjectIdentifier(downstream.connection) }

    /// The caller's identity, as its verified client certificate states it, with its
    /// connection's rate-limit buckets (nil: no identity).
    let caller: CallerLimiterCache?
    var callerIdentity: String? { caller?.identity }
    /// An injected abort that comes after an injected delay, and where the fault was written.
    var faultAbortAfterDelay: ProxyError?
    var faultOrigin = ""

    init(downstream: H2Stream, listener: ListenerRuntime, environment: CallEnvironment, caller: CallerLimiterCache? = nil) {
        self.downstream = downstream
        self.listener = listener
        self.environment = environment
        self.caller = caller
    }

    /// The loop's time: every timestamp of the call and every timer it arms read this.
    func now() -> Int64 { environment.clock.now() }

    static let previousAttemptsHeader = "grpc-previous-rpc-attempts"

    static func wallClockMillis() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Int64(now.tv_sec) * 1000 + Int64(now.tv_nsec) / 1_000_000
    }

    // MARK: - The request headers

    func requestHeadersArrived(_ headers: H2Headers, endStream: Bool) {
        isGRPC = headers.withValue(of: "content-type") { $0.map(GRPCHeaderValues.isGRPCContentType) ?? false }
        arrivedAt = downstream.connection.readStartedAt
        var newRequestID: String?
        if let log = environment.accessLog {
            let (id, generated) = log.requestID(in: headers)
            if generated { newRequestID = id }
            if log.sampled() { access = AccessRecord(headers, requestID: id ?? "-", call: self) }
        }
        guard let (service, metrics, routeIndex) = listener.route(headers) else {
            environment.metrics?.countNoRoute(listener: listener.name)
            fail(.noRoute(listener: listener.name, authority: headers.first(":authority") ?? headers.first("host") ?? "",
                          path: headers.first(":path") ?? ""))
            return
        }
        if listener.hasAuthorization, let policy = listener.authorization(forRoute: routeIndex), !policy.permits(callerIdentity) {
            denied(by: policy, path: headers)
            return
        }
        if let metrics {
            routeMetrics = metrics
            let method = headers.withValue(of: ":path") { isGRPC ? metrics.method(forPath: $0) : metrics.method(forPath: nil) }
            method.counts.requests += 1
            methodMetrics = method
        }
        let policy = listener.policy(forRoute: routeIndex) ?? headers.withValue(of: ":path") { service.policy(forPath: $0) }
        self.service = service
        self.policy = policy
        if service.limitsRate, let limited = service.rateLimitRefusing(policy, at: now(), caller: caller) {
            routeMetrics?.rateLimited[limited.origin, default: 0] += 1
            fail(.rateLimited(service: service.name, limit: limited.rateLimit!, origin: limited.origin))
            return
        }
        var faultDelay: Int64 = 0
        var faultAsked = false
        if let injector = listener.fault(forRoute: routeIndex) ?? policy.fault,
           !drawFault(injector, headers, delay: &faultDelay, asked: &faultAsked) {
            return
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
        var shedSlot: Int?
        if let limit = service.config.maxConcurrentCalls {
            guard service.health.admitCall(limit: limit) else {
                routeMetrics?.loadShed += 1
                fail(.shed(service: service.name, limit: limit))
                return
            }
            shedSlot = limit
        }
        if let idle = policy.streamIdleNanoseconds {
            lastActivity = downstream.connection.readStartedAt
            timers.armed(.idle, deadlines.arm(self, expiresAt: lastActivity + idle))
        }
        var forwarded = HeaderRules.forwardedRequest(headers)
        if listener.passesClientIdentity, let callerIdentity {
            forwarded.append(name: HeaderRules.clientIdentity, value: callerIdentity)
        }
        if !isGRPC && listener.acceptsDeadlineHeader && !policy.sendsDeadlineHeader, headers.contains(DeadlineHeader.name) {
            // Taken as this call's deadline here; the next hop gets one only if this service sends it.
            forwarded = forwarded.removing { $0.elementsEqual(DeadlineHeader.name.utf8) }
        }
        if faultAsked { forwarded = forwarded.removing(where: FaultInjector.isFaultHeader) }
        if let newRequestID { forwarded.append(name: AccessLog.requestIDHeader, value: newRequestID) }
        if policy.retry.enabled { service.depositRetryBudget(at: now()) }
        var attemptPolicy = policy.attempts
        attemptPolicy.isGRPC = isGRPC
        if faultDelay > 0 {
            // Held here, against the call's deadline, then placed (or aborted) when it is over.
            routeMetrics?.faultDelays[faultOrigin, default: 0] += 1
            machine.startDelayed(headers: forwarded, endStream: endStream,
                                 replayCap: policy.retry.enabled ? policy.retry.bufferSize : ReplayBuffer.defaultCap,
                                 shedSlot: shedSlot, policy: attemptPolicy)
            timers.armed(.faultDelay, deadlines.arm(self, expiresAt: now() + faultDelay))
            return
        }
        let placement = machine.start(headers: forwarded, endStream: endStream,
                                      replayCap: policy.retry.enabled ? policy.retry.bufferSize : ReplayBuffer.defaultCap,
                                      shedSlot: shedSlot, policy: attemptPolicy,
                                      arrivedAt: arrivedAt > 0 ? arrivedAt : now()) { service.pickPool(avoiding: $0) }
        perform(placement)
    }

    // MARK: - Opening streams

    /// The pool lends `connection`, which has room for one more stream.
    func upstreamReady(_ connection: H2Connection) {
        switch machine.connectionLent() {
        case .decline:
            return
        case .openPrimary(let headers, let previousAttempts, let replay, let end):
            openPrimary(on: connection, headers: headers, previousAttempts: previousAttempts, replay: replay, end: end)
        case .openHedge(let headers, let previousAttempts, let replay, let end):
            openHedge(on: connection, headers: headers, previousAttempts: previousAttempts, replay: replay, end: end)
        }
    }

    private func openPrimary(on connection: H2Connection, headers requestHeaders: H2Headers, previousAttempts: Int,
                             replay: ReplayBuffer?, end: Machine.RequestEnd) {
        guard let headers = headersForAttempt(requestHeaders, previousAttempts: previousAttempts) else {
            if let deadline { fail(deadlineError(deadline)) }
            return
        }
        let replayed = replay?.byteCount ?? 0
        let endAtOnce: Bool
        if case .ended = end, pendingBody.isEmpty, replayed == 0 { endAtOnce = true } else { endAtOnce = false }
        guard let stream = connection.openStream(headers: headers, endStream: endAtOnce, delegate: self) else {
            fail(.upstreamRefused(endpoint: endpointName))
            return
        }
        machine.primaryOpened(stream, at: now())
        replayedBytesToSend = replayed
        if let replay { for chunk in replay.chunks { stream.sendData(chunk) } }
        while let chunk = pendingBody.popFirst() { forwardRequestData(chunk, to: stream) }
        switch end {
        case .open: break
        case .ended: if !endAtOnce { stream.sendEnd() }
        case .trailers(let trailers): stream.sendTrailers(trailers)
        }
        armHedgeIfWanted()
    }

    /// The hedge's pool lends a connection: open the racing stream with the whole request.
    private func openHedge(on connection: H2Connection, headers requestHeaders: H2Headers, previousAttempts: Int,
                           replay: ReplayBuffer, end: Machine.RequestEnd) {
        let empty = replay.byteCount == 0
        let trailers: H2Headers? = { if case .trailers(let t) = end { return t } else { return nil } }()
        guard let headers = headersForAttempt(requestHeaders, previousAttempts: previousAttempts),
              let stream = connection.openStream(headers: headers, endStream: empty && trailers == nil, delegate: self) else {
            if let ended = machine.hedgeNotOpened() { finish(ended) }
            return
        }
        machine.hedgeOpened(stream, at: now())
        for chunk in replay.chunks { stream.sendData(chunk) }
        if let trailers { stream.sendTrailers(trailers) } else if !empty { stream.sendEnd() }
        armHedgeIfWanted()
    }

    /// The request headers for an attempt starting now: `grpc-timeout` set to what remains of
    /// the deadline (less the offset), the earlier attempts counted. nil when nothing remains:
    /// the attempt must not start.
    ///
    /// Never the per-try timeout: that is Ferry's own clock for retrying an attempt that has
    /// not answered (its timer resets the attempt's stream, so the endpoint stops work anyway).
    /// Sent as grpc-timeout it would let the endpoint end a call that had already committed,
    /// a long stream cut at the per-try timeout with DEADLINE_EXCEEDED.
    func headersForAttempt(_ headers: H2Headers, previousAttempts: Int) -> H2Headers? {
        var headers = headers
        if previousAttempts > 0 {
            headers = headers.replacingValue(of: Self.previousAttemptsHeader, with: String(previousAttempts))
        }
        guard let deadline else { return headers }
        guard let budget = deadline.propagatedTimeout(at: now(), offset: policy?.deadlineOffsetNanoseconds ?? 0) else {
            return nil
        }
        if isGRPC { return headers.replacingValue(of: "grpc-timeout", with: GRPCTimeout(nanoseconds: budget).headerValue) }
        guard policy?.sendsDeadlineHeader == true else { return headers }
        let now = now()
        return headers.replacingValue(of: DeadlineHeader.name,
                                      with: DeadlineHeader.value(expiresAt: now + budget, monotonicNow: now, wallClockMillis: Self.wallClockMillis()))
    }

    func forwardRequestData(_ chunk: ByteBuffer, to stream: H2Stream) {
        stream.sendData(chunk)
        machine.recordSent(chunk)
    }
}

extension ProxyCall: H2StreamDelegate {
    func streamReceivedHeaders(_ stream: H2Stream, headers: H2Headers, endStream: Bool) {
        if stream === downstream {
            requestHeadersArrived(headers, endStream: endStream)
            return
        }
        guard !downstream.isClosed else { return }
        // Trailers-Only headers carry the status a race or a retry decides on.
        let status = endStream && isGRPC ? Self.grpcStatus(in: headers) : nil
        let pushback = status != nil ? Self.pushback(in: headers) : .none
        // Trailers-Only: counted here for the endpoint when it is dropped or retried (a
        // forwarded one is counted when the response completes).
        let answeredBy = status != nil ? machine.pool(of: stream) : nil
        let action = machine.responseHeaders(headers, from: stream, endStream: endStream, status: status, pushback: pushback,
                                             readAt: stream.connection.readStartedAt, now: { self.now() },
                                             withdrawRetry: { self.withdrawRetry() })
        switch action {
        case .ignore:
            return
        case .dropped(let ended):
            answeredBy?.counts.countGRPCStatus(status!)
            finish(ended)
        case .retry(let retry):
            answeredBy?.counts.countGRPCStatus(status!)
            perform(retry)
        case .hold(let ended, let answered):
            finish(ended)
            disarm(.hedge)
            if let answered { answered.pool.attemptAnswered(startedAt: answered.startedAt, at: now()) }
        case .forward(let ended, let answered, let requestHeaders):
            finish(ended)
            disarm(.hedge)
            committed(requestHeaders: requestHeaders)
            if let answered { answered.pool.attemptAnswered(startedAt: answered.startedAt, at: now()) }
            forwardResponseHeaders(headers, endStream: endStream)
        }
    }

    /// An authorization policy refused the caller: PERMISSION_DENIED (HTTP 403), counted and
    /// logged; no upstream sees the call.
    private func denied(by policy: AuthorizationPolicy, path headers: H2Headers) {
        environment.metrics?.countAuthorizationDenied(listener: listener.name, policy: policy.name)
        let path = headers.first(":path") ?? ""
        environment.denials.record(listener: listener.name, policy: policy.name, caller: callerIdentity, path: path)
        fail(.permissionDenied(policy: policy.name, caller: callerIdentity, path: path))
    }

    /// Response headers go to the caller (the call has committed).
    func forwardResponseHeaders(_ headers: H2Headers, endStream: Bool) {
        responseHeadersSent()
        if !isGRPC || methodMetrics == nil || access != nil {
            responseHTTPStatus = headers.withValue(of: ":status") { status in
                guard let status, status.count == 3 else { return 0 }
                return status.reduce(0) { $0 * 10 + Int($1 &- UInt8(ascii: "0")) }
            }
        }
        responseDeclaredLength = headers.contains("content-length")
        if !isGRPC {
            machine.currentPool?.counts.countHTTPStatus(responseHTTPStatus)
            responseStatusIsFailure = headers.withValue(of: ":status") { status in
                guard let status, status.count == 3, status[0] == UInt8(ascii: "5") else { return false }
                return status[2] >= UInt8(ascii: "2") && status[2] <= UInt8(ascii: "4") && status[1] == UInt8(ascii: "0")
            }
        }
        downstream.connection.sendHeaders(downstream, HeaderRules.forwardedResponse(headers), endStream: endStream)
        if endStream {
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
            if let upstream = machine.requestEnded() {
                upstream.sendEnd()
                armHedgeIfWanted()
            }
            return
        }
        guard !downstream.isClosed else { return }
        responseEnded(on: stream, trailers: nil)
    }

    func streamReceivedTrailers(_ stream: H2Stream, trailers: H2Headers) {
        if stream === downstream {
            machine.requestTrailers(trailers)?.sendTrailers(trailers)
            return
        }
        guard !downstream.isClosed else { return }
        responseEnded(on: stream, trailers: trailers)
    }

    /// The response's end (trailers, or END_STREAM on DATA): a held response may still be
    /// retried on its status, else it and the end go to the caller.
    private func responseEnded(on stream: H2Stream, trailers: H2Headers?) {
        let status = machine.isHolding ? trailers.flatMap(Self.grpcStatus(in:)) : nil
        let pushback = status != nil ? Self.pushback(in: trailers!) : .none
        switch machine.responseEnded(from: stream, status: status, pushback: pushback, withdrawRetry: { self.withdrawRetry() }) {
        case .ignore:
            return
        case .retry(let retry):
            if let status { retry.ended.primary?.pool.counts.countGRPCStatus(status) }
            perform(retry)
        case .forward(let held):
            if let held { releaseHeld(held) }
            if let trailers {
                downstream.sendTrailers(HeaderRules.forwardedTrailers(trailers))
            } else {
                downstream.sendEnd()
            }
            responseCompleted(trailers: trailers)
        }
    }

    func streamSentData(_ stream: H2Stream, byteCount: Int) {
        // Bytes left this side: the other side's sender may now send as much again.
        let upstream = machine.upstream
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
        access?.entry.requestBytes += data.readableBytes
        if let error = Self.scan(&requestFramer, data) {
            downstream.consume(data.readableBytes)
            fail(.messageTooLarge(direction: "request", error))
            return
        }
        if machine.isWaitingForStream {
            pendingBody.append(data)
        } else if let upstream = machine.upstream, !upstream.isClosed {
            forwardRequestData(data, to: upstream)
        } else {
            downstream.consume(data.readableBytes)
        }
    }

    func responseDataArrived(_ data: ByteBuffer, on stream: H2Stream) {
        methodMetrics?.counts.responseBytes += data.readableBytes
        guard !downstream.isClosed, machine.isCurrentResponse(stream) else {
            stream.consume(data.readableBytes)
            return
        }
        if let error = Self.scan(&responseFramer, data) {
            stream.consume(data.readableBytes)
            fail(.messageTooLarge(direction: "response", error))
            return
        }
        switch machine.responseData(data) {
        case .forward:
            access?.entry.responseBytes += data.readableBytes
            downstream.sendData(data)
        case .held: break
        case .release(let held): releaseHeld(held)
        }
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

    func streamClosed(_ stream: H2Stream, error: H2StreamError?) {
        if stream === downstream {
            downstreamClosed(error)
            return
        }
        let action = machine.upstreamClosed(stream, error: error, at: { self.now() }, withdrawRetry: { self.withdrawRetry() },
                                            pick: { self.service?.pickPool(avoiding: $0) })
        switch action {
        case .nothingMore:
            // Request bytes still queued on the upstream stream are gone: return their window.
            downstream.consumeAll()
        case .earlierAttempt:
            // An earlier attempt's stream, cancelled for a retry: return the windows of what it
            // held (its unforwarded response bytes; request bytes it never sent are replayed).
            stream.consumeAll()
            downstream.consumeAll()
        case .racerLeft(let ended):
            finish(ended)
        case .racerTookOver(let ended):
            downstream.consumeAll()
            finish(ended)
        case .placeAgain(let placement):
            downstream.consumeAll()
            replayedBytesToSend = 0
            perform(placement)
        case .retry(let retry):
            downstream.consumeAll()
            perform(retry)
        case .fail(let error):
            downstream.consumeAll()
            fail(error)
        }
    }
}

extension H2Stream {
    /// Returns every received-but-unforwarded byte to the peer's windows (the bytes were dropped).
    func consumeAll() {
        consume(unconsumedInboundBytes)
    }
}
