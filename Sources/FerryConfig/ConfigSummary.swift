import FerryGRPC

/// The resolved configuration as `ferry check` prints it: each listener's routes in the order
/// they are tried, and each service's endpoints and per-method policies after inheritance.
public enum ConfigSummary {
    public static func lines(_ config: FerryConfig) -> [String] {
        var out: [String] = []
        for listener in config.listeners {
            let deadline = listener.maxDeadline.map { ", max_deadline \(format($0))" } ?? ""
            let origin = config.fromXDS.listeners[listener.name].map { " (from xDS: \($0))" } ?? ""
            let order = listener.routeOrder == .asWritten ? "the first that matches, in order" : "most specific first"
            out.append("listener \(listener.name) on \(listener.address)\(origin)\(deadline); routes, \(order):")
            let indices = listener.routeOrder == .asWritten ? Array(listener.routes.indices) : RouteTable.precedence(listener.routes)
            for index in indices {
                let route = listener.routes[index]
                let policy = (route.authorization.map { "; authorization: \(authorization($0))" } ?? "")
                    + (route.fault.map { "; fault: \($0.description)" } ?? "")
                    + (route.policy.map { "; \($0.origin): " + policySettings($0).map { $0.trimmingPrefix(while: { $0 == " " }) }.joined(separator: ", ") } ?? "")
                out.append("  \(route.match.description) -> \(route.target)\(policy)")
            }
            out.append("  limits: max_connections \(listener.maxConnections), max_concurrent_streams \(listener.http2.maxConcurrentStreams), "
                       + "handshake_timeout \(format(listener.handshakeTimeout)), idle_timeout \(listener.idleTimeout.map(format) ?? "off")")
            if let tls = listener.tls {
                let clients = tls.clientCA.map { "client certificates \(tls.clientCertificates.rawValue), verified against \($0); "
                    + "their identity goes upstream in ferry-client-id" } ?? "no client certificates asked for"
                out.append("  TLS \(tls.minVersion.rawValue)+, ALPN h2, certificate \(tls.identity.certificate); \(clients)")
            } else {
                out.append("  plaintext HTTP/2")
            }
            if let policy = listener.authorization { out.append("  authorization: \(authorization(policy))") }
        }
        for service in config.services {
            let origin = config.fromXDS.services[service.name].map { " (from xDS: \($0))" } ?? ""
            out.append("service \(service.name)\(origin): \(discovery(service.discovery))")
            if let tls = service.tls {
                let trust = tls.ca.map { "verified against \($0)" } ?? "verified against the system's roots"
                let naming = tls.identities.isEmpty
                    ? "name \(tls.serverName ?? "of each endpoint") checked"
                    : "identities " + tls.identities.map(\.description).joined(separator: ", ")
                let presents = tls.identity.map { "; presents \($0.certificate)" } ?? ""
                out.append("  TLS \(tls.minVersion.rawValue)+ to endpoints, \(trust), \(naming)\(presents)")
            }
            if let check = service.healthCheck {
                let name = check.serviceName.isEmpty ? "the whole server" : "\"\(check.serviceName)\""
                if check.watch {
                    out.append("  health checks: a grpc.health.v1.Health/Watch stream for \(name) (Check every \(format(check.interval)) if the server has no Watch), "
                               + "first answer within \(format(check.timeout)); out at NOT_SERVING or after \(check.unhealthyThreshold) broken streams, back at SERVING")
                } else {
                    out.append("  health checks: grpc.health.v1.Health/Check for \(name) every \(format(check.interval)), timeout \(format(check.timeout)); "
                               + "out after \(check.unhealthyThreshold) failed, back after \(check.healthyThreshold) passed")
                }
            }
            out.append("  outlier detection: \(outlierDetection(service.failureAccrual))")
            if let slow = service.slowStart {
                out.append("  slow start: an endpoint that joins or comes back ramps from \(slow.minWeightPercent)% of its weight over \(format(slow.window))")
            }
            out.append("  pool: connect_timeout \(format(service.pool.connectTimeout)), idle_timeout \(format(service.pool.idleTimeout)), "
                       + "max_connections_per_endpoint \(service.pool.maxConnectionsPerEndpoint), max_pending_calls \(service.pool.maxPendingCalls), "
                       + "keepalive \(format(service.pool.keepaliveInterval)) (timeout \(format(service.pool.keepaliveTimeout)))")
            out.append("  balancer: \(service.balancer.kind.rawValue)"
                       + (service.balancer.kind == .p2cPeakEWMA
                           ? " (initial_rtt \(format(service.balancer.initialRTT)), decay \(format(service.balancer.decay)))" : ""))
            let budget = service.retryBudget
            out.append("  retry_budget: ttl \(format(budget.ttl)), min_retries_per_second \(budget.minRetriesPerSecond), "
                       + "retry_percent \(FaultConfig.format(budget.retryPercent * 100)); "
                       + "max_concurrent_calls \(service.maxConcurrentCalls.map(String.init) ?? "none")")
            out.append("  every method no entry matches (\(service.policy.origin)):")
            out += policySettings(service.policy)
            for method in service.methods {
                out.append("  \(method.match) (from \(method.policy.origin)):")
                out += policySettings(method.policy)
            }
        }
        if let admin = config.admin { out.append("admin on \(admin.address)") }
        if let xds = config.xds {
            out.append("xds: ADS from \(xds.server) as node \(xds.node.id) (cluster \(xds.node.cluster.isEmpty ? "none" : xds.node.cluster)); "
                       + "its listeners and services join the file's, a name or address the file uses stays the file's")
        }
        return out
    }

