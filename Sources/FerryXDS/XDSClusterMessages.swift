import FerryConfig

/// `envoy.config.cluster.v3.Cluster` as decoded: the fields of
/// protos/xds/envoy/config/cluster/v3/cluster.proto.
struct XDSClusterMessage: Sendable, Equatable {
    struct OutlierDetection: Sendable, Equatable {
        var consecutive5xx: UInt32?
        var interval: XDSDuration?
        var baseEjectionTime: XDSDuration?
        var maxEjectionPercent: UInt32?
        var enforcingConsecutive5xx: UInt32?
        var enforcingSuccessRate: UInt32?
        var successRateMinimumHosts: UInt32?
        var successRateRequestVolume: UInt32?
        var successRateStdevFactor: UInt32?
        var maxEjectionTime: XDSDuration?
    }

    struct Thresholds: Sendable, Equatable {
        var priority: UInt64 = 0
        var maxRequests: UInt32?
        /// `retry_budget.budget_percent.value` (a percentage, 0 to 100).
        var retryBudgetPercent: Double?
    }

    struct HTTP2Options: Sendable, Equatable {
        var maxConcurrentStreams: UInt32?
        var initialStreamWindow: UInt32?
        var initialConnectionWindow: UInt32?

        /// Sets what these options set, in the ranges HTTP/2 allows; a problem's path starts at `path`.
        func apply(to http2: inout HTTP2Config, path: [String]) throws(XDSProblem) {
            if let streams = maxConcurrentStreams {
                guard streams > 0 else { throw XDSProblem("must be at least 1").inside(path + ["max_concurrent_streams"]) }
                http2.maxConcurrentStreams = streams
            }
            let windows: [(UInt32?, WritableKeyPath<HTTP2Config, UInt32>, String)] = [
                (initialStreamWindow, \.initialStreamWindow, "initial_stream_window_size"),
                (initialConnectionWindow, \.connectionWindow, "initial_connection_window_size"),
            ]
            for case (let value?, let setting, let field) in windows {
                guard (65_535...2_147_483_647).contains(value) else {
                    throw XDSProblem("must be from 65535 to 2147483647, is \(value)").inside(path + [field])
                }
                http2[keyPath: setting] = value
            }
        }
    }

    var name = ""
    /// `type` (0 STATIC, 1 STRICT_DNS, 2 LOGICAL_DNS, 3 EDS, 4 ORIGINAL_DST); nil if `cluster_type` was given instead.
    var discoveryType: UInt64? = 0
    var edsServiceName = ""
    var edsConfig: XDSConfigSource?
    var connectTimeout: XDSDuration?
    var lbPolicy: UInt64 = 0
    var leastRequestChoiceCount: UInt32?
    var loadAssignment: XDSClusterLoadAssignment?
    var thresholds: [Thresholds] = []
    var http2: HTTP2Options?
    /// One entry of `typed_extension_protocol_options`: an extension's name and its config.
    struct ProtocolOption: Sendable, Equatable {
        var name = ""
        var config = XDSAny(typeURL: "", value: [])
    }

    var protocolOptions: [ProtocolOption] = []
    var outlierDetection: OutlierDetection?
    var transportSocket: XDSTransportSocket?
    var loadBalancingPolicySet = false

    init(decoding bytes: ArraySlice<UInt8>, maxEndpoints: Int) throws(XDSProblem) {
        try ProtoReader.fields(of: bytes) { number, value throws(XDSProblem) in
            switch number {
            case 1: name = try value.string("name")
            case 2: discoveryType = try value.uint64("type")
            case 38: discoveryType = nil
            case 3:
                try value.decode("eds_cluster_config") { bytes throws(XDSProblem) in
                    try ProtoReader.fields(of: bytes) { number, value throws(XDSProblem) in
                        switch number {
                        case 1: edsConfig = try value.decode("eds_config") { bytes throws(XDSProblem) in try XDSConfigSource(decoding: bytes) }
                        case 2: edsServiceName = try value.string("service_name")
                        default: break
                        }
                    }
                }
            case 4: connectTimeout = try value.decode("connect_timeout") { bytes throws(XDSProblem) in try XDSDuration(decoding: bytes) }
            case 6: lbPolicy = try value.uint64("lb_policy")
            case 37:
                leastRequestChoiceCount = try value.decode("least_request_lb_config") { bytes throws(XDSProblem) in
                    var count: UInt32?
                    try ProtoReader.fields(of: bytes) { number, value throws(XDSProblem) in
                        if number == 1 { count = try value.decode("choice_count") { bytes throws(XDSProblem) in try XDSWrapper.uint32(bytes) } }
                    }
                    return count
                }
            case 33:
                loadAssignment = try value.decode("load_assignment") { bytes throws(XDSProblem) in
                    try XDSClusterLoadAssignment(decoding: bytes, maxEndpoints: maxEndpoints)
                }
            case 10:
                try value.decode("circuit_breakers") { bytes throws(XDSProblem) in
                    try ProtoReader.fields(of: bytes) { number, value throws(XDSProblem) in
                        guard number == 1 else { return }
                        let field = "thresholds[\(thresholds.count)]"
                        thresholds.append(try value.decode(field) { bytes throws(XDSProblem) in try Self.thresholds(bytes) })
                    }
                }
            case 14: http2 = try value.decode("http2_protocol_options") { bytes throws(XDSProblem) in try Self.http2(bytes) }
            case 36:
                let entry = try value.decode("typed_extension_protocol_options") { bytes throws(XDSProblem) in
                    var option = ProtocolOption()
                    try ProtoReader.fields(of: bytes) { number, value throws(XDSProblem) in
                        switch number {
                        case 1: option.name = try value.string("key")
                        case 2: option.config = try value.decode("value") { bytes throws(XDSProblem) in try XDSAny(decoding: bytes) }
                        default: break
                        }
                    }
                    return option
                }
                protocolOptions.append(entry)
            case 19: outlierDetection = try value.decode("outlier_detection") { bytes throws(XDSProblem) in try Self.outlier(bytes) }
            case 23: lbPolicy = max(lbPolicy, 2)  // ring_hash_lb_config: refused with its policy below
            case 52: lbPolicy = max(lbPolicy, 5)  // maglev_lb_config
            case 24:
                transportSocket = try value.decode("transport_socket") { bytes throws(XDSProblem) in try XDSTransportSocket(decoding: bytes) }
            case 41: loadBalancingPolicySet = true
            default: break
            }
        }
    }

