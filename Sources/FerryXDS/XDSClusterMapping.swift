import FerryConfig

/// A `Cluster` taken into Ferry's terms: a service (pool, balancer, failure accrual, outlier
/// detection, load shedding, retry budget) and where its endpoints come from.
///
/// What would change where calls go or how they are protected, and Ferry cannot do, is a
/// problem (the response is NACKed): ORIGINAL_DST and custom cluster types, EDS from anything
/// but ADS, hash-based, random or cluster-provided balancing, HTTP/1.1 or HTTP/3 upstreams, and
/// TLS beyond what `XDSTLS` maps (certificates as files). What only tunes Envoy's
/// own machinery is ignored and named in `ignored`, for one log line.
public struct XDSCluster: Sendable, Equatable {
    public enum Endpoints: Sendable, Equatable {
        /// From EDS: the ClusterLoadAssignment of this name (`eds_cluster_config.service_name`,
        /// else the cluster's name).
        case eds(String)
        /// In `service.discovery` already: the cluster's own `load_assignment` (STATIC), or the
        /// name it resolves by DNS (STRICT_DNS, LOGICAL_DNS).
        case inCluster
    }

    /// For `.eds`, `service.discovery` is `.static([])` until the assignment arrives: the
    /// client puts its endpoints there, as a hot reload would.
    public var service: ServiceConfig
    public var endpoints: Endpoints
    public var ignored: [String] = []

    public static func decode(_ bytes: ArraySlice<UInt8>, limits: XDSEndpointAssignment.Limits = .init()) -> Result<XDSCluster, XDSProblem> {
        do throws(XDSProblem) {
            return .success(try map(XDSClusterMessage(decoding: bytes, maxEndpoints: limits.maxEndpoints)))
        } catch {
            return .failure(error)
        }
    }

    static func map(_ cluster: XDSClusterMessage) throws(XDSProblem) -> XDSCluster {
        guard !cluster.name.isEmpty else { throw XDSProblem("is empty").inside("name") }
        var ignored: [String] = []
        let (discovery, endpoints) = try Self.endpoints(cluster)
        var service = ServiceConfig(name: cluster.name, discovery: discovery)
        if let timeout = cluster.connectTimeout {
            let value = try Self.positive(timeout, "connect_timeout")
            service.pool.connectTimeout = value
        }
        service.balancer.kind = try Self.balancer(cluster, ignored: &ignored)
        try Self.http2(cluster, into: &service.pool.http2)
        if let outlier = cluster.outlierDetection {
            try Self.outlierDetection(outlier, into: &service.failureAccrual)
        }
        for (index, threshold) in cluster.thresholds.enumerated() where threshold.priority == 0 {
            if let max = threshold.maxRequests { service.maxConcurrentCalls = Int(max) }
            if let percent = threshold.retryBudgetPercent {
                guard percent.isFinite, (0...100).contains(percent) else {
                    throw XDSProblem("must be from 0 to 100, is \(percent)")
                        .inside("circuit_breakers", "thresholds[\(index)]", "retry_budget", "budget_percent")
                }
                service.retryBudget.retryPercent = percent / 100
            }
        }
        if cluster.thresholds.contains(where: { $0.priority != 0 }) { ignored.append("circuit_breakers for priority HIGH") }
        if let socket = cluster.transportSocket {
            service.tls = try XDSTLS.upstream(socket, cluster: cluster.name, ignored: &ignored)
        }
        return XDSCluster(service: service, endpoints: endpoints, ignored: ignored)
    }

    private static func endpoints(_ cluster: XDSClusterMessage) throws(XDSProblem) -> (DiscoveryConfig, Endpoints) {
        switch cluster.discoveryType {
        case nil:
            throw XDSProblem("is a custom cluster type, which Ferry does not support").inside("cluster_type")
        case 0?:  // STATIC
            guard var assignment = cluster.loadAssignment else {
                throw XDSProblem("is missing: a STATIC cluster lists its endpoints there").inside("load_assignment")
            }
            if assignment.clusterName.isEmpty { assignment.clusterName = cluster.name }
            do throws(XDSProblem) {
                return (.static(try XDSEndpointAssignment.map(assignment).endpoints), .inCluster)
            } catch {
                throw error.inside("load_assignment")
            }
        case 1?, 2?:  // STRICT_DNS, LOGICAL_DNS: Ferry resolves one name, again as its TTL says
            let hosts = cluster.loadAssignment?.localities.flatMap(\.endpoints) ?? []
            guard hosts.count == 1 else {
                throw XDSProblem("has \(hosts.count) endpoints: Ferry resolves one name per DNS cluster")
                    .inside("load_assignment")
            }
            let address: HostPort
            do throws(XDSProblem) { address = try XDSEndpointAssignment.address(hosts[0].address) } catch {
                throw error.inside("load_assignment", "endpoints[0]", "lb_endpoints[0]", "endpoint")
            }
            var dns = DNSDiscoveryConfig(name: address.host)
            dns.port = address.port
            return (.dns(dns), .inCluster)
        case 3?:  // EDS
            switch cluster.edsConfig {
            case .ads?, .sameServer?: break
            case .other(let kind)?:
                throw XDSProblem("is \(kind): Ferry takes endpoints over ADS only").inside("eds_cluster_config", "eds_config")
            case .unset?, nil:
                throw XDSProblem("is missing: say `ads: {}`").inside("eds_cluster_config", "eds_config")
            }
            let name = cluster.edsServiceName.isEmpty ? cluster.name : cluster.edsServiceName
            return (.static([]), .eds(name))
        case let other?:
            let name = other == 4 ? "ORIGINAL_DST" : "\(other)"
            throw XDSProblem("\(name) is not supported (STATIC, STRICT_DNS, LOGICAL_DNS and EDS are)").inside("type")
        }
    }

