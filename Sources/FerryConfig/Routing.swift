/// Which requests a route takes: an `:authority` pattern, a path pattern (both optional,
/// absent means any) and request headers that must match (all of them). The most specific
/// matching route wins: first by authority, then by path, then the route with more headers.
public struct RouteMatch: Sendable, Hashable {
    public var authority: AuthorityPattern?
    public var path: PathPattern?
    /// Kept sorted by name, so two routes asking for the same headers compare equal.
    public var headers: [HeaderMatch] {
        didSet { headers.sort { ($0.name, $0.kind.order) < ($1.name, $1.kind.order) } }
    }

    public init(authority: AuthorityPattern? = nil, path: PathPattern? = nil, headers: [HeaderMatch] = []) {
        self.authority = authority
        self.path = path
        self.headers = headers.sorted { ($0.name, $0.kind.order) < ($1.name, $1.kind.order) }
    }

    public var description: String {
        let parts = [authority.map { "authority \($0)" }, path.map { "\($0)" }].compactMap { $0 } + headers.map(\.description)
        return parts.isEmpty ? "default" : parts.joined(separator: ", ")
    }
}

/// A request header a route asks for: its first value equal to a string, starting with one, or
/// the header present at all (no regular expressions: nothing a request can make slow).
public struct HeaderMatch: Sendable, Hashable, CustomStringConvertible {
    public enum Kind: Sendable, Hashable {
        case exact(String)
        case prefix(String)
        case present

        var order: Int {
            switch self {
            case .exact: return 0
            case .prefix: return 1
            case .present: return 2
            }
        }
    }

    /// Lower case, as HTTP/2 carries it.
    public var name: String
    public var kind: Kind

    public init(name: String, kind: Kind) {
        self.name = name.lowercased()
        self.kind = kind
    }

    /// Whether a request's (first) value of the header satisfies this match; nil: no such header.
    public func matches(_ value: UnsafeRawBufferPointer?) -> Bool {
        guard let value else { return false }
        switch kind {
        case .present: return true
        case .exact(let wanted): return value.elementsEqual(wanted.utf8)
        case .prefix(let wanted): return value.count >= wanted.utf8.count && value.prefix(wanted.utf8.count).elementsEqual(wanted.utf8)
        }
    }

    public var description: String {
        switch kind {
        case .exact(let value): return "header \(name) = \"\(value)\""
        case .prefix(let value): return "header \(name) starts with \"\(value)\""
        case .present: return "header \(name) present"
        }
    }
}

/// An `:authority` pattern: an exact host (`greeter.svc`), or a wildcard suffix
/// (`*.svc.cluster.local`), each with an optional port. Without a port it matches any port.
/// Hosts compare case-insensitively; patterns are kept in lower case.
public struct AuthorityPattern: Sendable, Hashable, CustomStringConvertible {
    /// The exact host, or for a wildcard the suffix including its leading dot (`.svc.cluster.local`).
    public var host: String
    public var isWildcard: Bool
    public var port: Int?

    public init(host: String, isWildcard: Bool, port: Int?) {
        self.host = host.lowercased()
        self.isWildcard = isWildcard
        self.port = port
    }

    /// Parses `host`, `host:port`, `*.suffix`, `*.suffix:port`, `[v6]`, `[v6]:port`.
    public static func parse(_ text: String) -> Result<AuthorityPattern, ConfigValueError> {
        var rest = Substring(text)
        var port: Int?
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]") else { return .fail("missing ']' in \"\(text)\"") }
            let after = rest[rest.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":"), let p = Int(after.dropFirst()), (1...65535).contains(p) else {
                    return .fail("expected ':port' after ']' in \"\(text)\"")
                }
                port = p
            }
            rest = rest[...close]
        } else if let colon = rest.lastIndex(of: ":") {
            guard let p = Int(rest[rest.index(after: colon)...]), (1...65535).contains(p) else {
                return .fail("port must be a number from 1 to 65535 in \"\(text)\"")
            }
            port = p
            rest = rest[..<colon]
        }
        var wildcard = false
        if rest.hasPrefix("*") {
            guard rest.hasPrefix("*."), rest.count > 2 else { return .fail("a wildcard authority looks like \"*.example.com\", got \"\(text)\"") }
            wildcard = true
            rest = rest.dropFirst()
        }
        guard !rest.isEmpty, !rest.contains("*"), !rest.contains(where: { $0 == "/" || $0 == " " || $0 == "@" }) else {
            return .fail("expected a host, \"*.suffix\", with an optional \":port\", got \"\(text)\"")
        }
        return .success(AuthorityPattern(host: String(rest), isWildcard: wildcard, port: port))
    }

    public var description: String {
        let host = isWildcard ? "*\(self.host)" : self.host
        return port.map { "\(host):\($0)" } ?? host
    }

    /// Orders patterns from most to least specific: exact before wildcard, a longer wildcard
    /// suffix before a shorter one, and with a port before without.
    var specificity: (Int, Int, Int) { (isWildcard ? 0 : 1, host.utf8.count, port == nil ? 0 : 1) }
}

