/// `envoy.config.route.v3.RouteConfiguration` as decoded: the fields of
/// protos/xds/envoy/config/route/v3/route.proto. A oneof case Ferry does not support keeps
/// the name of its field, so the mapping can say what was refused.
struct XDSRouteConfigurationMessage: Sendable, Equatable {
    struct VirtualHost: Sendable, Equatable {
        var name = ""
        var domains: [String] = []
        var routes: [Route] = []
        var retryPolicy: RetryPolicy?
    }

    struct Route: Sendable, Equatable {
        var name = ""
        var match = Match()
        var action = Action.none
    }

    enum PathSpecifier: Sendable, Equatable {
        case none
        case prefix(String)
        case path(String)
        case separatedPrefix(String)
        case unsupported(String)
    }

    struct Match: Sendable, Equatable {
        var path = PathSpecifier.none
        var caseSensitive: Bool?
        var headers: [Header] = []
        var grpcOnly = false
        /// Fields set that Ferry cannot match on (runtime_fraction, query_parameters).
        var unsupported: [String] = []
    }

    enum StringMatch: Sendable, Equatable {
        case exact(String)
        case prefix(String)
        case suffix(String)
        case contains(String)
        case unsupported(String)
    }

    enum HeaderSpecifier: Sendable, Equatable {
        case none
        case string(StringMatch, ignoreCase: Bool)
        case present(Bool)
        case unsupported(String)
    }

    struct Header: Sendable, Equatable {
        var name = ""
        var specifier = HeaderSpecifier.none
        var invert = false
        var treatMissingAsEmpty = false
    }

    enum Action: Sendable, Equatable {
        case none
        case route(RouteAction)
        case unsupported(String)
    }

    enum ClusterSpecifier: Sendable, Equatable {
        case none
        case cluster(String)
        case weighted([WeightedCluster], total: UInt32?)
        case unsupported(String)
    }

    struct WeightedCluster: Sendable, Equatable {
        var name = ""
        var weight: UInt32?
        var clusterHeader = ""
    }

    struct RouteAction: Sendable, Equatable {
        var cluster = ClusterSpecifier.none
        var prefixRewrite = ""
        var regexRewrite = false
        var timeout: XDSDuration?
        var idleTimeout: XDSDuration?
        var retryPolicy: RetryPolicy?
        var hedgePolicy = false
        var maxGrpcTimeout: XDSDuration?
        var grpcTimeoutOffset: XDSDuration?
        var maxStreamDuration: XDSDuration?
        var grpcTimeoutHeaderMax: XDSDuration?
        var grpcTimeoutHeaderOffset: XDSDuration?
        var maxStreamDurationSet = false
    }

    struct RetryPolicy: Sendable, Equatable {
        var retryOn = ""
        var numRetries: UInt32?
        var perTryTimeout: XDSDuration?
        var backOffBase: XDSDuration?
        var backOffMax: XDSDuration?
    }

    var name = ""
    var virtualHosts: [VirtualHost] = []
    var vhds = false

    init(decoding bytes: ArraySlice<UInt8>) throws(XDSProblem) {
        try ProtoReader.fields(of: bytes) { number, value throws(XDSProblem) in
            switch number {
            case 1: name = try value.string("name")
            case 2:
                let field = "virtual_hosts[\(virtualHosts.count)]"
                virtualHosts.append(try value.decode(field) { bytes throws(XDSProblem) in try Self.virtualHost(bytes) })
            case 9: vhds = true
            default: break
            }
        }
    }

    private static func virtualHost(_ bytes: ArraySlice<UInt8>) throws(XDSProblem) -> VirtualHost {
        var host = VirtualHost()
        try ProtoReader.fields(of: bytes) { number, value throws(XDSProblem) in
            switch number {
            case 1: host.name = try value.string("name")
            case 2: host.domains.append(try value.string("domains[\(host.domains.count)]"))
            case 3:
                let field = "routes[\(host.routes.count)]"
                host.routes.append(try value.decode(field) { bytes throws(XDSProblem) in try Self.route(bytes) })
            case 16: host.retryPolicy = try value.decode("retry_policy") { bytes throws(XDSProblem) in try Self.retryPolicy(bytes) }
            default: break
            }
        }
        return host
    }