    private static func balancer(_ cluster: XDSClusterMessage, ignored: inout [String]) throws(XDSProblem) -> BalancerKind {
        if cluster.loadBalancingPolicySet { ignored.append("load_balancing_policy (lb_policy is used)") }
        switch cluster.lbPolicy {
        case 0:
            // ROUND_ROBIN is proto3's default, so on the wire it is also "not set": Ferry's own
            // P2C over PeakEWMA, which adapts to latency as round-robin cannot.
            return .p2cPeakEWMA
        case 1:
            if let count = cluster.leastRequestChoiceCount, count != 2 {
                ignored.append("least_request_lb_config.choice_count \(count) (Ferry draws 2)")
            }
            return .p2cLeastRequest
        case let policy:
            let name = [2: "RING_HASH", 3: "RANDOM", 5: "MAGLEV", 6: "CLUSTER_PROVIDED", 7: "LOAD_BALANCING_POLICY_CONFIG"][policy] ?? "\(policy)"
            throw XDSProblem("\(name) is not supported (ROUND_ROBIN, which Ferry reads as its P2C PeakEWMA, and LEAST_REQUEST are)")
                .inside("lb_policy")
        }
    }

    private static func http2(_ cluster: XDSClusterMessage, into http2: inout HTTP2Config) throws(XDSProblem) {
        var options = cluster.http2
        var path = ["http2_protocol_options"]
        let upstreamOptions = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
        for option in cluster.protocolOptions where option.name == upstreamOptions {
            guard option.config.typeName == upstreamOptions else {
                throw XDSProblem("is a \(option.config.typeName.prefix(200)), not an \(upstreamOptions)")
                    .inside("typed_extension_protocol_options[\(upstreamOptions)]")
            }
            path = ["typed_extension_protocol_options[\(upstreamOptions)]", "explicit_http_config", "http2_protocol_options"]
            options = try Self.explicitHTTP2(option.config.value, path: path) ?? options
        }
        try options?.apply(to: &http2, path: path)
    }

    /// `HttpProtocolOptions`: HTTP/2 options if it asks for HTTP/2 explicitly; a problem if it
    /// asks for another protocol; nil if it leaves the protocol to the downstream's or to ALPN
    /// (Ferry always speaks HTTP/2 to upstreams).
    private static func explicitHTTP2(_ bytes: ArraySlice<UInt8>, path: [String]) throws(XDSProblem) -> XDSClusterMessage.HTTP2Options? {
        var result: XDSClusterMessage.HTTP2Options?
        do throws(XDSProblem) {
            try ProtoReader.fields(of: bytes) { number, value throws(XDSProblem) in
                guard number == 3 else { return }
                try value.decode("explicit_http_config") { bytes throws(XDSProblem) in
                    try ProtoReader.fields(of: bytes) { number, value throws(XDSProblem) in
                        switch number {
                        case 1: throw XDSProblem("asks for HTTP/1.1: Ferry speaks HTTP/2 to upstreams").inside("http_protocol_options")
                        case 2: result = try value.decode("http2_protocol_options") { bytes throws(XDSProblem) in try XDSClusterMessage.http2(bytes) }
                        case 3: throw XDSProblem("asks for HTTP/3: Ferry speaks HTTP/2 to upstreams").inside("http3_protocol_options")
                        default: break
                        }
                    }
                }
            }
        } catch {
            throw error.inside(path[0])
        }
        return result
    }

    private static func outlierDetection(_ outlier: XDSClusterMessage.OutlierDetection, into accrual: inout FailureAccrualConfig) throws(XDSProblem) {
        // Envoy's defaults where a field is unset: 5 failures, 30 s base ejection, 300 s at most,
        // 10% ejected at most, success rate every 10 s with 5 hosts of 100 requests at 1.9 sigma.
        let enforcing = outlier.enforcingConsecutive5xx ?? 100
        accrual.consecutiveFailures = enforcing == 0 ? 0 : Int(outlier.consecutive5xx ?? 5)
        accrual.minBackoff = try outlier.baseEjectionTime.map { d throws(XDSProblem) in try positive(d, "outlier_detection", "base_ejection_time") } ?? .seconds(30)
        accrual.maxBackoff = try outlier.maxEjectionTime.map { d throws(XDSProblem) in try positive(d, "outlier_detection", "max_ejection_time") } ?? .seconds(300)
        if accrual.maxBackoff < accrual.minBackoff { accrual.maxBackoff = accrual.minBackoff }
        let percent = outlier.maxEjectionPercent ?? 10
        guard percent <= 100 else { throw XDSProblem("must be at most 100, is \(percent)").inside("outlier_detection", "max_ejection_percent") }
        accrual.maxEjectedPercent = Int(percent)
        if (outlier.enforcingSuccessRate ?? 100) > 0 {
            var rate = SuccessRateConfig()
            rate.interval = try outlier.interval.map { d throws(XDSProblem) in try positive(d, "outlier_detection", "interval") } ?? .seconds(10)
            rate.minEndpoints = Int(outlier.successRateMinimumHosts ?? 5)
            rate.minRequests = Int(outlier.successRateRequestVolume ?? 100)
            rate.stdevFactor = Double(outlier.successRateStdevFactor ?? 1900) / 1000
            rate.minDistancePercent = 0
            accrual.successRate = rate
        } else {
            accrual.successRate = nil
        }
    }

    private static func positive(_ duration: XDSDuration, _ path: String...) throws(XDSProblem) -> Duration {
        switch duration.nonNegative() {
        case .failure(let problem): throw problem.inside(path)
        case .success(let value):
            guard value > .zero else { throw XDSProblem("must be more than 0").inside(path) }
            return value
        }
    }
}
