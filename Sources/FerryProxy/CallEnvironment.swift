import FerryMetrics
import FerryH2
import FerryPolicy

/// What every call on one event loop shares: the loop's deadline queue and the header blocks
/// of the proxy's own error answers (made once per distinct answer, not once per call: a
/// burst of expiring deadlines sends the same Trailers-Only block hundreds of times).
final class CallEnvironment {
    let deadlines: CallDeadlines<ProxyCall>
    /// The loop's time (the system's monotonic clock; a test's virtual time).
    let clock: MonotonicClock
    /// The loop's metrics when counting is on (nil: off).
    var metrics: LoopMetrics?
    /// The loop's access log (nil: off).
    var accessLog: AccessLog?
    /// Calls an authorization policy denied, for the log.
    let denials = DenialLog()
    /// Jitter for retry backoffs.
    var random = FastRandom()
    private var errorHeaders: [ErrorKey: H2Headers] = [:]

    private struct ErrorKey: Hashable {
        var grpc: Bool
        var grpcStatus: Int
        var httpStatus: Int
        var message: String
    }

    /// Distinct answers kept; beyond, the cache starts over (messages name endpoints and budgets).
    static let maxCachedErrors = 256

    init(deadlines: CallDeadlines<ProxyCall>, clock: MonotonicClock = .system) {
        self.deadlines = deadlines
        self.clock = clock
    }

    func responseHeaders(for error: ProxyError, grpc: Bool) -> H2Headers {
        let key = ErrorKey(grpc: grpc, grpcStatus: Int(error.grpcStatus.rawValue), httpStatus: error.httpStatus, message: error.message)
        if let headers = errorHeaders[key] { return headers }
        if errorHeaders.count >= Self.maxCachedErrors { errorHeaders.removeAll(keepingCapacity: true) }
        let headers = error.responseHeaders(grpc: grpc)
        errorHeaders[key] = headers
        return headers
    }
}
