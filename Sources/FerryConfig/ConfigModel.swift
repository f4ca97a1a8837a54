/// Ferry's whole configuration, validated: every reference resolves, every value is in range.
public struct FerryConfig: Sendable, Equatable {
    public var admin: AdminConfig?
    public var runtime: RuntimeConfig
    /// The diagnostic log's level and format (`--log-level` and `--log-format` override them).
    public var log = LogConfig()
    /// One structured line per call, to its own destination (nil: off).
    public var accessLog: AccessLogConfig?
    public var listeners: [ListenerConfig]
    /// Services in the order they were written.
    public var services: [ServiceConfig]
    /// Where this configuration came from (a path, or a name like `<demo>`).
    public var source: String
    /// The control plane listeners, routes and services also come from (nil: the file alone).
    public var xds: XDSConfig?
    /// What of this configuration xDS sent (empty: all of it is the file's).
    public var fromXDS = XDSProvenance()

    public init(admin: AdminConfig?, runtime: RuntimeConfig, listeners: [ListenerConfig], services: [ServiceConfig], source: String) {
        self.admin = admin
        self.runtime = runtime
        self.listeners = listeners
        self.services = services
        self.source = source
    }

    public func service(named name: String) -> ServiceConfig? { services.first { $0.name == name } }
}

public struct AdminConfig: Sendable, Equatable {
    public var address: HostPort
    /// Count requests, responses, latencies and bytes per listener, service and method.
    public var metrics = true
    public init(address: HostPort) { self.address = address }
}

/// How log lines are written: logfmt text, or one JSON object per line.
public enum LogFormat: String, Sendable, Equatable, CaseIterable {
    case text
    case json
}

public struct LogConfig: Sendable, Equatable {
    /// One of trace, debug, info, notice, warning, error, critical (nil: info).
    public var level: String?
    public var format: LogFormat?
    public init() {}

    public static let levels = ["trace", "debug", "info", "notice", "warning", "error", "critical"]
}

public struct AccessLogConfig: Sendable, Equatable {
    public enum Destination: Sendable, Equatable, CustomStringConvertible {
        case stdout
        case stderr
        /// A file, appended to (created 0640 if missing), reopened on every reload so a
        /// rotated file is let go.
        case file(String)

        public var description: String {
            switch self {
            case .stdout: "stdout"
            case .stderr: "stderr"
            case .file(let path): path
            }
        }
    }

    /// The share of calls logged, 0 < sample <= 1.
    public var sample: Double = 1
    public var destination = Destination.stdout
    public var format = LogFormat.text
    /// Give a call without a usable `x-request-id` a new one, forwarded upstream (default true).
    public var generateRequestID = true
    public init() {}
}

public struct RuntimeConfig: Sendable, Equatable {
    /// Event loops (threads) serving traffic; default: one per core.
    public var eventLoops: Int?
    /// How long calls in flight may take to finish after SIGTERM before Ferry exits anyway.
    public var drainTimeout: Duration = .seconds(10)
    /// Reload the configuration when its file changes (checked once a second); SIGHUP always reloads.
    public var watchConfig = true
    public init() {}
}

/// HTTP/2 limits for one side of the proxy.
public struct HTTP2Config: Sendable, Equatable {
    /// Streams the peer may have open at once (downstream: what one client connection may use;
    /// 100 as nghttpx and haproxy, so one connection cannot take every upstream stream).
    public var maxConcurrentStreams: UInt32 = 100
    public var initialStreamWindow: UInt32 = 256 * 1024
    public var connectionWindow: UInt32 = 1024 * 1024
    public var maxHeaderListSize: UInt32 = 64 * 1024
    /// SETTINGS_MAX_FRAME_SIZE accepted from the peer (16 KiB .. 16 MiB - 1).
    public var maxFrameSize: UInt32 = 16_384
    public init() {}
}

public struct ListenerConfig: Sendable, Equatable {
    public var name: String
    public var address: HostPort
    /// Where requests go, most specific match first (see `RouteTable`). A listener's `service:`
    /// shorthand is a route with an empty match, last.
    public var routes: [RouteConfig]
    public var http2: HTTP2Config
    /// No call on this listener lasts longer than this, whatever the caller asks.
    public var maxDeadline: Duration?
    /// Plain HTTP/2 only: take a caller's `ferry-deadline` header (set by a previous Ferry hop)
    /// as its deadline. Off by default: only trusted callers should be able to set it.
    public var deadlineHeader = false
    /// Client connections open at once on this listener (all event loops); one more is
    /// accepted, told GOAWAY ENHANCE_YOUR_CALM "connection limit" and closed.
    public var maxConnections = 10_000
    /// A client must finish its preface and SETTINGS within this, or its connection is closed.
    public var handshakeTimeout: Duration = .seconds(10)
    /// A client connection with no open stream this long gets GOAWAY and is closed (nil: never).
    public var idleTimeout: Duration? = .seconds(300)
    /// TLS (and mutual TLS) on this listener; nil: plaintext HTTP/2.
    public var tls: ListenerTLSConfig?
    /// Who may call through this listener, unless a route has its own policy; nil: everyone.
    public var authorization: AuthorizationPolicy?
    /// How a request picks its route: the most specific match (the file's rule), or the first
    /// that matches in the order written (xDS's rule within a virtual host).
    public var routeOrder = RouteOrder.mostSpecificFirst

