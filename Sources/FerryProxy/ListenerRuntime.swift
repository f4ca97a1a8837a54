import FerryMetrics
import FerryConfig
import FerryH2
import FerryPolicy
import NIOSSL

/// One listener as one event loop sees it: the routing table, the service each route leads
/// to, and the settings new connections get. A reload updates it in place; connections
/// accepted earlier route their next request with the new table.
final class ListenerRuntime {
    private(set) var config: ListenerConfig
    private var table: RouteTable
    /// Where each route's calls go, in configuration order.
    private var targets: [RouteTarget]
    /// Picks a split's service for each call (this loop's own).
    private var random = FastRandom()
    private(set) var maxDeadlineNanoseconds: Int64?
    private(set) var h2Settings: H2Settings
    /// The listener left the configuration: its connections are being closed gracefully.
    private(set) var isRemoved = false
    /// New connections' TLS (nil: plaintext); a rotation swaps it, connections keep theirs.
    private(set) var tlsContext: NIOSSLContext?
    /// The policy of each route (its own, else the listener's), and whether any route has one.
    private var authorizations: [AuthorizationPolicy?]
    private(set) var hasAuthorization: Bool
    /// The faults of each route that injects some (over its methods' own).
    private var faults: [FaultInjector?]
    /// The call policy of each route that has its own (xDS routes), over its service's.
    private var policies: [ResolvedPolicy?]
    /// Callers' verified identities reach the upstream in `ferry-client-id` (client certificates are asked for).
    private(set) var passesClientIdentity: Bool

    init(config: ListenerConfig, services: [String: ServiceRuntime], metrics: LoopMetrics?, tlsContext: NIOSSLContext? = nil) {
        self.config = config
        self.table = RouteTable(config.routes, order: config.routeOrder)
        self.targets = config.routes.map { RouteTarget($0, listener: config.name, services: services, metrics: metrics) }
        self.maxDeadlineNanoseconds = config.maxDeadline?.totalNanoseconds
        self.h2Settings = Self.settings(config.http2)
        self.tlsContext = tlsContext
        self.authorizations = config.routes.map { $0.authorization ?? config.authorization }
        self.faults = config.routes.map { $0.fault.map(FaultInjector.init) }
        self.policies = config.routes.map { $0.policy.map { ResolvedPolicy($0) } }
        self.hasAuthorization = authorizations.contains { $0 != nil }
        self.passesClientIdentity = config.tls?.clientCA != nil
    }

    func update(config newConfig: ListenerConfig, services: [String: ServiceRuntime], metrics: LoopMetrics?, tlsContext: NIOSSLContext?) {
        config = newConfig
        table = RouteTable(newConfig.routes, order: newConfig.routeOrder)
        targets = newConfig.routes.map { RouteTarget($0, listener: newConfig.name, services: services, metrics: metrics) }
        maxDeadlineNanoseconds = newConfig.maxDeadline?.totalNanoseconds
        h2Settings = Self.settings(newConfig.http2)
        self.tlsContext = tlsContext
        authorizations = newConfig.routes.map { $0.authorization ?? newConfig.authorization }
        faults = newConfig.routes.map { $0.fault.map(FaultInjector.init) }
        policies = newConfig.routes.map { $0.policy.map { ResolvedPolicy($0) } }
        hasAuthorization = authorizations.contains { $0 != nil }
        passesClientIdentity = newConfig.tls?.clientCA != nil
    }

    /// A certificate rotation: new connections use `context`.
    func rotate(_ context: NIOSSLContext?) {
        tlsContext = context
    }

    /// The policy deciding who may make calls on route `index` (nil: everyone may).
    func authorization(forRoute index: Int) -> AuthorizationPolicy? {
        authorizations[index]
    }

    /// The faults route `index` injects, if it has its own.
    func fault(forRoute index: Int) -> FaultInjector? {
        faults[index]
    }

    /// Route `index`'s own call policy, if it has one (over its service's).
    func policy(forRoute index: Int) -> ResolvedPolicy? {
        policies[index]
    }

    func markRemoved() { isRemoved = true }

    var name: String { config.name }
    var acceptsDeadlineHeader: Bool { config.deadlineHeader }

    /// The service a request goes to, by its `:authority` (or `host`), `:path` and the headers
    /// routes ask for, and for a split by a weighted draw; nil when no route matches.
    func route(_ headers: H2Headers) -> (service: ServiceRuntime, metrics: RouteMetrics?, index: Int)? {
        let index: Int
        if table.isSingleDefault {
            index = 0
        } else {
            let empty = UnsafeRawBufferPointer(start: nil, count: 0)
            let matched = headers.withValue(of: ":path") { path in
                headers.withValue(of: ":authority") { authority in
                    if let authority { return table.match(authority: authority, path: path ?? empty, headers: headers) }
                    return headers.withValue(of: "host") { host in
                        table.match(authority: host ?? empty, path: path ?? empty, headers: headers)
                    }
                }
            }
            guard let matched else { return nil }
            index = matched
        }
        let target = targets[index]
        let pick = target.isSplit ? target.pick(random.next()) : 0
        return (target.services[pick], target.metrics[pick], index)
    }

    /// One route's services (one, or a split's), the metrics each one's calls count in (nil
    /// when metrics are off) and the running sums of the split's weights.
    private final class RouteTarget {
        let services: [ServiceRuntime]
        let metrics: [RouteMetrics?]
        /// `cumulativeWeights[i]`: the weights of services 0...i added up.
        let cumulativeWeights: [UInt64]

        init(_ route: RouteConfig, listener: String, services: [String: ServiceRuntime], metrics: LoopMetrics?) {
            self.services = route.backends.map { services[$0.service]! }
            self.metrics = route.backends.map { metrics?.route(listener: listener, service: $0.service) }
            var sum: UInt64 = 0
            self.cumulativeWeights = route.backends.map { sum += UInt64($0.weight); return sum }
        }

        var isSplit: Bool { services.count > 1 }

        /// The service a draw of `random` lands on: each with its weight's share of draws.
        func pick(_ random: UInt64) -> Int {
            let draw = random % cumulativeWeights[cumulativeWeights.count - 1]
            var index = 0
            while cumulativeWeights[index] <= draw { index += 1 }
            return index
        }
    }

    private static func settings(_ http2: HTTP2Config) -> H2Settings {
        var settings = H2Settings()
        settings.maxConcurrentStreams = http2.maxConcurrentStreams
        settings.initialStreamWindow = http2.initialStreamWindow
        settings.connectionWindow = http2.connectionWindow
        settings.maxHeaderListSize = http2.maxHeaderListSize
        settings.maxFrameSize = http2.maxFrameSize
        return settings
    }
}
