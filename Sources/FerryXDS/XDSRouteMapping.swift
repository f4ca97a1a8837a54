import FerryConfig
import FerryGRPC

/// A `RouteConfiguration` taken into Ferry's terms, keeping xDS's shape: a request picks one
/// virtual host by its `:authority` (the most specific domain wins, as in Envoy), then the
/// first route of that host that matches, in order.
public struct XDSRouteTable: Sendable, Equatable {
    public var name: String
    public var virtualHosts: [XDSVirtualHost]
    /// What the table set that Ferry ignores, for one log line.
    public var ignored: [String] = []

    public static func decode(_ bytes: ArraySlice<UInt8>) -> Result<XDSRouteTable, XDSProblem> {
        do throws(XDSProblem) {
            return .success(try map(XDSRouteConfigurationMessage(decoding: bytes)))
        } catch {
            return .failure(error)
        }
    }

    /// The names of the clusters the routes send calls to, in order, without repeats: what CDS
    /// must have for this table to route.
    public var clusterNames: [String] {
        var seen = Set<String>()
        return virtualHosts.flatMap { $0.routes.flatMap { $0.route.backends.map(\.service) } }.filter { seen.insert($0).inserted }
    }

    static func map(_ message: XDSRouteConfigurationMessage) throws(XDSProblem) -> XDSRouteTable {
        if message.vhds { throw XDSProblem("is not supported: Ferry takes virtual hosts inline").inside("vhds") }
        var ignored: [String] = []
        var hosts: [XDSVirtualHost] = []
        var domains = Set<String>()
        for (index, host) in message.virtualHosts.enumerated() {
            do throws(XDSProblem) {
                let mapped = try XDSVirtualHost.map(host, ignored: &ignored)
                for domain in mapped.domains where !domains.insert(domain.description).inserted {
                    throw XDSProblem("\"\(domain)\" is in two virtual hosts").inside("domains")
                }
                hosts.append(mapped)
            } catch {
                throw error.inside("virtual_hosts[\(index)]")
            }
        }
        return XDSRouteTable(name: message.name, virtualHosts: hosts, ignored: ignored)
    }
}

public struct XDSVirtualHost: Sendable, Equatable {
    /// A domain: `*` (any authority), or an exact or `*.suffix` pattern.
    public enum Domain: Sendable, Equatable, CustomStringConvertible {
        case any
        case pattern(AuthorityPattern)

        public var description: String {
            switch self {
            case .any: "*"
            case .pattern(let pattern): pattern.description
            }
        }
    }

    public var name: String
    public var domains: [Domain]
    public var routes: [XDSRoute]

    static func map(_ host: XDSRouteConfigurationMessage.VirtualHost, ignored: inout [String]) throws(XDSProblem) -> XDSVirtualHost {
        guard !host.domains.isEmpty else { throw XDSProblem("is empty: a virtual host needs a domain").inside("domains") }
        var domains: [Domain] = []
        for (index, text) in host.domains.enumerated() {
            if text == "*" {
                domains.append(.any)
                continue
            }
            if text.hasSuffix("*") || (text.hasPrefix("*") && !text.hasPrefix("*.")) {
                throw XDSProblem("\"\(text.prefix(200))\" is a wildcard Ferry does not support (\"*\" and \"*.suffix\" are)")
                    .inside("domains[\(index)]")
            }
            switch AuthorityPattern.parse(text) {
            case .success(let pattern): domains.append(.pattern(pattern))
            case .failure(let error): throw XDSProblem("\(error)").inside("domains[\(index)]")
            }
        }
        var routes: [XDSRoute] = []
        for (index, route) in host.routes.enumerated() {
            do throws(XDSProblem) {
                routes.append(try XDSRoute.map(route, hostRetry: host.retryPolicy, ignored: &ignored))
            } catch {
                throw error.inside("routes[\(index)]")
            }
        }
        return XDSVirtualHost(name: host.name, domains: domains, routes: routes)
    }
}

