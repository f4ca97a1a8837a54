import FerryConfig

/// A `ClusterLoadAssignment` taken into Ferry's terms: the endpoints a service sends calls to.
public struct XDSEndpointAssignment: Sendable, Equatable {
    public var clusterName: String
    public var endpoints: [EndpointConfig]
    /// Endpoints left out because their `health_status` is neither HEALTHY nor UNKNOWN.
    public var unhealthy = 0
    /// Endpoints left out because a better priority had a usable endpoint.
    public var standby = 0

    /// Limits against a hostile or broken control plane.
    public struct Limits: Sendable, Equatable {
        public var maxEndpoints = 100_000
        public init() {}
    }

    /// Decodes and checks one resource. Localities are flattened: an endpoint's weight is its
    /// own `load_balancing_weight` (1 when unset), whatever its locality's weight (which Envoy,
    /// too, ignores unless locality-weighted balancing is asked for). Of the priorities, the
    /// best (lowest) one with a usable endpoint is used, the others are standby.
    public static func decode(_ bytes: ArraySlice<UInt8>, limits: Limits = Limits()) -> Result<XDSEndpointAssignment, XDSProblem> {
        do throws(XDSProblem) {
            let assignment = try XDSClusterLoadAssignment(decoding: bytes, maxEndpoints: limits.maxEndpoints)
            return .success(try map(assignment))
        } catch {
            return .failure(error)
        }
    }

    static func map(_ assignment: XDSClusterLoadAssignment) throws(XDSProblem) -> XDSEndpointAssignment {
        guard !assignment.clusterName.isEmpty else { throw XDSProblem("is empty").inside("cluster_name") }
        var byPriority: [UInt32: [EndpointConfig]] = [:]
        var unhealthy = 0
        for (localityIndex, locality) in assignment.localities.enumerated() {
            for (index, endpoint) in locality.endpoints.enumerated() {
                let usable: EndpointConfig
                do throws(XDSProblem) { usable = try Self.endpoint(endpoint) } catch {
                    throw error.inside("endpoints[\(localityIndex)]", "lb_endpoints[\(index)]")
                }
                // HEALTHY (1) and UNKNOWN (0) get traffic; UNHEALTHY, DRAINING, TIMEOUT and
                // DEGRADED do not (DEGRADED would be a last resort in Envoy; Ferry has none).
                guard endpoint.healthStatus <= 1 else {
                    unhealthy += 1
                    continue
                }
                byPriority[locality.priority, default: []].append(usable)
            }
        }
        let best = byPriority.keys.min()
        let endpoints = best.map { byPriority[$0]! } ?? []
        let standby = byPriority.values.reduce(0) { $0 + $1.count } - endpoints.count
        return XDSEndpointAssignment(clusterName: assignment.clusterName, endpoints: endpoints, unhealthy: unhealthy, standby: standby)
    }

    private static func endpoint(_ endpoint: XDSClusterLoadAssignment.LbEndpoint) throws(XDSProblem) -> EndpointConfig {
        if endpoint.endpointName != nil {
            throw XDSProblem("names an endpoint of named_endpoints, which Ferry does not support").inside("endpoint_name")
        }
        if let weight = endpoint.weight, weight == 0 {
            throw XDSProblem("must be at least 1").inside("load_balancing_weight")
        }
        let address: HostPort
        do throws(XDSProblem) { address = try Self.address(endpoint.address) } catch { throw error.inside("endpoint") }
        return EndpointConfig(address: address, weight: Int(endpoint.weight ?? 1))
    }

    /// A socket address Ferry can connect to or listen on; a problem's path starts at `address`.
    static func address(_ address: XDSAddress?) throws(XDSProblem) -> HostPort {
        switch address {
        case nil, .empty?:
            throw XDSProblem("is missing").inside("address")
        case .unsupported(let kind)?:
            throw XDSProblem("is not supported: Ferry connects to socket addresses").inside("address", kind)
        case .socket(let host, let port, let named, let udp, let resolver)?:
            func problem(_ reason: String, _ field: String) -> XDSProblem {
                XDSProblem(reason).inside("address", "socket_address", field)
            }
            if udp { throw problem("is UDP; Ferry speaks HTTP/2 over TCP", "protocol") }
            if named != nil { throw problem("is not supported; give port_value", "named_port") }
            if !resolver.isEmpty { throw problem("is not supported (\"\(resolver.prefix(100))\")", "resolver_name") }
            if host.isEmpty { throw problem("is empty", "address") }
            if host.utf8.count > 253 || host.contains(where: { $0 == " " || $0 == "/" || $0 == "@" }) {
                throw problem("is not a host (\"\(host.prefix(100))\")", "address")
            }
            guard (1...65535).contains(port) else { throw problem("must be from 1 to 65535, is \(port)", "port_value") }
            return HostPort(host: host, port: Int(port))
        }
    }
}