    public init(name: String, address: HostPort, routes: [RouteConfig], http2: HTTP2Config = HTTP2Config()) {
        self.name = name
        self.address = address
        self.routes = routes
        self.http2 = http2
    }

    /// A listener sending every request to one service.
    public init(name: String, address: HostPort, service: String, http2: HTTP2Config = HTTP2Config()) {
        self.init(name: name, address: address, routes: [RouteConfig(match: RouteMatch(), service: service)], http2: http2)
    }

    /// The names of the services this listener routes to, in route order, without repeats.
    public var serviceNames: [String] {
        var seen = Set<String>()
        return routes.flatMap { $0.backends.map(\.service) }.filter { seen.insert($0).inserted }
    }
}

public struct EndpointConfig: Sendable, Hashable {
    public var address: HostPort
    public var weight: Int

    public init(address: HostPort, weight: Int = 1) {
        self.address = address
        self.weight = weight
    }
}

/// Settings of a service's upstream connection pools (one pool per endpoint per event loop).
/// Pools are kept across a reload only when these are unchanged.
public struct PoolConfig: Sendable, Equatable {
    /// Time allowed to establish a TCP connection to an endpoint.
    public var connectTimeout: Duration = .seconds(1)
    /// An upstream connection with no streams for this long is closed.
    public var idleTimeout: Duration = .seconds(60)
    /// Connections per endpoint per event loop; more open only when the peer's stream limit is reached.
    public var maxConnectionsPerEndpoint: Int = 8
    /// Calls that may wait for an upstream connection per endpoint per event loop; beyond, fail fast.
    public var maxPendingCalls: Int = 1024
    public var http2 = HTTP2Config()
    /// HTTP/2 PING on upstream connections that received nothing for `keepaliveInterval`; no
    /// answer within `keepaliveTimeout` closes the connection. A connection to an upstream that
    /// hung (SIGSTOP, a wedged runtime, a dropped path) is found within 13 s of its last byte and
    /// its streams fail as lost (retryable). Within one deadline the balancer already keeps new
    /// calls away (the age of unanswered calls is in an endpoint's cost, expired attempts count
    /// in accrual); keepalive frees what is stuck on the connection: calls without a deadline,
    /// long streams, the connection itself. 10 s is Linkerd's interval; 3 s is thousands of
    /// round trips within a region, and longer than the pauses a busy upstream host makes.
    public var keepaliveInterval: Duration = .seconds(10)
    public var keepaliveTimeout: Duration = .seconds(3)
    public init() {}
}

/// How a service spreads calls over its endpoints, per call.
public enum BalancerKind: String, Sendable, Equatable, CaseIterable {
    /// Two endpoints drawn at random, the lower latency estimate x (pending + 1) wins.
    case p2cPeakEWMA = "p2c-peak-ewma"
    /// Two endpoints drawn at random, the one with fewer calls outstanding wins.
    case p2cLeastRequest = "p2c-least-request"
    /// In turn (smooth weighted round-robin when weights differ).
    case roundRobin = "round-robin"
}

public struct BalancerConfig: Sendable, Equatable {
    public var kind = BalancerKind.p2cPeakEWMA
    /// PeakEWMA: the estimate before any sample, and the decay constant.
    public var initialRTT: Duration = .milliseconds(30)
    public var decay: Duration = .seconds(10)
    public init() {}
}

/// Failure accrual: consecutive failures eject an endpoint for a backoff, then one probe.
public struct FailureAccrualConfig: Sendable, Equatable {
    /// Consecutive failures that eject; 0 turns accrual off.
    public var consecutiveFailures = 7
    public var minBackoff: Duration = .seconds(1)
    public var maxBackoff: Duration = .seconds(60)
    /// No more than this share of the endpoints is ejected at once (a floor of the set keeps
    /// taking calls); when every endpoint is unavailable anyway, all are used (panic mode).
    public var maxEjectedPercent = 100
    /// An attempt still unanswered when the call's deadline (or stream idle timeout) ran out
    /// counts as a failure: an endpoint that hangs is ejected like one that resets.
    public var countDeadlineExceeded = true
    /// The same for an attempt still unanswered at its per-try timeout.
    public var countPerTryTimeout = true
    /// The same for an attempt still unanswered when its caller cancelled. Off by default:
    /// callers cancel for reasons of their own (a user navigated away, a hedge won elsewhere).
    public var countCancelled = false
    /// Outlier detection by success rate beside the consecutive count; nil: off.
    public var successRate: SuccessRateConfig?
    public init() {}
}

