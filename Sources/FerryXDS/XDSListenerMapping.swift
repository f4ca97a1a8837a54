import FerryConfig

/// A `Listener` taken into Ferry's terms: an address to serve HTTP/2 on, and the route table
/// its HTTP connection manager names (by RDS) or carries (inline).
///
/// Ferry serves one HTTP connection manager per listener, whose last HTTP filter is the
/// router: a listener that needs filter chain matching, listener filters, other network or
/// HTTP filters (unless optional or disabled), HTTP/1.1 or HTTP/3 only, scoped routes, or TLS
/// beyond what `XDSTLS` maps is a problem, and the response is NACKed.
public struct XDSListener: Sendable, Equatable {
    public enum Routes: Sendable, Equatable {
        /// The RouteConfiguration of this name, by RDS over ADS.
        case rds(String)
        case inline(XDSRouteTable)
    }

    public var name: String
    public var address: HostPort
    public var routes: Routes
    /// Downstream HTTP/2 settings (Ferry's defaults where the manager sets none).
    public var http2 = HTTP2Config()
    /// TLS from the filter chain's DownstreamTlsContext (nil: plaintext), and who may call
    /// when it matches client certificates by SAN.
    public var tls: ListenerTLSConfig?
    public var authorization: AuthorizationPolicy?
    public var ignored: [String] = []

    static let managerName = "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
    static let routerName = "envoy.extensions.filters.http.router.v3.Router"

    public static func decode(_ bytes: ArraySlice<UInt8>) -> Result<XDSListener, XDSProblem> {
        do throws(XDSProblem) {
            return .success(try map(XDSListenerMessage(decoding: bytes)))
        } catch {
            return .failure(error)
        }
    }

    /// The route table names this listener needs from RDS.
    public var routeTableNames: [String] {
        if case .rds(let name) = routes { return [name] }
        return []
    }

    static func map(_ listener: XDSListenerMessage) throws(XDSProblem) -> XDSListener {
        guard !listener.name.isEmpty else { throw XDSProblem("is empty").inside("name") }
        if listener.apiListener { throw XDSProblem("is not supported: Ferry serves socket listeners").inside("api_listener") }
        if listener.listenerFilters > 0 { throw XDSProblem("are not supported").inside("listener_filters") }
        let address = try XDSEndpointAssignment.address(listener.address)
        let chains = listener.filterChains + (listener.defaultFilterChain.map { [$0] } ?? [])
        guard chains.count == 1 else {
            throw XDSProblem("has \(chains.count) filter chains: Ferry serves one per listener").inside("filter_chains")
        }
        let chainField = listener.filterChains.isEmpty ? "default_filter_chain" : "filter_chains[0]"
        do throws(XDSProblem) {
            var mapped = try Self.chain(chains[0])
            mapped.name = listener.name
            mapped.address = address
            if let socket = chains[0].transportSocket {
                (mapped.tls, mapped.authorization) = try XDSTLS.downstream(socket, listener: listener.name, ignored: &mapped.ignored)
            }
            return mapped
        } catch {
            throw error.inside(chainField)
        }
    }

    private static func chain(_ chain: XDSListenerMessage.FilterChain) throws(XDSProblem) -> XDSListener {
        if chain.hasMatch { throw XDSProblem("is not supported: Ferry serves one chain per listener").inside("filter_chain_match") }
        guard chain.filters.count == 1 else {
            throw XDSProblem("has \(chain.filters.count) filters: Ferry serves one HTTP connection manager").inside("filters")
        }
        let filter = chain.filters[0]
        guard let config = filter.config, config.typeName == managerName else {
            let kind = filter.config.map { String($0.typeName.prefix(200)) } ?? (filter.configDiscovery ? "config_discovery" : "no typed_config")
            throw XDSProblem("is \(kind), not an HttpConnectionManager").inside("filters[0]")
        }
        do throws(XDSProblem) {
            return try manager(XDSHTTPConnectionManagerMessage(decoding: config.value))
        } catch {
            throw error.inside("filters[0]", "typed_config")
        }
    }

    private static func manager(_ manager: XDSHTTPConnectionManagerMessage) throws(XDSProblem) -> XDSListener {
        switch manager.codecType {
        case 0, 2: break  // AUTO, HTTP2
        case 1: throw XDSProblem("HTTP1 is not supported: Ferry serves HTTP/2").inside("codec_type")
        default: throw XDSProblem("\(manager.codecType) is not supported: Ferry serves HTTP/2").inside("codec_type")
        }
        var ignored: [String] = []
        for (index, http) in manager.httpFilters.enumerated() {
            let isRouter = http.filter.config.map { $0.typeName == routerName } ?? (http.filter.name == "envoy.filters.http.router")
            let isLast = index == manager.httpFilters.count - 1
            if isRouter && isLast { continue }
            if isRouter { throw XDSProblem("is the router but not the last filter").inside("http_filters[\(index)]") }
            if http.isOptional || http.disabled {
                ignored.append("http filter \"\(http.filter.name.prefix(100))\"")
                continue
            }
            throw XDSProblem("\"\(http.filter.name.prefix(100))\" is not supported (only the router is)").inside("http_filters[\(index)]")
        }
        let routes: Routes
        switch manager.routes {
        case .none: throw XDSProblem("is missing: give rds or route_config").inside("route_specifier")
        case .scoped: throw XDSProblem("is not supported").inside("scoped_routes")
        case .rds(let name, let source):
            guard !name.isEmpty else { throw XDSProblem("is empty").inside("rds", "route_config_name") }
            switch source {
            case .ads, .sameServer: break
            case .other(let kind): throw XDSProblem("is \(kind): Ferry takes routes over ADS only").inside("rds", "config_source")
            case .unset: throw XDSProblem("is missing: say `ads: {}`").inside("rds", "config_source")
            }
            routes = .rds(name)
        case .inline(let bytes):
            do throws(XDSProblem) {
                let table = try XDSRouteTable.map(XDSRouteConfigurationMessage(decoding: bytes))
                ignored += table.ignored
                routes = .inline(table)
            } catch {
                throw error.inside("route_config")
            }
        }
        var http2 = HTTP2Config()
        try manager.http2?.apply(to: &http2, path: ["http2_protocol_options"])
        if manager.streamIdleTimeout != nil { ignored.append("stream_idle_timeout (Ferry's is per service and method)") }
        return XDSListener(name: "", address: HostPort(host: "", port: 0), routes: routes, http2: http2, ignored: ignored)
    }
}
