import FerryMetrics
import FerryConfig
import FerryH2
import NIOSSL

/// One listener as one event loop sees it: the routing table, the service each route leads
/// to, and the settings new connections get. A reload updates it in place; connections
/// accepted earlier route their next request with the new table.
final class ListenerRuntime {
    private(set) var config: ListenerConfig
    private var table: RouteTable
    /// The service of each route, in configuration order, and the metrics its calls count in
    /// (nil when metrics are off).
    private var targets: [ServiceRuntime]
    private var targetMetrics: [RouteMetrics?]
    private(set) var maxDeadlineNanoseconds: Int64?
    private(set) var h2Settings: H2Settings
    /// The listener left the configuration: its connections are being closed gracefully.
    private(set) var isRemoved = false
    /// New connections' TLS (nil: plaintext); a rotation swaps it, connections keep theirs.
    private(set) var tlsContext: NIOSSLContext?
    /// The policy of each route (its own, else the listener's), and whether any route has one.
    private var authorizations: [AuthorizationPolicy?]
    private(set) var hasAuthorization: Bool
    /// Callers' verified identities reach the upstream in `ferry-client-id` (client certificates are asked for).
    private(set) var passesClientIdentity: Bool

    init(config: ListenerConfig, services: [String: ServiceRuntime], metrics: LoopMetrics?, tlsContext: NIOSSLContext? = nil) {
        self.config = config
        self.table = RouteTable(config.routes)
        self.targets = config.routes.map { services[$0.service]! }
        self.targetMetrics = config.routes.map { metrics?.route(listener: config.name, service: $0.service) }
        self.maxDeadlineNanoseconds = config.maxDeadline?.totalNanoseconds
        self.h2Settings = Self.settings(config.http2)
        self.tlsContext = tlsContext
        self.authorizations = config.routes.map { $0.authorization ?? config.authorization }
        self.hasAuthorization = authorizations.contains { $0 != nil }
        self.passesClientIdentity = config.tls?.clientCA != nil
    }

    func update(config newConfig: ListenerConfig, services: [String: ServiceRuntime], metrics: LoopMetrics?, tlsContext: NIOSSLContext?) {
        config = newConfig
        table = RouteTable(newConfig.routes)
        targets = newConfig.routes.map { services[$0.service]! }
        targetMetrics = newConfig.routes.map { metrics?.route(listener: newConfig.name, service: $0.service) }
        maxDeadlineNanoseconds = newConfig.maxDeadline?.totalNanoseconds
        h2Settings = Self.settings(newConfig.http2)
        self.tlsContext = tlsContext
        authorizations = newConfig.routes.map { $0.authorization ?? newConfig.authorization }
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

    func markRemoved() { isRemoved = true }

    var name: String { config.name }
    var acceptsDeadlineHeader: Bool { config.deadlineHeader }

    /// The service a request goes to, by its `:authority` (or `host`) and `:path`; nil when no
    /// route matches.
    func route(_ headers: H2Headers) -> (service: ServiceRuntime, metrics: RouteMetrics?, index: Int)? {
        if table.isSingleDefault { return (targets[0], targetMetrics[0], 0) }
        let index = headers.withValue(of: ":path") { path in
            headers.withValue(of: ":authority") { authority in
                if let authority { return table.match(authority: authority, path: path ?? UnsafeRawBufferPointer(start: nil, count: 0)) }
                return headers.withValue(of: "host") { host in
                    table.match(authority: host ?? UnsafeRawBufferPointer(start: nil, count: 0), path: path ?? UnsafeRawBufferPointer(start: nil, count: 0))
                }
            }
        }
        return index.map { (targets[$0], targetMetrics[$0], $0) }
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