/// Every `interval`, the endpoints that took at least `minRequests` calls in it are compared:
/// one whose success rate is more than `stdevFactor` standard deviations below their mean (and
/// at least `minDistancePercent` points below it) is ejected (within `max_ejected_percent`) for `min_backoff` doubled for each interval in a row
/// it is found again, then probed like an endpoint ejected after consecutive failures. Needs
/// `minEndpoints` endpoints with enough calls (Envoy's defaults: 5, 100, 1.9).
public struct SuccessRateConfig: Sendable, Equatable {
    public var interval: Duration = .seconds(10)
    public var minRequests = 100
    public var minEndpoints = 5
    public var stdevFactor = 1.9
    /// Percentage points below the mean an outlier is at least (0: the deviation alone decides, as in Envoy).
    public var minDistancePercent = 5.0
    public init() {}
}

public struct ServiceConfig: Sendable, Equatable {
    public var name: String
    /// Where the service's endpoints come from.
    public var discovery: DiscoveryConfig
    public var pool = PoolConfig()
    public var balancer = BalancerConfig()
    public var failureAccrual = FailureAccrualConfig()
    /// The retry budget shared by all of this service's calls (Finagle's defaults).
    public var retryBudget = RetryBudgetConfig()
    /// `/ready` does not wait for this service to have endpoints (e.g. scaled to zero on purpose).
    public var allowNoEndpoints = false
    /// Calls to this service in flight at once across the proxy (waiting or forwarding); over
    /// it a call fails at once with RESOURCE_EXHAUSTED (load shedding). nil: no limit.
    public var maxConcurrentCalls: Int?
    /// The policy of every method no `methods` entry matches.
    public var policy: CallPolicy
    /// Per-method policies, each already merged with what it inherits (service -> `pkg.Service/*` -> method).
    public var methods: [MethodConfig] = []
    /// TLS towards the endpoints; nil: plaintext HTTP/2.
    public var tls: UpstreamTLSConfig?
    /// Active health checks over gRPC's health protocol; nil: only passive failure accrual.
    public var healthCheck: HealthCheckConfig?
    /// Warm-up for endpoints that join (or come back) while others serve; nil: none.
    public var slowStart: SlowStartConfig?

    public init(name: String, discovery: DiscoveryConfig) {
        self.name = name
        self.discovery = discovery
        self.policy = CallPolicy(origin: "services.\(name)")
    }

    public init(name: String, endpoints: [EndpointConfig]) {
        self.init(name: name, discovery: .static(endpoints))
    }

    /// The endpoints written in the configuration (empty for discovered services).
    public var staticEndpoints: [EndpointConfig] {
        if case .static(let endpoints) = discovery { return endpoints }
        return []
    }
}

/// `grpc.health.v1.Health/Check` asked of every endpoint each `interval` (by one event loop,
/// on the endpoint's pooled connections). An endpoint whose answer is not SERVING (or that
/// does not answer within `timeout`, or cannot be reached) `unhealthyThreshold` times in a row
/// gets no new calls until it passes `healthyThreshold` checks in a row. Passive failure
/// accrual works beside it: either can take an endpoint out; it takes calls again only when
/// both let it.
public struct HealthCheckConfig: Sendable, Equatable {
    public var interval: Duration = .seconds(5)
    public var timeout: Duration = .seconds(1)
    public var unhealthyThreshold = 2
    public var healthyThreshold = 1
    /// The service name asked about ("": the server as a whole).
    public var serviceName = ""
    /// Hold a `Watch` stream open instead of asking `Check` each interval: the endpoint's word
    /// applies the moment it changes (no thresholds). A server without Watch (UNIMPLEMENTED) is
    /// asked Check; a Watch stream that ends or breaks counts as a failed check and is opened
    /// again after the interval.
    public var watch = false
    public init() {}
}

/// Slow start: an endpoint added beside serving ones, or restored after an ejection or failed
/// health checks, counts with a share of its weight that grows linearly from
/// `minWeightPercent` to all of it over `window`, so a scale-out or a restart is not flooded.
public struct SlowStartConfig: Sendable, Equatable {
    public var window: Duration = .seconds(30)
    public var minWeightPercent = 10
    public init() {}
}

public struct RetryBudgetConfig: Sendable, Equatable {
    public var ttl: Duration = .seconds(10)
    public var minRetriesPerSecond = 10
    /// Retries allowed as a share of requests (0.2: 20%).
    public var retryPercent = 0.2
    public init() {}
}