    private static func route(_ bytes: ArraySlice<UInt8>) throws(XDSProblem) -> Route {
        var route = Route()
        try ProtoReader.fields(of: bytes) { number, value throws(XDSProblem) in
            switch number {
            case 14: route.name = try value.string("name")
            case 1: route.match = try value.decode("match") { bytes throws(XDSProblem) in try Self.match(bytes) }
            case 2: route.action = .route(try value.decode("route") { bytes throws(XDSProblem) in try Self.routeAction(bytes) })
            case 3: route.action = .unsupported("redirect")
            case 7: route.action = .unsupported("direct_response")
            case 17: route.action = .unsupported("filter_action")
            case 18: route.action = .unsupported("non_forwarding_action")
            default: break
            }
        }
        return route
    }

    private static func match(_ bytes: ArraySlice<UInt8>) throws(XDSProblem) -> Match {
        var match = Match()
        try ProtoReader.fields(of: bytes) { number, value throws(XDSProblem) in
            switch number {
            case 1: match.path = .prefix(try value.string("prefix"))
            case 2: match.path = .path(try value.string("path"))
            case 14: match.path = .separatedPrefix(try value.string("path_separated_prefix"))
            case 10: match.path = .unsupported("safe_regex")
            case 12: match.path = .unsupported("connect_matcher")
            case 15: match.path = .unsupported("path_match_policy")
            case 4: match.caseSensitive = try value.decode("case_sensitive") { bytes throws(XDSProblem) in try XDSWrapper.bool(bytes) }
            case 6:
                let field = "headers[\(match.headers.count)]"
                match.headers.append(try value.decode(field) { bytes throws(XDSProblem) in try Self.header(bytes) })
            case 7: if !match.unsupported.contains("query_parameters") { match.unsupported.append("query_parameters") }
            case 8: match.grpcOnly = true
            case 9: match.unsupported.append("runtime_fraction")
            default: break
            }
        }
        return match
    }

    private static func header(_ bytes: ArraySlice<UInt8>) throws(XDSProblem) -> Header {
        var header = Header()
        try ProtoReader.fields(of: bytes) { number, value throws(XDSProblem) in
            switch number {
            case 1: header.name = try value.string("name")
            case 4: header.specifier = .string(.exact(try value.string("exact_match")), ignoreCase: false)
            case 9: header.specifier = .string(.prefix(try value.string("prefix_match")), ignoreCase: false)
            case 10: header.specifier = .string(.suffix(try value.string("suffix_match")), ignoreCase: false)
            case 12: header.specifier = .string(.contains(try value.string("contains_match")), ignoreCase: false)
            case 7: header.specifier = .present(try value.bool("present_match"))
            case 11: header.specifier = .unsupported("safe_regex_match")
            case 6: header.specifier = .unsupported("range_match")
            case 13: header.specifier = try value.decode("string_match") { bytes throws(XDSProblem) in try Self.stringMatch(bytes) }
            case 8: header.invert = try value.bool("invert_match")
            case 14: header.treatMissingAsEmpty = try value.bool("treat_missing_header_as_empty")
            default: break
            }
        }
        return header
    }

    static func stringMatch(_ bytes: ArraySlice<UInt8>) throws(XDSProblem) -> HeaderSpecifier {
        var match = StringMatch.unsupported("match_pattern")
        var ignoreCase = false
        try ProtoReader.fields(of: bytes) { number, value throws(XDSProblem) in
            switch number {
            case 1: match = .exact(try value.string("exact"))
            case 2: match = .prefix(try value.string("prefix"))
            case 3: match = .suffix(try value.string("suffix"))
            case 5: match = .unsupported("safe_regex")
            case 7: match = .contains(try value.string("contains"))
            case 8: match = .unsupported("custom")
            case 6: ignoreCase = try value.bool("ignore_case")
            default: break
            }
        }
        return .string(match, ignoreCase: ignoreCase)
    }

