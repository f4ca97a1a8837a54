/// Where a service's endpoints come from.
public enum DiscoveryConfig: Sendable, Equatable {
    /// Written in the configuration.
    case `static`([EndpointConfig])
    /// A YAML or JSON file of endpoints, read again whenever it changes.
    case file(FileDiscoveryConfig)
    /// DNS records, resolved again when their TTL runs out.
    case dns(DNSDiscoveryConfig)
}

public struct FileDiscoveryConfig: Sendable, Equatable {
    /// The file's path, resolved against the configuration file's folder when relative.
    public var path: String
    /// How often the file is checked for a change.
    public var interval: Duration = .seconds(1)

    public init(path: String) {
        self.path = path
    }
}

public struct DNSDiscoveryConfig: Sendable, Equatable {
    public enum RecordType: String, Sendable, Equatable, CaseIterable {
        /// IPv4 and IPv6 addresses of `name`, at `port`.
        case addresses = "A+AAAA"
        case a = "A"
        case aaaa = "AAAA"
        /// SRV records of `name`: each target's addresses at the record's port, weighted.
        case srv = "SRV"
    }

    /// The name to resolve, used as written (absolute; no search domains are appended).
    public var name: String
    public var recordType: RecordType = .addresses
    /// The port of A/AAAA endpoints (SRV records carry their own).
    public var port: Int?
    /// The DNS server asked; default: the first `nameserver` in /etc/resolv.conf.
    public var resolver: HostPort?
    /// Answers are asked again after their TTL, held within these bounds.
    public var minTTL: Duration = .seconds(1)
    public var maxTTL: Duration = .seconds(300)
    /// How long one query may take before it is retried (three tries per resolution).
    public var queryTimeout: Duration = .seconds(1)

    public init(name: String) {
        self.name = name
    }
}
