import FerryConfig

/// Ferry's configuration from its file and what xDS sent: the file's listeners and services,
/// then xDS's (a name or address the file uses stays the file's). A change from either side
/// is applied as a hot reload of the whole result.
public enum XDSConfigBuilder {
    public static func config(file: FerryConfig, resources: XDSResourceCache) -> FerryConfig {
        var config = file
        var provenance = XDSProvenance()
        let cdsVersion = resources.versions[.cluster] ?? ""
        let edsVersion = resources.versions[.clusterLoadAssignment] ?? ""
        let fileServices = Set(file.services.map(\.name))
        for name in resources.clusters.keys.sorted() where !fileServices.contains(name) {
            let cluster = resources.clusters[name]!
            var service = cluster.service
            // What the control plane sends is what there is: a cluster it leaves empty does
            // not hold readiness back (the first configuration does, in the runner).
            service.allowNoEndpoints = true
            if case .eds(let assignment) = cluster.endpoints {
                service.discovery = .static(resources.assignments[assignment]?.endpoints ?? [])
                provenance.services[name] = "CDS \(cdsVersion), EDS \(edsVersion)"
            } else {
                provenance.services[name] = "CDS \(cdsVersion)"
            }
            config.services.append(service)
        }

        let fileListeners = Set(file.listeners.map(\.name)), fileAddresses = Set(file.listeners.map(\.address))
        let ldsVersion = resources.versions[.listener] ?? ""
        var known = Set(config.services.map(\.name))
        for name in resources.listeners.keys.sorted() where !fileListeners.contains(name) {
            let listener = resources.listeners[name]!
            guard !fileAddresses.contains(listener.address),
                  !config.listeners.contains(where: { $0.address == listener.address }) else { continue }
            let table: XDSRouteTable
            var routesVersion = ""
            switch listener.routes {
            case .inline(let inline): table = inline
            case .rds(let tableName):
                // Warming, as in Envoy: a listener starts once its route table is here.
                guard let named = resources.routeTables[tableName] else { continue }
                table = named
                routesVersion = ", RDS \(resources.versions[.routeConfiguration] ?? "")"
            }
            var mapped = ListenerConfig(name: name, address: listener.address, routes: routes(of: table), http2: listener.http2)
            mapped.routeOrder = .asWritten
            mapped.tls = listener.tls
            mapped.authorization = listener.authorization
            // A route to a cluster that is not (or no longer) in CDS: its calls find no
            // endpoint and fail UNAVAILABLE, as Envoy's "cluster not found".
            for missing in mapped.serviceNames where !known.contains(missing) {
                var placeholder = ServiceConfig(name: missing, endpoints: [])
                placeholder.allowNoEndpoints = true
                config.services.append(placeholder)
                provenance.services[missing] = "named by a route, not in CDS \(cdsVersion)"
                known.insert(missing)
            }
            config.listeners.append(mapped)
            provenance.listeners[name] = "LDS \(ldsVersion)\(routesVersion)"
        }
        config.fromXDS = provenance
        return config
    }

    /// A route table as one list tried in order: virtual hosts by Envoy's domain precedence
    /// (exact domains, then `*.suffix` longest first, then `*`), each host's routes in order for
    /// each of its domains, then a route with no backends so a request of that domain that no
    /// route matched goes no further.
    public static func routes(of table: XDSRouteTable) -> [RouteConfig] {
        var domains: [(rank: (Int, Int), host: Int, domain: XDSVirtualHost.Domain)] = []
        for (index, host) in table.virtualHosts.enumerated() {
            for domain in host.domains {
                switch domain {
                case .any: domains.append(((2, 0), index, domain))
                case .pattern(let pattern): domains.append(((pattern.isWildcard ? 1 : 0, -pattern.host.utf8.count), index, domain))
                }
            }
        }
        domains.sort { ($0.rank.0, $0.rank.1, $0.host) < ($1.rank.0, $1.rank.1, $1.host) }
        var routes: [RouteConfig] = []
        for (_, index, domain) in domains {
            let host = table.virtualHosts[index]
            let authority: AuthorityPattern?
            if case .pattern(let pattern) = domain { authority = pattern } else { authority = nil }
            for (r, route) in host.routes.enumerated() {
                var mapped = route.route
                mapped.match.authority = authority
                let origin = "xds route \(table.name)/\(host.name)/\(route.name.isEmpty ? "routes[\(r)]" : route.name)"
                mapped.policy = route.policy.callPolicy(origin: origin)
                routes.append(mapped)
            }
            if authority != nil { routes.append(RouteConfig(match: RouteMatch(authority: authority), split: [])) }
        }
        return routes
    }
}

extension XDSRoutePolicy {
    /// The route's policy as Ferry applies it to each call, with Envoy's rule for the caller's
    /// `grpc-timeout`: with `grpc_timeout_header_max` it replaces the route's timeout up to the
    /// cap; without, the route's timeout applies, and a shorter caller's deadline still ends
    /// the call sooner (the caller is gone by then; Envoy would wait for the route's).
    public func callPolicy(origin: String) -> CallPolicy {
        var policy = CallPolicy(origin: origin)
        policy.timeout = timeout
        if case .honoured(let cap, let offset) = callerTimeout {
            policy.callerTimeoutCap = .some(cap)
            policy.deadlineOffset = offset
        }
        policy.streamIdleTimeout = idleTimeout
        if let retry { policy.retry = retry } else { policy.retry.maxAttempts = 1 }   // xDS retries only when told to
        return policy
    }
}
