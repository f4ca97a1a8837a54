/// Which requests a route takes: an `:authority` pattern and a path pattern, both optional
/// (absent means any). The most specific matching route wins: first by authority, then by path.
public struct RouteMatch: Sendable, Hashable {
    public var authority: AuthorityPattern?
    public var path: PathPattern?

    public init(authority: AuthorityPattern? = nil, path: PathPattern? = nil) {
        self.authority = authority
        self.path = path
    }

    public var description: String {
        let parts = [authority.map { "authority \($0)" }, path.map { "\($0)" }].compactMap { $0 }
        return parts.isEmpty ? "default" : parts.joined(separator: ", ")
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

public struct RouteConfig: Sendable, Equatable {
    public var match: RouteMatch
    public var service: String
    /// Who may make the calls this route matches (over the listener's policy); nil: the listener's.
    public var authorization: AuthorizationPolicy?

    public init(match: RouteMatch, service: String) {
        self.match = match
        self.service = service
    }
}
