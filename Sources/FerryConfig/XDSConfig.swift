/// Where listeners, routes and services come from besides the file: an xDS control plane,
/// over one ADS stream (`xds:` in the YAML). What it sends is added to what the file
/// defines; a name the file already uses stays the file's.
public struct XDSConfig: Sendable, Equatable {
    /// Who this Ferry is to the control plane (the `node` of the first request).
    public struct Node: Sendable, Equatable {
        public var id: String
        public var cluster: String
        public var metadata: [String: String] = [:]
        public var region = ""
        public var zone = ""
        public init(id: String, cluster: String) {
            self.id = id
            self.cluster = cluster
        }
    }

    /// The ADS server, plaintext HTTP/2 (gRPC).
    public var server: HostPort
    public var node: Node
    /// How long a resource asked for may take before it counts as missing (gRPC's 15 s).
    public var resourceTimeout: Duration = .seconds(15)

    public init(server: HostPort, node: Node) {
        self.server = server
        self.node = node
    }
}

/// Which listeners and services of a running configuration came from xDS, and in which
/// version of their resource type (for `/config` and the reload log); the rest are the file's.
public struct XDSProvenance: Sendable, Equatable {
    /// Listener name -> "LDS <version>".
    public var listeners: [String: String] = [:]
    /// Service name -> "CDS <version>" (its endpoints: ", EDS <version>").
    public var services: [String: String] = [:]
    public init() {}
}