/// One route: Ferry's match (path and headers; the authority is the virtual host's) and
/// backends, and the policy xDS gives its calls.
public struct XDSRoute: Sendable, Equatable {
    public var name: String
    public var route: RouteConfig
    public var policy: XDSRoutePolicy

    static func map(_ route: XDSRouteConfigurationMessage.Route, hostRetry: XDSRouteConfigurationMessage.RetryPolicy?,
                    ignored: inout [String]) throws(XDSProblem) -> XDSRoute {
        let match = try Self.match(route.match)
        guard case .route(let action) = route.action else {
            if case .unsupported(let field) = route.action {
                throw XDSProblem("is not supported: Ferry forwards calls to clusters").inside(field)
            }
            throw XDSProblem("has no action (route)").inside("route")
        }
        do throws(XDSProblem) {
            let backends = try Self.backends(action.cluster)
            if !action.prefixRewrite.isEmpty { throw XDSProblem("is not supported: Ferry forwards paths unchanged").inside("prefix_rewrite") }
            if action.regexRewrite { throw XDSProblem("is not supported: Ferry forwards paths unchanged").inside("regex_rewrite") }
            if action.hedgePolicy { ignored.append("route.hedge_policy (Ferry's hedging is configured on its services)") }
            let policy = try XDSRoutePolicy.map(action, hostRetry: hostRetry, ignored: &ignored)
            return XDSRoute(name: route.name, route: RouteConfig(match: match, split: backends), policy: policy)
        } catch {
            throw error.inside("route")
        }
    }

    private static func match(_ match: XDSRouteConfigurationMessage.Match) throws(XDSProblem) -> RouteMatch {
        func refuse(_ field: String, _ reason: String = "is not supported") -> XDSProblem { XDSProblem(reason).inside("match", field) }
        if let field = match.unsupported.first { throw refuse(field) }
        if match.caseSensitive == false { throw refuse("case_sensitive", "false is not supported: Ferry matches paths as sent") }
        var result = RouteMatch()
        switch match.path {
        case .none: throw XDSProblem("has no path specifier (prefix or path)").inside("match")
        case .unsupported(let field): throw refuse(field)
        case .separatedPrefix: throw refuse("path_separated_prefix")
        case .prefix(let prefix):
            // "" and "/" take every path.
            if prefix.count > 1 || (prefix.count == 1 && prefix != "/") {
                guard prefix.hasPrefix("/") else { throw refuse("prefix", "\"\(prefix.prefix(200))\" does not start with /") }
                result.path = .prefix(prefix)
            }
        case .path(let path):
            let parts = path.split(separator: "/", omittingEmptySubsequences: false)
            guard parts.count == 3, parts[0].isEmpty, !parts[1].isEmpty, !parts[2].isEmpty else {
                throw refuse("path", "\"\(path.prefix(200))\" is not /package.Service/Method (Ferry matches other paths by prefix)")
            }
            result.path = .grpcMethod(service: String(parts[1]), method: String(parts[2]))
        }
        var headers: [HeaderMatch] = []
        for (index, header) in match.headers.enumerated() {
            do throws(XDSProblem) { headers.append(try Self.header(header)) } catch { throw error.inside("match", "headers[\(index)]") }
        }
        if match.grpcOnly { headers.append(HeaderMatch(name: "content-type", kind: .prefix("application/grpc"))) }
        result.headers = headers
        return result
    }

