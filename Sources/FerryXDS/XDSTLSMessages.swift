/// A `TransportSocket` (a cluster's or a filter chain's): its name and typed config.
struct XDSTransportSocket: Sendable, Equatable {
    var name = ""
    var config: XDSAny?

    init(decoding bytes: ArraySlice<UInt8>) throws(XDSProblem) {
        try ProtoReader.fields(of: bytes) { number, value throws(XDSProblem) in
            switch number {
            case 1: name = try value.string("name")
            case 3: config = try value.decode("typed_config") { bytes throws(XDSProblem) in try XDSAny(decoding: bytes) }
            default: break
            }
        }
    }
}

/// `UpstreamTlsContext` / `DownstreamTlsContext` and their `CommonTlsContext`, as sent.
struct XDSTLSContextMessage: Sendable, Equatable {
    enum DataSource: Sendable, Equatable {
        case file(String)
        /// Anything but a file name (inline bytes or string, an environment variable).
        case other(String)
    }

    struct Certificate: Sendable, Equatable {
        var chain: DataSource?
        var key: DataSource?
    }

    struct SubjectAltName: Sendable, Equatable {
        /// SanType: 1 EMAIL, 2 DNS, 3 URI, 4 IP_ADDRESS, 5 OTHER_NAME; 0 for the untyped (legacy) list.
        var type: Int
        var match: XDSRouteConfigurationMessage.HeaderSpecifier
    }

    var certificates: [Certificate] = []
    var trustedCA: DataSource?
    var subjectAltNames: [SubjectAltName] = []
    var minimumVersion = 0
    var maximumVersion = 0
    var alpn: [String] = []
    /// Fields Ferry refuses (SDS, certificate providers, combined validation), by name.
    var unsupported: [String] = []
    /// UpstreamTlsContext.sni.
    var sni = ""
    /// DownstreamTlsContext.require_client_certificate (nil: not set).
    var requireClientCertificate: Bool?

    /// `upstream`: an UpstreamTlsContext (field 2 is `sni`), else a DownstreamTlsContext
    /// (field 2 is `require_client_certificate`).
    init(decoding bytes: ArraySlice<UInt8>, upstream: Bool) throws(XDSProblem) {
        try ProtoReader.fields(of: bytes) { number, value throws(XDSProblem) in
            switch (number, upstream) {
            case (1, _): try value.decode("common_tls_context") { bytes throws(XDSProblem) in try self.common(bytes) }
            case (2, true): sni = try value.string("sni")
            case (2, false):
                requireClientCertificate = try value.decode("require_client_certificate") { bytes throws(XDSProblem) in try XDSWrapper.bool(bytes) }
            default: break
            }
        }
    }

    private mutating func common(_ bytes: ArraySlice<UInt8>) throws(XDSProblem) {
        try ProtoReader.fields(of: bytes) { number, value throws(XDSProblem) in
            switch number {
            case 1:
                try value.decode("tls_params") { bytes throws(XDSProblem) in
                    try ProtoReader.fields(of: bytes) { number, value throws(XDSProblem) in
                        if number == 1 { self.minimumVersion = Int(try value.uint64("tls_minimum_protocol_version")) }
                        if number == 2 { self.maximumVersion = Int(try value.uint64("tls_maximum_protocol_version")) }
                    }
                }
            case 2:
                let field = "tls_certificates[\(certificates.count)]"
                certificates.append(try value.decode(field) { bytes throws(XDSProblem) in
                    var certificate = Certificate()
                    try ProtoReader.fields(of: bytes) { number, value throws(XDSProblem) in
                        if number == 1 { certificate.chain = try value.decode("certificate_chain") { bytes throws(XDSProblem) in try Self.source(bytes) } }
                        if number == 2 { certificate.key = try value.decode("private_key") { bytes throws(XDSProblem) in try Self.source(bytes) } }
                    }
                    return certificate
                })
            case 3: try value.decode("validation_context") { bytes throws(XDSProblem) in try self.validation(bytes) }
            case 4: alpn.append(try value.string("alpn_protocols"))
            case 6: unsupported.append("tls_certificate_sds_secret_configs")
            case 7: unsupported.append("validation_context_sds_secret_config")
            case 8: unsupported.append("combined_validation_context")
            case 9, 11, 14: unsupported.append("tls_certificate_provider_instance")
            case 10, 12: unsupported.append("validation_context_certificate_provider_instance")
            case 13: unsupported.append("custom_handshaker")
            case 16: unsupported.append("custom_tls_certificate_selector")
            default: break
            }
        }
    }

    private mutating func validation(_ bytes: ArraySlice<UInt8>) throws(XDSProblem) {
        try ProtoReader.fields(of: bytes) { number, value throws(XDSProblem) in
            switch number {
            case 1: trustedCA = try value.decode("trusted_ca") { bytes throws(XDSProblem) in try Self.source(bytes) }
            case 9:
                let field = "match_subject_alt_names[\(subjectAltNames.count)]"
                let match = try value.decode(field) { bytes throws(XDSProblem) in try XDSRouteConfigurationMessage.stringMatch(bytes) }
                subjectAltNames.append(SubjectAltName(type: 0, match: match))
            case 15:
                let field = "match_typed_subject_alt_names[\(subjectAltNames.count)]"
                subjectAltNames.append(try value.decode(field) { bytes throws(XDSProblem) in
                    var name = SubjectAltName(type: 0, match: .none)
                    try ProtoReader.fields(of: bytes) { number, value throws(XDSProblem) in
                        if number == 1 { name.type = Int(try value.uint64("san_type")) }
                        if number == 2 { name.match = try value.decode("matcher") { bytes throws(XDSProblem) in try XDSRouteConfigurationMessage.stringMatch(bytes) } }
                    }
                    return name
                })
            case 2, 3, 6, 7, 8, 10, 11, 12, 13, 14, 18:   // pinning, CRLs, untrusted chains, custom validators
                unsupported.append("validation_context field \(number)")
            default: break
            }
        }
    }

    private static func source(_ bytes: ArraySlice<UInt8>) throws(XDSProblem) -> DataSource {
        var source = DataSource.other("nothing")
        try ProtoReader.fields(of: bytes) { number, value throws(XDSProblem) in
            switch number {
            case 1: source = .file(try value.string("filename"))
            case 2: source = .other("inline_bytes")
            case 3: source = .other("inline_string")
            case 4: source = .other("environment_variable")
            case 5: source = .other("watched_directory")
            default: break
            }
        }
        return source
    }
}
