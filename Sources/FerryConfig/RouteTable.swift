/// A listener's routes, ordered most specific first and matched against a request's
/// `:authority` and `:path` as bytes (no `String` is made per request).
///
/// Order: by authority (exact host before wildcard, longer wildcard suffix before shorter, a
/// pattern with a port before one without, any authority last), then by path (exact gRPC
/// method, whole gRPC service, longer path prefix, any path), then by the number of headers
/// the route asks for (more first). The first route whose authority, path and headers all
/// match wins. Two routes with the same match are a configuration error, so the
/// winner never depends on the order routes were written in. With `RouteOrder.asWritten`
/// (xDS) the routes are tried in the order given instead, and a route with no backends ends
/// the search with no route.
public struct RouteTable: Sendable {
    struct Entry: Sendable {
        var host: [UInt8]?
        var isWildcard: Bool
        var port: Int?
        var path: [UInt8]?
        var exactPath: Bool
        var headers: [HeaderMatch]
        /// nil: a route with no backends (a match there means no route).
        var routeIndex: Int?
    }

    let entries: [Entry]

    public init(_ routes: [RouteConfig], order: RouteOrder = .mostSpecificFirst) {
        let indices = order == .asWritten ? Array(routes.indices) : Self.precedence(routes)
        entries = indices.map { index in
            let match = routes[index].match
            return Entry(host: match.authority.map { Array($0.host.utf8) }, isWildcard: match.authority?.isWildcard ?? false,
                         port: match.authority?.port, path: match.path?.pathBytes, exactPath: match.path?.isExact ?? false,
                         headers: match.headers, routeIndex: routes[index].backends.isEmpty ? nil : index)
        }
    }

    /// Route indices from most to least specific.
    public static func precedence(_ routes: [RouteConfig]) -> [Int] {
        func key(_ m: RouteMatch) -> [Int] {
            let a = m.authority.map { [1, $0.specificity.0, $0.specificity.1, $0.specificity.2] } ?? [0, 0, 0, 0]
            let p = m.path.map { [1, $0.specificity.0, $0.specificity.1] } ?? [0, 0, 0]
            return a + p + [m.headers.count]
        }
        return routes.indices.sorted { key(routes[$0].match).lexicographicallyPrecedes(key(routes[$1].match), by: >) || (key(routes[$0].match) == key(routes[$1].match) && $0 < $1) }
    }

    /// The first pair of routes with the same match (which would make the winner arbitrary).
    public static func firstTie(in routes: [RouteConfig]) -> (Int, Int)? {
        var seen: [RouteMatch: Int] = [:]
        for (index, route) in routes.enumerated() {
            if let earlier = seen[route.match] { return (earlier, index) }
            seen[route.match] = index
        }
        return nil
    }

    /// True when every request matches the same route whatever its authority and path.
    public var isSingleDefault: Bool {
        entries.count == 1 && entries[0].host == nil && entries[0].path == nil && entries[0].headers.isEmpty && entries[0].routeIndex != nil
    }

    /// The index (in configuration order) of the route for a request, or nil when none matches.
    /// `headers` is asked only for the headers a candidate route names.
    public func match<Headers: RequestHeaderLookup>(authority: UnsafeRawBufferPointer, path: UnsafeRawBufferPointer,
                                                    headers: Headers) -> Int? {
        let (host, port) = Self.split(authority)
        for entry in entries {
            if let pattern = entry.host {
                if let wanted = entry.port, wanted != port { continue }
                if entry.isWildcard {
                    guard host.count > pattern.count, Self.equalIgnoringCase(UnsafeRawBufferPointer(rebasing: host.suffix(pattern.count)), pattern) else { continue }
                } else {
                    guard host.count == pattern.count, Self.equalIgnoringCase(host, pattern) else { continue }
                }
            }
            if let pattern = entry.path {
                if entry.exactPath {
                    guard path.count == pattern.count, path.elementsEqual(pattern) else { continue }
                } else {
                    guard path.count >= pattern.count, path.prefix(pattern.count).elementsEqual(pattern) else { continue }
                }
            }
            if !entry.headers.isEmpty, !entry.headers.allSatisfy({ wanted in headers.withValue(of: wanted.name) { wanted.matches($0) } }) {
                continue
            }
            return entry.routeIndex
        }
        return nil
    }

    public func match(authority: String, path: String, headers: [(String, String)] = []) -> Int? {
        var authority = authority, path = path
        return authority.withUTF8 { a in
            path.withUTF8 { p in match(authority: UnsafeRawBufferPointer(a), path: UnsafeRawBufferPointer(p), headers: HeaderList(headers)) }
        }
    }

    /// Splits an `:authority` into its host (without a trailing dot) and port, if any.
    static func split(_ authority: UnsafeRawBufferPointer) -> (host: UnsafeRawBufferPointer, port: Int?) {
        var hostEnd = authority.count
        var port: Int?
        let colon = UInt8(ascii: ":")
        if let last = authority.lastIndex(of: colon), last + 1 < authority.count,
           authority.first != UInt8(ascii: "[") || (last > 0 && authority[last - 1] == UInt8(ascii: "]")) {
            var value = 0
            var valid = authority.count - last - 1 <= 5
            for byte in authority[(last + 1)...] where valid {
                guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { valid = false; break }
                value = value * 10 + Int(byte - UInt8(ascii: "0"))
            }
            if valid {
                port = value
                hostEnd = last
            }
        }
        if hostEnd > 0, authority[hostEnd - 1] == UInt8(ascii: ".") { hostEnd -= 1 }
        return (UnsafeRawBufferPointer(rebasing: authority[..<hostEnd]), port)
    }

    /// Compares request bytes with a lower-case pattern, ASCII case-insensitively.
    static func equalIgnoringCase(_ bytes: UnsafeRawBufferPointer, _ lowered: [UInt8]) -> Bool {
        guard bytes.count == lowered.count else { return false }
        for i in 0..<bytes.count {
            var b = bytes[i]
            if b >= UInt8(ascii: "A") && b <= UInt8(ascii: "Z") { b |= 0x20 }
            if b != lowered[i] { return false }
        }
        return true
    }
}

/// Where a route table reads the request headers a route names (an HTTP/2 header block on the
/// request path; a list in tests and tools).
public protocol RequestHeaderLookup {
    /// Calls `body` with the first value of `name` (lower case), or nil when the header is absent.
    func withValue<R>(of name: String, _ body: (UnsafeRawBufferPointer?) -> R) -> R
}

/// Headers as name/value pairs, for matching outside the request path.
public struct HeaderList: RequestHeaderLookup {
    public var pairs: [(String, String)]

    public init(_ pairs: [(String, String)]) { self.pairs = pairs }

    public func withValue<R>(of name: String, _ body: (UnsafeRawBufferPointer?) -> R) -> R {
        guard var value = pairs.first(where: { $0.0.lowercased() == name })?.1 else { return body(nil) }
        return value.withUTF8 { body(UnsafeRawBufferPointer($0)) }
    }
}
