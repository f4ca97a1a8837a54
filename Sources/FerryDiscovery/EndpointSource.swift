import FerryConfig

/// One address a service can be reached at.
public struct Endpoint: Sendable, Hashable, CustomStringConvertible {
    public var host: String
    public var port: Int
    public var weight: Int

    public init(host: String, port: Int, weight: Int = 1) {
        self.host = host
        self.port = port
        self.weight = weight
    }

    public init(_ config: EndpointConfig) {
        self.init(host: config.address.host, port: config.address.port, weight: config.weight)
    }

    public var description: String { HostPort(host: host, port: port).description }
}

/// What a source read: the endpoints, and when to read again (nil: never, they cannot change).
public struct EndpointSnapshot: Sendable, Equatable {
    public var endpoints: [Endpoint]
    public var refreshAfter: Duration?
    /// Why there are no endpoints, when the source can say (a resolver's NXDOMAIN).
    public var emptyBecause: String?

    public init(endpoints: [Endpoint], refreshAfter: Duration?, emptyBecause: String? = nil) {
        self.endpoints = endpoints
        self.refreshAfter = refreshAfter
        self.emptyBecause = emptyBecause
    }
}

/// Where a service's endpoints come from. A source only reads, once per call; when to read
/// again, and what to do with an error, is `EndpointWatcher`'s business. A seam for more
/// sources (a control plane's EDS comes here).
public protocol EndpointSource: Sendable, CustomStringConvertible {
    func read() async throws -> EndpointSnapshot
}

/// The endpoints written in the configuration.
public struct StaticEndpointSource: EndpointSource {
    public let endpoints: [Endpoint]

    public init(_ endpoints: [Endpoint]) {
        self.endpoints = endpoints
    }

    public func read() async throws -> EndpointSnapshot { EndpointSnapshot(endpoints: endpoints, refreshAfter: nil) }
    public var description: String { "static list" }
}

/// A YAML or JSON endpoints file (see `EndpointsFile`), read again every `interval`.
public struct FileEndpointSource: EndpointSource {
    public let config: FileDiscoveryConfig

    public init(_ config: FileDiscoveryConfig) {
        self.config = config
    }

    public func read() async throws -> EndpointSnapshot {
        EndpointSnapshot(endpoints: try EndpointsFile.load(path: config.path).map(Endpoint.init), refreshAfter: config.interval)
    }

    public var description: String { "file \(config.path)" }
}

/// Builds the source a service's discovery configuration names.
public func makeEndpointSource(_ config: DiscoveryConfig, dns: DNSClient) -> EndpointSource {
    switch config {
    case .static(let endpoints): return StaticEndpointSource(endpoints.map(Endpoint.init))
    case .file(let file): return FileEndpointSource(file)
    case .dns(let config): return DNSEndpointSource(config, client: dns)
    }
}
