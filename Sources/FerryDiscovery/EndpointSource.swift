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

    public var description: String { HostPort(host: host, port: port).description }
}

/// Where a service's endpoints come from. Sources deliver immutable snapshots; the runtime
/// swaps them in per event loop. (Static today; file and DNS sources plug in here.)
public protocol EndpointSource: Sendable {
    /// The current endpoints.
    func snapshot() -> [Endpoint]
}

/// The endpoints written in the configuration, fixed for the life of the config.
public struct StaticEndpointSource: EndpointSource {
    public let endpoints: [Endpoint]

    public init(_ endpoints: [Endpoint]) {
        self.endpoints = endpoints
    }

    public init(_ service: ServiceConfig) {
        self.endpoints = service.endpoints.map { Endpoint(host: $0.address.host, port: $0.address.port, weight: $0.weight) }
    }

    public func snapshot() -> [Endpoint] { endpoints }
}