    private static func routeAction(_ bytes: ArraySlice<UInt8>) throws(XDSProblem) -> RouteAction {
        var action = RouteAction()
        func duration(_ value: ProtoReader.Value, _ field: String) throws(XDSProblem) -> XDSDuration {
            try value.decode(field) { bytes throws(XDSProblem) in try XDSDuration(decoding: bytes) }
        }
        try ProtoReader.fields(of: bytes) { number, value throws(XDSProblem) in
            switch number {
            case 1: action.cluster = .cluster(try value.string("cluster"))
            case 2: action.cluster = .unsupported("cluster_header")
            case 37: action.cluster = .unsupported("cluster_specifier_plugin")
            case 39: action.cluster = .unsupported("inline_cluster_specifier_plugin")
            case 3: action.cluster = try value.decode("weighted_clusters") { bytes throws(XDSProblem) in try Self.weighted(bytes) }
            case 5: action.prefixRewrite = try value.string("prefix_rewrite")
            case 32: action.regexRewrite = true
            case 8: action.timeout = try duration(value, "timeout")
            case 24: action.idleTimeout = try duration(value, "idle_timeout")
            case 9: action.retryPolicy = try value.decode("retry_policy") { bytes throws(XDSProblem) in try Self.retryPolicy(bytes) }
            case 27: action.hedgePolicy = true
            case 23: action.maxGrpcTimeout = try duration(value, "max_grpc_timeout")
            case 28: action.grpcTimeoutOffset = try duration(value, "grpc_timeout_offset")
            case 36:
                action.maxStreamDurationSet = true
                try value.decode("max_stream_duration") { bytes throws(XDSProblem) in
                    try ProtoReader.fields(of: bytes) { number, value throws(XDSProblem) in
                        switch number {
                        case 1: action.maxStreamDuration = try duration(value, "max_stream_duration")
                        case 2: action.grpcTimeoutHeaderMax = try duration(value, "grpc_timeout_header_max")
                        case 3: action.grpcTimeoutHeaderOffset = try duration(value, "grpc_timeout_header_offset")
                        default: break
                        }
                    }
                }
            default: break
            }
        }
        return action
    }

    private static func weighted(_ bytes: ArraySlice<UInt8>) throws(XDSProblem) -> ClusterSpecifier {
        var clusters: [WeightedCluster] = []
        var total: UInt32?
        try ProtoReader.fields(of: bytes) { number, value throws(XDSProblem) in
            switch number {
            case 1:
                let field = "clusters[\(clusters.count)]"
                clusters.append(try value.decode(field) { bytes throws(XDSProblem) in
                    var cluster = WeightedCluster()
                    try ProtoReader.fields(of: bytes) { number, value throws(XDSProblem) in
                        switch number {
                        case 1: cluster.name = try value.string("name")
                        case 2: cluster.weight = try value.decode("weight") { bytes throws(XDSProblem) in try XDSWrapper.uint32(bytes) }
                        case 12: cluster.clusterHeader = try value.string("cluster_header")
                        default: break
                        }
                    }
                    return cluster
                })
            case 3: total = try value.decode("total_weight") { bytes throws(XDSProblem) in try XDSWrapper.uint32(bytes) }
            default: break
            }
        }
        return .weighted(clusters, total: total)
    }

    static func retryPolicy(_ bytes: ArraySlice<UInt8>) throws(XDSProblem) -> RetryPolicy {
        var policy = RetryPolicy()
        try ProtoReader.fields(of: bytes) { number, value throws(XDSProblem) in
            switch number {
            case 1: policy.retryOn = try value.string("retry_on")
            case 2: policy.numRetries = try value.decode("num_retries") { bytes throws(XDSProblem) in try XDSWrapper.uint32(bytes) }
            case 3: policy.perTryTimeout = try value.decode("per_try_timeout") { bytes throws(XDSProblem) in try XDSDuration(decoding: bytes) }
            case 8:
                try value.decode("retry_back_off") { bytes throws(XDSProblem) in
                    try ProtoReader.fields(of: bytes) { number, value throws(XDSProblem) in
                        switch number {
                        case 1: policy.backOffBase = try value.decode("base_interval") { bytes throws(XDSProblem) in try XDSDuration(decoding: bytes) }
                        case 2: policy.backOffMax = try value.decode("max_interval") { bytes throws(XDSProblem) in try XDSDuration(decoding: bytes) }
                        default: break
                        }
                    }
                }
            default: break
            }
        }
        return policy
    }
}