/// A path pattern: a gRPC method (`pkg.Service/Method`), every method of a gRPC service
/// (`pkg.Service/*`), or a plain HTTP path prefix (`/api/`).
public enum PathPattern: Sendable, Hashable, CustomStringConvertible {
    case grpcMethod(service: String, method: String)
    case grpcService(String)
    case prefix(String)

    /// Parses a gRPC method pattern as written in `method:` (no leading slash).
    public static func parseMethod(_ text: String) -> Result<PathPattern, ConfigValueError> {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty, !parts[0].contains("*"),
              !text.contains(where: { $0 == " " || $0 == "?" || $0 == "#" }) else {
            return .fail("expected \"package.Service/Method\" or \"package.Service/*\", got \"\(text)\"")
        }
        if parts[1] == "*" { return .success(.grpcService(String(parts[0]))) }
        guard !parts[1].contains("*") else { return .fail("'*' stands only for a whole method name: \"\(parts[0])/*\"") }
        return .success(.grpcMethod(service: String(parts[0]), method: String(parts[1])))
    }

    public var description: String {
        switch self {
        case .grpcMethod(let service, let method): return "method \(service)/\(method)"
        case .grpcService(let service): return "method \(service)/*"
        case .prefix(let prefix): return "path_prefix \(prefix)"
        }
    }

    /// The bytes a matching `:path` starts with (all of it, for an exact method).
    var pathBytes: [UInt8] {
        switch self {
        case .grpcMethod(let service, let method): return Array("/\(service)/\(method)".utf8)
        case .grpcService(let service): return Array("/\(service)/".utf8)
        case .prefix(let prefix): return Array(prefix.utf8)
        }
    }

    var isExact: Bool { if case .grpcMethod = self { return true } else { return false } }

    /// Orders patterns from most to least specific: an exact method, then a whole service,
    /// then prefixes, longer first.
    var specificity: (Int, Int) {
        switch self {
        case .grpcMethod: return (3, pathBytes.count)
        case .grpcService: return (2, pathBytes.count)
        case .prefix: return (1, pathBytes.count)
        }
    }
}

/// One of the services a route sends to, with its share of the route's calls (weight over the
/// sum of the route's weights; 0 takes none, a canary not yet started or a version drained).
public struct WeightedService: Sendable, Equatable {
    public var service: String
    public var weight: Int

    public init(service: String, weight: Int) {
        self.service = service
        self.weight = weight
    }
}

/// How a listener's routes are tried (see `RouteTable`).
public enum RouteOrder: Sendable, Equatable {
    /// Most specific first, whatever the order written (two routes with one match are an error).
    case mostSpecificFirst
    /// In the order written, the first match wins (xDS: virtual hosts flattened in Envoy's
    /// domain order, each host's routes in order, then a route with no backends that stops a
    /// request from falling through to the next host).
    case asWritten
}

public struct RouteConfig: Sendable, Equatable {
    public var match: RouteMatch
    /// Where the route's calls go: one service, or a split between several by weight (each call
    /// picks one; its retries and hedges stay in the service it picked). Empty: the request
    /// has no route (answered as if nothing matched).
    public var backends: [WeightedService]
    /// The route's own call policy (timeout, retries), over the service's and its methods'
    /// (xDS routes carry one); nil: the service's.
    public var policy: CallPolicy?
    /// Who may make the calls this route matches (over the listener's policy); nil: the listener's.
    public var authorization: AuthorizationPolicy?
    /// Faults injected into this route's calls (over the method's); nil: the method's, if any.
    public var fault: FaultConfig?

    public init(match: RouteMatch, service: String) {
        self.match = match
        self.backends = [WeightedService(service: service, weight: 1)]
    }

    public init(match: RouteMatch, split: [WeightedService]) {
        self.match = match
        self.backends = split
    }

    public var isSplit: Bool { backends.count > 1 }

    /// What the route leads to, as `ferry check` prints it: `greeter`, or
    /// `split stable 90 (90%), canary 10 (10%)`.
    public var target: String {
        guard !backends.isEmpty else { return "no route" }
        guard isSplit else { return backends[0].service }
        let total = backends.reduce(0) { $0 + $1.weight }
        return "split " + backends.map { b in
            let tenths = (b.weight * 1000 + total / 2) / total   // of a percent, rounded
            return "\(b.service) \(b.weight) (\(tenths / 10)\(tenths % 10 == 0 ? "" : ".\(tenths % 10)")%)"
        }.joined(separator: ", ")
    }
}
