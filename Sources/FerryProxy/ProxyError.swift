import FerryConfig
import FerryUpstream
import FerryGRPC
import FerryH2
import FerryPolicy

/// A failure the proxy itself answers, with what a gRPC caller and a plain HTTP/2 caller get.
struct ProxyError: Error, CustomStringConvertible {
    var grpcStatus: GRPCStatusCode
    var httpStatus: Int
    var message: String
    /// The endpoint failed (could not be reached, reset, lost): failure accrual counts it.
    var isEndpointFailure = false
    /// Nothing was sent: the connection to the endpoint could not be made.
    var isConnectFailure = false
    /// A timer of the call ran out (deadline, idle, per-try): the attempt's outcome is an expiry.
    var expiry: UpstreamPool.Expiry?

    /// What the error means for the attempt it ended, for the balancer and failure accrual.
    var attemptOutcome: UpstreamPool.AttemptOutcome {
        if isEndpointFailure { return .failure }
        if let expiry { return .expired(expiry) }
        return .neutral
    }

    var description: String { message }

    static func noRoute(listener: String, authority: String, path: String) -> ProxyError {
        ProxyError(grpcStatus: .unimplemented, httpStatus: 404,
                   message: "ferry: no route for \(authority)\(path) on listener \"\(listener)\"")
    }

    static func permissionDenied(policy: String, caller: String?, path: String) -> ProxyError {
        ProxyError(grpcStatus: .permissionDenied, httpStatus: 403,
                   message: "ferry: \(caller.map { "caller \($0)" } ?? "an unauthenticated caller") may not call \(path) (policy \(policy))")
    }

    static func shed(service: String, limit: Int) -> ProxyError {
        ProxyError(grpcStatus: .resourceExhausted, httpStatus: 503,
                   message: "ferry: service \"\(service)\" is at its limit of \(limit) calls in flight")
    }

    static func rateLimited(service: String, limit: RateLimitConfig, origin: String) -> ProxyError {
        ProxyError(grpcStatus: .resourceExhausted, httpStatus: 429,
                   message: limit.per == .caller
                       ? "ferry: this caller is over its rate limit of \(limit.description) for service \"\(service)\" (\(origin).rate_limit)"
                       : "ferry: service \"\(service)\" is over its rate limit of \(limit.description) (\(origin).rate_limit)")
    }

    static func injectedFault(grpcStatus: GRPCStatusCode, httpStatus: Int, origin: String) -> ProxyError {
        ProxyError(grpcStatus: grpcStatus, httpStatus: httpStatus, message: "ferry: fault injected (\(origin))")
    }

    static func invalidFaultHeader(_ name: String, _ value: String, expected: String) -> ProxyError {
        ProxyError(grpcStatus: .invalidArgument, httpStatus: 400, message: "ferry: \(name) must be \(expected), got \"\(value)\"")
    }

    static func noEndpoints(service: String) -> ProxyError {
        ProxyError(grpcStatus: .unavailable, httpStatus: 503, message: "ferry: no endpoints for service \"\(service)\"")
    }

    /// Failed fast: every endpoint is ejected and failing to connect.
    static func unreachable(service: String, endpoint: String, reason: String) -> ProxyError {
        ProxyError(grpcStatus: .unavailable, httpStatus: 503,
                   message: "ferry: cannot connect to \(endpoint): \(reason) (every endpoint of service \"\(service)\" is ejected "
                       + "and failing to connect: failing fast until one answers)")
    }

    static func connectFailed(endpoint: String, reason: String) -> ProxyError {
        ProxyError(grpcStatus: .unavailable, httpStatus: 503, message: "ferry: cannot connect to \(endpoint): \(reason)",
                   isEndpointFailure: true, isConnectFailure: true)
    }

    static func overloaded(endpoint: String) -> ProxyError {
        ProxyError(grpcStatus: .resourceExhausted, httpStatus: 503,
                   message: "ferry: too many calls waiting for a connection to \(endpoint)")
    }

    static func upstreamLost(endpoint: String) -> ProxyError {
        ProxyError(grpcStatus: .unavailable, httpStatus: 502, message: "ferry: connection to upstream \(endpoint) was lost",
                   isEndpointFailure: true)
    }

    /// The connection was lost after the response had started reaching the caller: no proxy
    /// may send the call again then, and the message says so (an operator reading it knows no
    /// retry policy could have saved it).
    static func upstreamLostMidResponse(endpoint: String) -> ProxyError {
        ProxyError(grpcStatus: .unavailable, httpStatus: 502,
                   message: "ferry: connection to upstream \(endpoint) was lost mid-response (not retried: the response had started)",
                   isEndpointFailure: true)
    }

    static func upstreamRefused(endpoint: String) -> ProxyError {
        ProxyError(grpcStatus: .unavailable, httpStatus: 503, message: "ferry: upstream \(endpoint) refused the stream",
                   isEndpointFailure: true)
    }