    private static func thresholds(_ bytes: ArraySlice<UInt8>) throws(XDSProblem) -> Thresholds {
        var result = Thresholds()
        try ProtoReader.fields(of: bytes) { number, value throws(XDSProblem) in
            switch number {
            case 1: result.priority = try value.uint64("priority")
            case 4: result.maxRequests = try value.decode("max_requests") { bytes throws(XDSProblem) in try XDSWrapper.uint32(bytes) }
            case 8:
                try value.decode("retry_budget") { bytes throws(XDSProblem) in
                    try ProtoReader.fields(of: bytes) { number, value throws(XDSProblem) in
                        guard number == 1 else { return }
                        result.retryBudgetPercent = try value.decode("budget_percent") { bytes throws(XDSProblem) in
                            var percent = 0.0
                            try ProtoReader.fields(of: bytes) { number, value throws(XDSProblem) in
                                if number == 1 { percent = try value.double("value") }
                            }
                            return percent
                        }
                    }
                }
            default: break
            }
        }
        return result
    }

    static func http2(_ bytes: ArraySlice<UInt8>) throws(XDSProblem) -> HTTP2Options {
        var result = HTTP2Options()
        try ProtoReader.fields(of: bytes) { number, value throws(XDSProblem) in
            switch number {
            case 2: result.maxConcurrentStreams = try value.decode("max_concurrent_streams") { bytes throws(XDSProblem) in try XDSWrapper.uint32(bytes) }
            case 3: result.initialStreamWindow = try value.decode("initial_stream_window_size") { bytes throws(XDSProblem) in try XDSWrapper.uint32(bytes) }
            case 4: result.initialConnectionWindow = try value.decode("initial_connection_window_size") { bytes throws(XDSProblem) in try XDSWrapper.uint32(bytes) }
            default: break
            }
        }
        return result
    }

    private static func outlier(_ bytes: ArraySlice<UInt8>) throws(XDSProblem) -> OutlierDetection {
        var result = OutlierDetection()
        func wrapped(_ value: ProtoReader.Value, _ field: String) throws(XDSProblem) -> UInt32 {
            try value.decode(field) { bytes throws(XDSProblem) in try XDSWrapper.uint32(bytes) }
        }
        func duration(_ value: ProtoReader.Value, _ field: String) throws(XDSProblem) -> XDSDuration {
            try value.decode(field) { bytes throws(XDSProblem) in try XDSDuration(decoding: bytes) }
        }
        try ProtoReader.fields(of: bytes) { number, value throws(XDSProblem) in
            switch number {
            case 1: result.consecutive5xx = try wrapped(value, "consecutive_5xx")
            case 2: result.interval = try duration(value, "interval")
            case 3: result.baseEjectionTime = try duration(value, "base_ejection_time")
            case 4: result.maxEjectionPercent = try wrapped(value, "max_ejection_percent")
            case 5: result.enforcingConsecutive5xx = try wrapped(value, "enforcing_consecutive_5xx")
            case 6: result.enforcingSuccessRate = try wrapped(value, "enforcing_success_rate")
            case 7: result.successRateMinimumHosts = try wrapped(value, "success_rate_minimum_hosts")
            case 8: result.successRateRequestVolume = try wrapped(value, "success_rate_request_volume")
            case 9: result.successRateStdevFactor = try wrapped(value, "success_rate_stdev_factor")
            case 21: result.maxEjectionTime = try duration(value, "max_ejection_time")
            default: break
            }
        }
        return result
    }
}

/// `envoy.config.core.v3.ConfigSource`, as far as Ferry cares: ADS or something else.
enum XDSConfigSource: Sendable, Equatable {
    case ads
    /// `self`: the same server as the resource that names it, which for Ferry is ADS too.
    case sameServer
    /// A file path, another API server, a path config source: what Ferry does not fetch from.
    case other(String)
    case unset

    init(decoding bytes: ArraySlice<UInt8>) throws(XDSProblem) {
        var result = XDSConfigSource.unset
        try ProtoReader.fields(of: bytes) { number, value throws(XDSProblem) in
            switch number {
            case 1: result = .other("path")
            case 2: result = .other("api_config_source")
            case 3: result = .ads
            case 5: result = .sameServer
            case 8: result = .other("path_config_source")
            default: break
            }
        }
        self = result
    }
}
