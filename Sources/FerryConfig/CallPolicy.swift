import FerryGRPC

/// What applies to one call of a method: its timeout and the limits the proxy holds it to.
/// Every method starts from its service's policy and overrides only what it sets
/// (service -> `pkg.Service/*` -> `pkg.Service/Method`), so each value is written once.
public struct CallPolicy: Sendable, Equatable {
    /// Every call ends by this timeout (or the caller's, if shorter).
    public var timeout: Duration?
    /// xDS's `max_stream_duration.grpc_timeout_header_max`: a caller's own timeout takes the
    /// place of `timeout` (which then applies only to callers without one), up to this cap
    /// (`.some(nil)`: no cap). nil: the file's rule above.
    public var callerTimeoutCap: Duration??
    /// Time kept back from the propagated grpc-timeout for the answer's way back.
    public var deadlineOffset: Duration = .zero
    /// The largest gRPC message (either direction) let through; a larger one fails the call
    /// with RESOURCE_EXHAUSTED and resets its upstream stream.
    public var maxMessageSize: Int = 16 * 1024 * 1024
    /// A call with no DATA either way for this long is ended (long-lived streams that went quiet).
    public var streamIdleTimeout: Duration?
    /// Plain HTTP/2 only: send the call's deadline upstream as an absolute time in the
    /// `ferry-deadline` header (milliseconds since the Unix epoch), for the next Ferry hop.
    public var deadlineHeader = false
    /// gRPC statuses that count as the endpoint's failure for failure accrual (besides connect
    /// errors and resets). Plain HTTP/2 counts 502, 503 and 504.
    public var failureStatuses: Set<GRPCStatusCode> = [.unavailable]
    /// Retries by status: what is retried, how often, how long to wait.
    public var retry = RetryPolicy()
    /// Hedging (opt-in): more attempts raced against a slow one; nil: off.
    public var hedge: HedgePolicy?
    /// Faults injected into this method's calls (a route's own `fault` takes precedence); nil: none.
    public var fault: FaultConfig?
    /// A local rate limit on the calls this entry matches (a service's: all of its calls; a
    /// `methods` entry's: that entry's, on top of the service's). Not inherited: each limit
    /// written is one bucket. nil: no limit.
    public var rateLimit: RateLimitConfig?
    /// Where this policy's values were written, for messages: `services.greeter` or
    /// `services.greeter.methods[0]` (the most specific entry that applied).
    public var origin: String
    /// Where each setting written came from, by its YAML key (`timeout`:
    /// `services.greeter.methods[1]`); a key not here has its default. Inherited with the values.
    public var sources: [String: String] = [:]

    public init(origin: String) {
        self.origin = origin
    }
}

/// `calls` per `period`, up to `burst` at once; over it a call fails at once with
/// RESOURCE_EXHAUSTED (HTTP 429), counted in `ferry_rate_limited_total`. Shared by every event loop.
public struct RateLimitConfig: Sendable, Equatable {
    public var calls: Int
    public var period: Duration
    public var burst: Int
    /// Whose calls share a bucket: everyone's, or each caller's (its verified identity).
    public var per: Scope = .all
    /// With `per: caller`: callers with a bucket of their own at most; past it, callers whose
    /// bucket is idle (full again) are forgotten, and if none is, new ones share one more bucket.
    public var maxCallers = 10_000

    public enum Scope: String, Sendable, Equatable {
        case all
        /// One bucket per verified client identity (mTLS); calls with none share one.
        case caller
    }

    public init(calls: Int, period: Duration, burst: Int, per: Scope = .all) {
        self.calls = calls
        self.period = period
        self.burst = burst
        self.per = per
    }

    /// `100/s (burst 100)`, `10/s (burst 10) per caller`.
    public var description: String {
        let period = ConfigSummary.format(self.period)
        return "\(calls)/\(period == "1s" ? "s" : period) (burst \(burst))" + (per == .caller ? " per caller" : "")
    }
}

/// One `methods` entry of a service: which methods, and the policy they get (already merged).
public struct MethodConfig: Sendable, Equatable {
    /// `.grpcMethod` or `.grpcService` (path prefixes are not method patterns).
    public var match: PathPattern
    public var policy: CallPolicy

    public init(match: PathPattern, policy: CallPolicy) {
        self.match = match
        self.policy = policy
    }
}

/// Finds the policy for a request path among a service's methods, by bytes: the exact method
/// first, then the whole service, then the service's own policy.
public struct MethodTable: Sendable {
    let exact: [(path: [UInt8], index: Int)]
    let services: [(prefix: [UInt8], index: Int)]

    public init(_ methods: [MethodConfig]) {
        var exact: [(path: [UInt8], index: Int)] = []
        var services: [(prefix: [UInt8], index: Int)] = []
        for (index, method) in methods.enumerated() {
            if method.match.isExact { exact.append((method.match.pathBytes, index)) } else { services.append((method.match.pathBytes, index)) }
        }
        self.exact = exact
        self.services = services
    }

    public var isEmpty: Bool { exact.isEmpty && services.isEmpty }

    /// The index of the `methods` entry for `path`, or nil for the service's own policy.
    public func match(path: UnsafeRawBufferPointer) -> Int? {
        for entry in exact where entry.path.count == path.count && path.elementsEqual(entry.path) {
            return entry.index
        }
        for entry in services where path.count > entry.prefix.count && path.prefix(entry.prefix.count).elementsEqual(entry.prefix) {
            return entry.index
        }
        return nil
    }

    public func match(path: String) -> Int? {
        var path = path
        return path.withUTF8 { match(path: UnsafeRawBufferPointer($0)) }
    }
}

/// When and how a method's calls are retried (on top of the transparent retries of streams an
/// upstream never processed, which are always made and never counted).
public struct RetryPolicy: Sendable, Equatable {
    /// gRPC statuses retried (plain HTTP/2: 502, 503, 504 map to UNAVAILABLE). Empty: no retries.
    public var on: Set<GRPCStatusCode> = [.unavailable]
    /// Attempts in all, the first included (1...5).
    public var maxAttempts = 3
    /// Each attempt's own timeout; an attempt past it is cancelled and retried.
    public var perTryTimeout: Duration?
    /// Full-jitter backoff between attempts.
    public var backoffBase: Duration = .milliseconds(25)
    public var backoffMax: Duration = .milliseconds(250)
    /// Request body kept for replay; a call whose body outgrew it is not retried.
    public var bufferSize = 64 * 1024
    /// Hold a response back (headers and up to this many bytes) until its trailers, so a
    /// retryable status in trailers can still be retried. For unary-response methods; 0: off
    /// (a response is committed, and no longer retryable, at its headers).
    public var holdResponse = 0

    public init() {}

    public var enabled: Bool { maxAttempts > 1 }
    public var backoffBaseNanoseconds: Int64 { backoffBase.totalNanoseconds }
    public var backoffMaxNanoseconds: Int64 { backoffMax.totalNanoseconds }
}

/// Hedged requests: if an attempt has not answered after `delay`, another is sent (to an
/// endpoint not yet tried, when there is one); the first good answer wins and the others are
/// cancelled. Only for requests whose body is complete and held for replay. Hedges spend the
/// service's retry budget.
public struct HedgePolicy: Sendable, Equatable {
    public enum Delay: Sendable, Equatable {
        case fixed(Duration)
        /// The method's observed 95th percentile of time to response headers (on this event loop).
        case p95
    }

    public var delay: Delay = .p95
    /// Attempts in all, the first included (2...5).
    public var maxAttempts = 2

    public init() {}
}