    static func upstreamReset(endpoint: String, code: H2ErrorCode) -> ProxyError {
        ProxyError(grpcStatus: GRPCStatusMapping.status(forResetCode: code.rawValue), httpStatus: 502,
                   message: "ferry: upstream \(endpoint) reset the stream (\(code.name))", isEndpointFailure: true)
    }

    static func messageTooLarge(direction: String, _ error: GRPCMessageFramer.FramingError) -> ProxyError {
        switch error {
        case .messageTooLarge:
            return ProxyError(grpcStatus: .resourceExhausted, httpStatus: 413, message: "ferry: \(direction) \(error)")
        case .invalidCompressedFlag:
            return ProxyError(grpcStatus: .internal, httpStatus: 502, message: "ferry: \(direction) \(error)")
        }
    }

    static func malformedTimeout(_ error: GRPCTimeout.ParseError) -> ProxyError {
        ProxyError(grpcStatus: .internal, httpStatus: 400, message: "ferry: malformed grpc-timeout: \(error)")
    }

    static func deadlineExceeded(_ deadline: CallDeadline, policyOrigin: String, listener: String, grpc: Bool) -> ProxyError {
        let budget = formatDuration(deadline.budgetNanoseconds)
        let source: String
        switch deadline.source {
        case .caller: source = grpc ? "the caller's grpc-timeout" : "the caller's ferry-deadline"
        case .method: source = "the timeout configured at \(policyOrigin)"
        case .listener: source = "the max_deadline of listener \"\(listener)\""
        }
        return ProxyError(grpcStatus: .deadlineExceeded, httpStatus: 504,
                          message: "ferry: deadline exceeded (\(budget), set by \(source))", expiry: .deadline)
    }

    static func streamIdle(_ nanoseconds: Int64, policyOrigin: String) -> ProxyError {
        ProxyError(grpcStatus: .deadlineExceeded, httpStatus: 408,
                   message: "ferry: no message either way for \(formatDuration(nanoseconds)) (stream_idle_timeout at \(policyOrigin))",
                   expiry: .deadline)
    }

    static func malformedDeadlineHeader() -> ProxyError {
        ProxyError(grpcStatus: .internal, httpStatus: 400, message: "ferry: malformed ferry-deadline (expected milliseconds since the Unix epoch)")
    }

    static func perTryTimeout(_ nanoseconds: Int64, endpoint: String) -> ProxyError {
        ProxyError(grpcStatus: .deadlineExceeded, httpStatus: 504,
                   message: "ferry: attempt to \(endpoint) exceeded its per_try_timeout of \(formatDuration(nanoseconds))",
                   expiry: .perTryTimeout)
    }

    /// An upstream answered with `status` (kept in case retries run out before a better answer).
    static func upstreamStatus(_ status: GRPCStatusCode, endpoint: String) -> ProxyError {
        ProxyError(grpcStatus: status, httpStatus: 502, message: "ferry: upstream \(endpoint) answered \(status.name) and retries ran out")
    }

    static func shuttingDown() -> ProxyError {
        ProxyError(grpcStatus: .unavailable, httpStatus: 503, message: "ferry: shutting down")
    }

    /// The response headers for a caller that has seen nothing yet (Trailers-Only for gRPC).
    func responseHeaders(grpc: Bool) -> H2Headers {
        if grpc { return H2Headers(GRPCResponses.trailersOnly(grpcStatus, message: message)) }
        return H2Headers([(":status", String(httpStatus)), ("content-type", "text/plain; charset=utf-8")])
    }

    /// Trailers for a gRPC caller that already received response headers.
    var grpcTrailers: H2Headers { H2Headers(GRPCResponses.trailers(grpcStatus, message: message)) }
}

/// "250ms", "1.5s", "42us": short and exact enough for a message.
func formatDuration(_ nanoseconds: Int64) -> String {
    if nanoseconds >= 1_000_000_000 {
        let tenths = (nanoseconds + 50_000_000) / 100_000_000
        return tenths % 10 == 0 ? "\(tenths / 10)s" : "\(tenths / 10).\(tenths % 10)s"
    }
    if nanoseconds >= 1_000_000 { return "\(nanoseconds / 1_000_000)ms" }
    if nanoseconds >= 1_000 { return "\(nanoseconds / 1_000)us" }
    return "\(nanoseconds)ns"
}

extension ProxyError {
    /// What a pool's refusal means for the call.
    init(upstream failure: UpstreamFailure) {
        switch failure {
        case .shuttingDown: self = .shuttingDown()
        case .overloaded(let endpoint): self = .overloaded(endpoint: endpoint)
        case .connectFailed(let endpoint, let reason): self = .connectFailed(endpoint: endpoint, reason: reason)
        }
    }
}
