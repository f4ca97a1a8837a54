/// Ferry's whole configuration, validated: every reference resolves, every value is in range.
public struct FerryConfig: Sendable, Equatable {
    public var admin: AdminConfig?
    public var runtime: RuntimeConfig
    public var listeners: [ListenerConfig]
    /// Services in the order they were written.
    public var services: [ServiceConfig]
    /// Where this configuration came from (a path, or a name like `<demo>`).
    public var source: String

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
    public init(address: HostPort) { self.address = address }
}

public struct RuntimeConfig: Sendable, Equatable {
    /// Event loops (threads) serving traffic; default: one per core.
    public var eventLoops: Int?
    /// How long calls in flight may take to finish after SIGTERM before Ferry exits anyway.
    public var drainTimeout: Duration = .seconds(10)
    public init() {}
}

/// HTTP/2 limits for one side of the proxy.
public struct HTTP2Config: Sendable, Equatable {
    public var maxConcurrentStreams: UInt32 = 1024
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
    /// The service every request on this listener goes to.
    public var service: String
    public var http2: HTTP2Config
    /// No call on this listener lasts longer than this, whatever the caller asks.
    public var maxDeadline: Duration?

    public init(name: String, address: HostPort, service: String, http2: HTTP2Config = HTTP2Config()) {
        self.name = name
        self.address = address
        self.service = service
        self.http2 = http2
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

public struct ServiceConfig: Sendable, Equatable {
    public var name: String
    public var endpoints: [EndpointConfig]
    /// Time allowed to establish a TCP connection to an endpoint.
    public var connectTimeout: Duration = .seconds(1)
    /// An upstream connection with no streams for this long is closed.
    public var idleTimeout: Duration = .seconds(60)
    /// Connections per endpoint per event loop; more open only when the peer's stream limit is reached.
    public var maxConnectionsPerEndpoint: Int = 8
    /// Calls that may wait for an upstream connection per endpoint per event loop; beyond, fail fast.
    public var maxPendingCalls: Int = 1024
    /// The largest gRPC message (either direction) let through; a larger one fails the call
    /// with RESOURCE_EXHAUSTED and resets its upstream stream.
    public var maxMessageSize: Int = 16 * 1024 * 1024
    /// Every call to this service ends by this timeout (or the caller's, if shorter).
    public var timeout: Duration?
    /// Time kept back from the propagated grpc-timeout for the answer's way back.
    public var deadlineOffset: Duration = .zero
    public var http2: HTTP2Config

    public init(name: String, endpoints: [EndpointConfig], http2: HTTP2Config = HTTP2Config()) {
        self.name = name
        self.endpoints = endpoints
        self.http2 = http2
    }
}
