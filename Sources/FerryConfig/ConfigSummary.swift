/// The resolved configuration as `ferry check` prints it: each listener's routes in the order
/// they are tried, and each service's endpoints and per-method policies after inheritance.
public enum ConfigSummary {
    public static func lines(_ config: FerryConfig) -> [String] {
        var out: [String] = []
        for listener in config.listeners {
            let deadline = listener.maxDeadline.map { ", max_deadline \(format($0))" } ?? ""
            out.append("listener \(listener.name) on \(listener.address)\(deadline); routes, most specific first:")
            for index in RouteTable.precedence(listener.routes) {
                let route = listener.routes[index]
                out.append("  \(route.match.description) -> \(route.service)")
            }
            out.append("  limits: max_connections \(listener.maxConnections), max_concurrent_streams \(listener.http2.maxConcurrentStreams), "
                       + "handshake_timeout \(format(listener.handshakeTimeout)), idle_timeout \(listener.idleTimeout.map(format) ?? "off")")
        }
        for service in config.services {
            out.append("service \(service.name): \(discovery(service.discovery))")
            out.append("  \(policy(service.policy))")
            for method in service.methods {
                out.append("  \(method.match): \(policy(method.policy)) (from \(method.policy.origin))")
            }
        }
        if let admin = config.admin { out.append("admin on \(admin.address)") }
        return out
    }

    private static func discovery(_ d: DiscoveryConfig) -> String {
        switch d {
        case .static(let endpoints):
            return endpoints.map { $0.weight == 1 ? "\($0.address)" : "\($0.address) (weight \($0.weight))" }.joined(separator: ", ")
        case .file(let file):
            return "endpoints from file \(file.path), checked every \(format(file.interval))"
        case .dns(let dns):
            let port = dns.port.map { " port \($0)" } ?? ""
            let resolver = dns.resolver.map { "\($0)" } ?? "the system resolver"
            return "DNS \(dns.recordType.rawValue) \(dns.name)\(port) via \(resolver), TTL held to \(format(dns.minTTL))..\(format(dns.maxTTL))"
        }
    }

    private static func policy(_ p: CallPolicy) -> String {
        "timeout \(p.timeout.map(format) ?? "none"), deadline_offset \(format(p.deadlineOffset)), max_message_size \(p.maxMessageSize)"
    }

    public static func format(_ d: Duration) -> String {
        let ns = d.totalNanoseconds
        if ns == 0 { return "0s" }
        if ns % 1_000_000_000 == 0 { return "\(ns / 1_000_000_000)s" }
        if ns % 1_000_000 == 0 { return "\(ns / 1_000_000)ms" }
        if ns % 1_000 == 0 { return "\(ns / 1_000)us" }
        return "\(ns)ns"
    }
}