    private static func header(_ header: XDSRouteConfigurationMessage.Header) throws(XDSProblem) -> HeaderMatch {
        guard !header.name.isEmpty else { throw XDSProblem("is empty").inside("name") }
        if header.invert { throw XDSProblem("is not supported").inside("invert_match") }
        if header.treatMissingAsEmpty { throw XDSProblem("is not supported").inside("treat_missing_header_as_empty") }
        switch header.specifier {
        case .none, .present(true): return HeaderMatch(name: header.name, kind: .present)
        case .present(false): throw XDSProblem("false (the header absent) is not supported").inside("present_match")
        case .unsupported(let field): throw XDSProblem("is not supported").inside(field)
        case .string(let match, let ignoreCase):
            if ignoreCase { throw XDSProblem("is not supported").inside("string_match", "ignore_case") }
            switch match {
            case .exact(let value): return HeaderMatch(name: header.name, kind: .exact(value))
            case .prefix(let value): return HeaderMatch(name: header.name, kind: .prefix(value))
            case .suffix: throw XDSProblem("is not supported (exact, prefix and present are)").inside("suffix_match")
            case .contains: throw XDSProblem("is not supported (exact, prefix and present are)").inside("contains_match")
            case .unsupported(let field): throw XDSProblem("is not supported").inside("string_match", field)
            }
        }
    }

    private static func backends(_ cluster: XDSRouteConfigurationMessage.ClusterSpecifier) throws(XDSProblem) -> [WeightedService] {
        switch cluster {
        case .none: throw XDSProblem("is missing: name a cluster or weighted_clusters").inside("cluster")
        case .unsupported(let field): throw XDSProblem("is not supported").inside(field)
        case .cluster(let name):
            guard !name.isEmpty else { throw XDSProblem("is empty").inside("cluster") }
            return [WeightedService(service: name, weight: 1)]
        case .weighted(let clusters, _):
            guard !clusters.isEmpty else { throw XDSProblem("is empty").inside("weighted_clusters", "clusters") }
            var backends: [WeightedService] = []
            for (index, cluster) in clusters.enumerated() {
                let path = ["weighted_clusters", "clusters[\(index)]"]
                guard cluster.clusterHeader.isEmpty else { throw XDSProblem("is not supported").inside(path + ["cluster_header"]) }
                guard !cluster.name.isEmpty else { throw XDSProblem("is empty").inside(path + ["name"]) }
                // A weight of 0 takes no calls; Envoy allows it while the total is above 0.
                let weight = Int(cluster.weight ?? 0)
                if weight > 0 { backends.append(WeightedService(service: cluster.name, weight: weight)) }
            }
            guard !backends.isEmpty else { throw XDSProblem("add up to 0").inside("weighted_clusters", "clusters", "weight") }
            return backends
        }
    }
}

/// What xDS says of a route's calls, in Ferry's terms. Envoy's rules: the route `timeout`
/// (15 s when unset, 0 for none) ends a call; a caller's `grpc-timeout` counts only when
/// `max_stream_duration.grpc_timeout_header_max` (or the older `max_grpc_timeout`) is set, up
/// to it (0: no cap), less `grpc_timeout_header_offset`.
public struct XDSRoutePolicy: Sendable, Equatable {
    public enum CallerTimeout: Sendable, Equatable {
        /// The route's timeout alone applies (Envoy without grpc_timeout_header_max).
        case ignored
        /// The caller's grpc-timeout applies, capped at `max` (nil: uncapped), less `offset`.
        case honoured(max: Duration?, offset: Duration)
    }

    public var timeout: Duration?
    public var callerTimeout = CallerTimeout.ignored
    public var idleTimeout: Duration?
    /// Retries as Ferry makes them; nil: none (xDS retries only when a policy is given).
    public var retry: RetryPolicy?

    static let envoyDefaultTimeout = Duration.seconds(15)

