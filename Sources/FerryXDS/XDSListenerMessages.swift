/// `envoy.config.listener.v3.Listener` and its HTTP connection manager as decoded: the fields
/// of protos/xds/envoy/config/listener/v3/listener.proto and http_connection_manager.proto.
struct XDSListenerMessage: Sendable, Equatable {
    struct FilterChain: Sendable, Equatable {
        var hasMatch = false
        var filters: [Filter] = []
        var transportSocket: XDSTransportSocket?
    }

    struct Filter: Sendable, Equatable {
        var name = ""
        var config: XDSAny?
        var configDiscovery = false
    }

    var name = ""
    var address: XDSAddress?
    var filterChains: [FilterChain] = []
    var defaultFilterChain: FilterChain?
    var listenerFilters = 0
    var apiListener = false

    init(decoding bytes: ArraySlice<UInt8>) throws(XDSProblem) {
        try ProtoReader.fields(of: bytes) { number, value throws(XDSProblem) in
            switch number {
            case 1: name = try value.string("name")
            case 2: address = try value.decode("address") { bytes throws(XDSProblem) in try XDSAddress(decoding: bytes) }
            case 3:
                let field = "filter_chains[\(filterChains.count)]"
                filterChains.append(try value.decode(field) { bytes throws(XDSProblem) in try Self.chain(bytes) })
            case 25: defaultFilterChain = try value.decode("default_filter_chain") { bytes throws(XDSProblem) in try Self.chain(bytes) }
            case 9: listenerFilters += 1
            case 19: apiListener = true
            default: break
            }
        }
    }

    private static func chain(_ bytes: ArraySlice<UInt8>) throws(XDSProblem) -> FilterChain {
        var chain = FilterChain()
        try ProtoReader.fields(of: bytes) { number, value throws(XDSProblem) in
            switch number {
            case 1: chain.hasMatch = true
            case 3:
                let field = "filters[\(chain.filters.count)]"
                chain.filters.append(try value.decode(field) { bytes throws(XDSProblem) in try Self.filter(bytes) })
            case 6:
                chain.transportSocket = try value.decode("transport_socket") { bytes throws(XDSProblem) in try XDSTransportSocket(decoding: bytes) }
            default: break
            }
        }
        return chain
    }

    /// A network filter or an HTTP filter: the two share their field numbers for what Ferry reads.
    static func filter(_ bytes: ArraySlice<UInt8>) throws(XDSProblem) -> Filter {
        var filter = Filter()
        try ProtoReader.fields(of: bytes) { number, value throws(XDSProblem) in
            switch number {
            case 1: filter.name = try value.string("name")
            case 4: filter.config = try value.decode("typed_config") { bytes throws(XDSProblem) in try XDSAny(decoding: bytes) }
            case 5: filter.configDiscovery = true
            default: break
            }
        }
        return filter
    }
}

/// `HttpConnectionManager`, as far as Ferry reads it.
struct XDSHTTPConnectionManagerMessage: Sendable, Equatable {
    enum Routes: Sendable, Equatable {
        case none
        case rds(name: String, source: XDSConfigSource)
        case inline(ArraySlice<UInt8>)
        case scoped
    }

    struct HTTPFilter: Sendable, Equatable {
        var filter = XDSListenerMessage.Filter()
        var isOptional = false
        var disabled = false
    }

    var codecType: UInt64 = 0
    var routes = Routes.none
    var httpFilters: [HTTPFilter] = []
    var http2: XDSClusterMessage.HTTP2Options?
    var streamIdleTimeout: XDSDuration?

    init(decoding bytes: ArraySlice<UInt8>) throws(XDSProblem) {
        try ProtoReader.fields(of: bytes) { number, value throws(XDSProblem) in
            switch number {
            case 1: codecType = try value.uint64("codec_type")
            case 3:
                routes = try value.decode("rds") { bytes throws(XDSProblem) in
                    var name = ""
                    var source = XDSConfigSource.unset
                    try ProtoReader.fields(of: bytes) { number, value throws(XDSProblem) in
                        switch number {
                        case 1: source = try value.decode("config_source") { bytes throws(XDSProblem) in try XDSConfigSource(decoding: bytes) }
                        case 2: name = try value.string("route_config_name")
                        default: break
                        }
                    }
                    return .rds(name: name, source: source)
                }
            case 4: routes = .inline(try value.message("route_config"))
            case 31: routes = .scoped
            case 5:
                let field = "http_filters[\(httpFilters.count)]"
                httpFilters.append(try value.decode(field) { bytes throws(XDSProblem) in
                    var filter = HTTPFilter()
                    filter.filter = try XDSListenerMessage.filter(bytes)
                    try ProtoReader.fields(of: bytes) { number, value throws(XDSProblem) in
                        switch number {
                        case 6: filter.isOptional = try value.bool("is_optional")
                        case 7: filter.disabled = try value.bool("disabled")
                        default: break
                        }
                    }
                    return filter
                })
            case 9: http2 = try value.decode("http2_protocol_options") { bytes throws(XDSProblem) in try XDSClusterMessage.http2(bytes) }
            case 24: streamIdleTimeout = try value.decode("stream_idle_timeout") { bytes throws(XDSProblem) in try XDSDuration(decoding: bytes) }
            default: break
            }
        }
    }
}