    private static func outlierDetection(_ accrual: FailureAccrualConfig) -> String {
        var ways: [String] = []
        if accrual.consecutiveFailures > 0 { ways.append("after \(accrual.consecutiveFailures) consecutive failures") }
        if let rate = accrual.successRate {
            ways.append("by success rate every \(format(rate.interval)) (\(rate.stdevFactor) standard deviations and \(FaultConfig.format(rate.minDistancePercent)) points below the mean, "
                        + "endpoints with \(rate.minRequests)+ calls, at least \(rate.minEndpoints) of them)")
        }
        guard !ways.isEmpty else { return "off" }
        return "eject " + ways.joined(separator: " or ")
            + "; for \(format(accrual.minBackoff)) doubling to \(format(accrual.maxBackoff)); at most \(accrual.maxEjectedPercent)% of endpoints out"
    }

    private static func authorization(_ policy: AuthorizationPolicy) -> String {
        var who = policy.allow.map(\.description)
        if policy.allowUnauthenticated { who.append("unauthenticated callers") }
        return "allow " + who.joined(separator: ", ") + " (\(policy.name))"
    }

    private static func discovery(_ d: DiscoveryConfig) -> String {
        switch d {
        case .static(let endpoints) where endpoints.count > 20:
            return endpoints.prefix(20).map { "\($0.address)" }.joined(separator: ", ") + " and \(endpoints.count - 20) more"
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

    /// Every setting of a policy after inheritance, one a line, with where it was written.
    public static func policySettings(_ p: CallPolicy) -> [String] {
        let retry = p.retry
        let retryText = !retry.enabled ? "off" :
            "on \(statuses(retry.on)), \(retry.maxAttempts) attempts, per_try_timeout \(retry.perTryTimeout.map(format) ?? "none"), "
            + "backoff \(format(retry.backoffBase))..\(format(retry.backoffMax)), buffer \(formatSize(retry.bufferSize)), "
            + "hold_response \(retry.holdResponse == 0 ? "off" : formatSize(retry.holdResponse))"
        let hedge = p.hedge.map { h -> String in
            let delay: String
            switch h.delay {
            case .p95: delay = "p95"
            case .fixed(let d): delay = format(d)
            }
            return "after \(delay), \(h.maxAttempts) attempts"
        } ?? "off"
        let callerCap = p.callerTimeoutCap.map { cap in [("caller_timeout", "replaces timeout, capped at \(cap.map(format) ?? "none")")] } ?? []
        let settings: [(String, String)] = [
            ("timeout", p.timeout.map(format) ?? "none"),
        ] + callerCap + [
            ("deadline_offset", format(p.deadlineOffset)),
            ("max_message_size", formatSize(p.maxMessageSize)),
            ("stream_idle_timeout", p.streamIdleTimeout.map(format) ?? "off"),
            ("deadline_header", p.deadlineHeader ? "on" : "off"),
            ("failure_statuses", statuses(p.failureStatuses)),
            ("retry", retryText),
            ("hedge", hedge),
            ("rate_limit", p.rateLimit?.description ?? "none"),
            ("fault", p.fault?.description ?? "none"),
        ]
        return settings.map { key, value in "    \(key) \(value)  (\(p.sources[key] ?? "default"))" }
    }

    private static func statuses(_ set: Set<GRPCStatusCode>) -> String {
        "[" + set.sorted { $0.rawValue < $1.rawValue }.map(\.name).joined(separator: ", ") + "]"
    }

    /// Bytes in the largest unit that divides them: `16MiB`, `64KiB`, `1000`.
    public static func formatSize(_ bytes: Int) -> String {
        if bytes > 0, bytes % (1 << 30) == 0 { return "\(bytes >> 30)GiB" }
        if bytes > 0, bytes % (1 << 20) == 0 { return "\(bytes >> 20)MiB" }
        if bytes > 0, bytes % (1 << 10) == 0 { return "\(bytes >> 10)KiB" }
        return "\(bytes)"
    }

    public static func format(_ d: Duration) -> String {
        let ns = d.totalNanoseconds
        if ns == 0 { return "0s" }
        if ns % 3_600_000_000_000 == 0 { return "\(ns / 3_600_000_000_000)h" }
        if ns % 60_000_000_000 == 0 && ns >= 120_000_000_000 { return "\(ns / 60_000_000_000)m" }
        if ns % 1_000_000_000 == 0 { return "\(ns / 1_000_000_000)s" }
        if ns % 1_000_000 == 0 { return "\(ns / 1_000_000)ms" }
        if ns % 1_000 == 0 { return "\(ns / 1_000)us" }
        return "\(ns)ns"
    }
}