    static func map(_ action: XDSRouteConfigurationMessage.RouteAction, hostRetry: XDSRouteConfigurationMessage.RetryPolicy?,
                    ignored: inout [String]) throws(XDSProblem) -> XDSRoutePolicy {
        var policy = XDSRoutePolicy()
        policy.timeout = try action.timeout.map { d throws(XDSProblem) in try zeroIsNone(d, "timeout") } ?? envoyDefaultTimeout
        policy.idleTimeout = try action.idleTimeout.flatMap { d throws(XDSProblem) in try zeroIsNone(d, "idle_timeout") }
        if let max = action.grpcTimeoutHeaderMax ?? action.maxGrpcTimeout {
            let field = action.grpcTimeoutHeaderMax != nil ? "max_stream_duration.grpc_timeout_header_max" : "max_grpc_timeout"
            let cap = try zeroIsNone(max, field)
            let offsetValue = action.grpcTimeoutHeaderOffset ?? action.grpcTimeoutOffset
            let offset = try offsetValue.map { d throws(XDSProblem) in try nonNegative(d, "grpc_timeout_header_offset") } ?? .zero
            policy.callerTimeout = .honoured(max: cap, offset: offset)
        }
        if action.maxStreamDuration != nil { ignored.append("max_stream_duration.max_stream_duration") }
        if let retry = action.retryPolicy ?? hostRetry {
            do throws(XDSProblem) { policy.retry = try Self.retry(retry, ignored: &ignored) } catch { throw error.inside("retry_policy") }
        }
        return policy
    }

    /// Envoy's retry conditions, by what Ferry retries on. HTTP/2 resets, refused streams and
    /// connect failures reach Ferry's retry policy as UNAVAILABLE, as 502, 503 and 504 do.
    private static func retry(_ policy: XDSRouteConfigurationMessage.RetryPolicy, ignored: inout [String]) throws(XDSProblem) -> RetryPolicy? {
        var on = Set<GRPCStatusCode>()
        for condition in policy.retryOn.split(separator: ",").map({ $0.trimmingSpaces }) where !condition.isEmpty {
            switch condition {
            case "5xx", "gateway-error", "reset", "connect-failure", "refused-stream", "reset-before-request":
                on.insert(.unavailable)
            case "cancelled", "deadline-exceeded", "internal", "resource-exhausted", "unavailable":
                on.insert(GRPCStatusCode(name: String(condition.uppercased().map { $0 == "-" ? "_" : $0 }))!)
            default:
                ignored.append("retry_on \"\(condition.prefix(50))\"")
            }
        }
        guard !on.isEmpty else { return nil }
        var retry = RetryPolicy()
        retry.on = on
        let retries = Int(policy.numRetries ?? 1)
        if retries > 4 { ignored.append("num_retries \(retries) (Ferry makes at most 4)") }
        retry.maxAttempts = min(retries, 4) + 1
        retry.perTryTimeout = try policy.perTryTimeout.flatMap { d throws(XDSProblem) in try zeroIsNone(d, "per_try_timeout") }
        if let base = policy.backOffBase {
            guard let value = try zeroIsNone(base, "retry_back_off", "base_interval") else {
                throw XDSProblem("must be more than 0").inside("retry_back_off", "base_interval")
            }
            retry.backoffBase = value
            retry.backoffMax = value * 10
        }
        if let max = policy.backOffMax {
            guard let value = try zeroIsNone(max, "retry_back_off", "max_interval"), value >= retry.backoffBase else {
                throw XDSProblem("must be at least base_interval").inside("retry_back_off", "max_interval")
            }
            retry.backoffMax = value
        }
        return retry
    }

    private static func nonNegative(_ duration: XDSDuration, _ path: String...) throws(XDSProblem) -> Duration {
        switch duration.nonNegative() {
        case .success(let value): return value
        case .failure(let problem): throw problem.inside(path)
        }
    }

    /// A duration where 0 means "none" (Envoy's convention for timeouts).
    private static func zeroIsNone(_ duration: XDSDuration, _ path: String...) throws(XDSProblem) -> Duration? {
        switch duration.nonNegative() {
        case .success(let value): return value == .zero ? nil : value
        case .failure(let problem): throw problem.inside(path)
        }
    }
}

private extension Substring {
    var trimmingSpaces: Substring {
        var text = self
        while text.first == " " { text = text.dropFirst() }
        while text.last == " " { text = text.dropLast() }
        return text
    }
}
