/// `envoy.config.endpoint.v3.ClusterLoadAssignment` and what it holds, as decoded: the fields
/// of protos/xds/envoy/config/endpoint/v3/endpoint.proto.
struct XDSClusterLoadAssignment: Sendable, Equatable {
    struct LocalityEndpoints: Sendable, Equatable {
        var locality = XDSLocality()
        var endpoints: [LbEndpoint] = []
        var weight: UInt32?
        var priority: UInt32 = 0
    }

    struct LbEndpoint: Sendable, Equatable {
        var address: XDSAddress?
        var hostname = ""
        /// `endpoint_name` (named endpoints): set means Ferry cannot use this endpoint.
        var endpointName: String?
        var healthStatus: UInt64 = 0
        var weight: UInt32?
    }

    var clusterName = ""
    var localities: [LocalityEndpoints] = []
    /// Endpoints across all localities, counted while decoding (the limit is checked as they come).
    var endpointCount = 0

    init(decoding bytes: ArraySlice<UInt8>, maxEndpoints: Int) throws(XDSProblem) {
        try ProtoReader.fields(of: bytes) { number, value throws(XDSProblem) in
            switch number {
            case 1: clusterName = try value.string("cluster_name")
            case 2:
                let field = "endpoints[\(localities.count)]"
                let locality = try value.decode(field) { bytes throws(XDSProblem) in
                    try Self.locality(bytes, counted: &endpointCount, max: maxEndpoints)
                }
                localities.append(locality)
            default: break
            }
        }
    }

    private static func locality(_ bytes: ArraySlice<UInt8>, counted: inout Int, max: Int) throws(XDSProblem) -> LocalityEndpoints {
        var result = LocalityEndpoints()
        try ProtoReader.fields(of: bytes) { number, value throws(XDSProblem) in
            switch number {
            case 1: result.locality = try value.decode("locality") { bytes throws(XDSProblem) in try XDSLocality(decoding: bytes) }
            case 2:
                guard counted < max else {
                    throw XDSProblem("more than \(max) endpoints in one cluster").inside("lb_endpoints")
                }
                counted += 1
                let field = "lb_endpoints[\(result.endpoints.count)]"
                result.endpoints.append(try value.decode(field) { bytes throws(XDSProblem) in try Self.lbEndpoint(bytes) })
            case 3: result.weight = try value.decode("load_balancing_weight") { bytes throws(XDSProblem) in try XDSWrapper.uint32(bytes) }
            case 5: result.priority = try value.uint32("priority")
            default: break
            }
        }
        return result
    }

    private static func lbEndpoint(_ bytes: ArraySlice<UInt8>) throws(XDSProblem) -> LbEndpoint {
        var result = LbEndpoint()
        try ProtoReader.fields(of: bytes) { number, value throws(XDSProblem) in
            switch number {
            case 1:
                try value.decode("endpoint") { bytes throws(XDSProblem) in
                    try ProtoReader.fields(of: bytes) { number, value throws(XDSProblem) in
                        switch number {
                        case 1: result.address = try value.decode("address") { bytes throws(XDSProblem) in try XDSAddress(decoding: bytes) }
                        case 3: result.hostname = try value.string("hostname")
                        default: break
                        }
                    }
                }
            case 2: result.healthStatus = try value.uint64("health_status")
            case 4: result.weight = try value.decode("load_balancing_weight") { bytes throws(XDSProblem) in try XDSWrapper.uint32(bytes) }
            case 5: result.endpointName = try value.string("endpoint_name")
            default: break
            }
        }
        return result
    }
}

/// `envoy.config.core.v3.Locality`.
struct XDSLocality: Sendable, Equatable {
    var region = ""
    var zone = ""
    var subZone = ""

    init() {}

    init(decoding bytes: ArraySlice<UInt8>) throws(XDSProblem) {
        try ProtoReader.fields(of: bytes) { number, value throws(XDSProblem) in
            switch number {
            case 1: region = try value.string("region")
            case 2: zone = try value.string("zone")
            case 3: subZone = try value.string("sub_zone")
            default: break
            }
        }
    }
}

/// `envoy.config.core.v3.Address`: a socket address, or one of the kinds Ferry refuses.
enum XDSAddress: Sendable, Equatable {
    case socket(host: String, port: UInt32, namedPort: String?, udp: Bool, resolver: String)
    /// A pipe or an Envoy-internal address: kinds Ferry has no use for; the field number says which.
    case unsupported(String)
    case empty

    init(decoding bytes: ArraySlice<UInt8>) throws(XDSProblem) {
        var result = XDSAddress.empty
        try ProtoReader.fields(of: bytes) { number, value throws(XDSProblem) in
            switch number {
            case 1: result = try value.decode("socket_address") { bytes throws(XDSProblem) in try Self.socket(bytes) }
            case 2: result = .unsupported("pipe")
            case 3: result = .unsupported("envoy_internal_address")
            default: break
            }
        }
        self = result
    }

    private static func socket(_ bytes: ArraySlice<UInt8>) throws(XDSProblem) -> XDSAddress {
        var host = ""
        var port: UInt32 = 0
        var named: String?
        var udp = false
        var resolver = ""
        try ProtoReader.fields(of: bytes) { number, value throws(XDSProblem) in
            switch number {
            case 1: udp = try value.uint64("protocol") == 1
            case 2: host = try value.string("address")
            case 3: port = try value.uint32("port_value")
            case 4: named = try value.string("named_port")
            case 5: resolver = try value.string("resolver_name")
            default: break
            }
        }
        return .socket(host: host, port: port, namedPort: named, udp: udp, resolver: resolver)
    }
}
