import FerryConfig

/// TLS from xDS in Ferry's terms: a cluster's `UpstreamTlsContext` becomes its service's
/// `UpstreamTLSConfig` (the bundle endpoints must chain to, the certificate presented, the SNI,
/// the identities endpoints may present from the SAN matchers), a filter chain's
/// `DownstreamTlsContext` the listener's `ListenerTLSConfig` (client certificates required or
/// optional, the identities allowed to call from its SAN matchers).
///
/// Certificates come as file names: Ferry reads them, and rereads them when they change, as
/// it does the file's. What would loosen or change verification and Ferry cannot do (SDS,
/// certificate providers, inline keys, pinning, CRLs, SAN matchers by suffix, substring or
/// regex, e-mail or IP SANs, ALPN without h2) is a problem, and the resource is NACKed.
enum XDSTLS {
    static let upstreamType = "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"
    static let downstreamType = "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext"

    static func upstream(_ socket: XDSTransportSocket, cluster: String, ignored: inout [String]) throws(XDSProblem) -> UpstreamTLSConfig {
        let context = try decode(socket, as: upstreamType, upstream: true)
        var tls = UpstreamTLSConfig(location: ConfigLocation(file: "xDS cluster \(cluster)", line: 0, column: 0, key: "transport_socket"))
        do throws(XDSProblem) {
            try common(context, ignored: &ignored)
            tls.ca = try context.trustedCA.map { s throws(XDSProblem) in try file(s, "common_tls_context", "validation_context", "trusted_ca") }
            if let certificate = try certificate(context) {
                tls.identity = CertificateFiles(certificate: certificate.0, key: certificate.1, location: tls.location)
            }
            if !context.sni.isEmpty { tls.serverName = context.sni }
            tls.identities = try identities(context)
            tls.minVersion = try minimumVersion(context, ignored: &ignored)
        } catch {
            throw error.inside("transport_socket", "typed_config")
        }
        return tls
    }

    /// The listener's TLS and, when the context restricts client certificates by SAN, who may call.
    static func downstream(_ socket: XDSTransportSocket, listener: String, ignored: inout [String]) throws(XDSProblem)
        -> (ListenerTLSConfig, AuthorizationPolicy?) {
        let context = try decode(socket, as: downstreamType, upstream: false)
        let location = ConfigLocation(file: "xDS listener \(listener)", line: 0, column: 0, key: "transport_socket")
        do throws(XDSProblem) {
            try common(context, ignored: &ignored)
            guard let certificate = try certificate(context) else {
                throw XDSProblem("is empty: a listener serving TLS needs its certificate").inside("common_tls_context", "tls_certificates")
            }
            var tls = ListenerTLSConfig(identity: CertificateFiles(certificate: certificate.0, key: certificate.1, location: location), location: location)
            tls.clientCA = try context.trustedCA.map { s throws(XDSProblem) in try file(s, "common_tls_context", "validation_context", "trusted_ca") }
            if context.requireClientCertificate == true, tls.clientCA == nil {
                throw XDSProblem("is true with no validation_context.trusted_ca to verify client certificates against")
                    .inside("require_client_certificate")
            }
            tls.clientCertificates = context.requireClientCertificate == true ? .required : .optional
            tls.minVersion = try minimumVersion(context, ignored: &ignored)
            let allowed = try identities(context)
            let policy = allowed.isEmpty ? nil
                : AuthorizationPolicy(allow: allowed, allowUnauthenticated: false, name: "xds.listeners.\(listener).transport_socket")
            return (tls, policy)
        } catch {
            throw error.inside("transport_socket", "typed_config")
        }
    }

    private static func decode(_ socket: XDSTransportSocket, as type: String, upstream: Bool) throws(XDSProblem) -> XDSTLSContextMessage {
        guard let config = socket.config else {
            throw XDSProblem("(\"\(socket.name.prefix(100))\") has no typed_config: Ferry needs an \(type)").inside("transport_socket")
        }
        guard config.typeName == type else {
            throw XDSProblem("is a \(config.typeName.prefix(200)): Ferry's transport socket is TLS (\(type))").inside("transport_socket", "typed_config")
        }
        do throws(XDSProblem) {
            return try XDSTLSContextMessage(decoding: config.value, upstream: upstream)
        } catch {
            throw error.inside("transport_socket", "typed_config")
        }
    }

    private static func common(_ context: XDSTLSContextMessage, ignored: inout [String]) throws(XDSProblem) {
        if let field = context.unsupported.first {
            throw XDSProblem("is not supported: Ferry takes certificates and trust bundles as files named in the resource").inside("common_tls_context", field)
        }
        if !context.alpn.isEmpty, !context.alpn.contains("h2") {
            throw XDSProblem("does not offer h2: Ferry speaks HTTP/2").inside("common_tls_context", "alpn_protocols")
        }
        if context.maximumVersion != 0 { ignored.append("tls_maximum_protocol_version (Ferry offers TLS 1.2 and 1.3)") }
    }

    private static func certificate(_ context: XDSTLSContextMessage) throws(XDSProblem) -> (String, String)? {
        guard let first = context.certificates.first else { return nil }
        if context.certificates.count > 1 {
            throw XDSProblem("has \(context.certificates.count) certificates: Ferry presents one").inside("common_tls_context", "tls_certificates")
        }
        guard let chain = first.chain, let key = first.key else {
            throw XDSProblem("needs certificate_chain and private_key").inside("common_tls_context", "tls_certificates[0]")
        }
        return (try file(chain, "common_tls_context", "tls_certificates[0]", "certificate_chain"),
                try file(key, "common_tls_context", "tls_certificates[0]", "private_key"))
    }

    private static func file(_ source: XDSTLSContextMessage.DataSource, _ path: String...) throws(XDSProblem) -> String {
        switch source {
        case .file(let name) where !name.isEmpty: return name
        case .file: throw XDSProblem("filename is empty").inside(path)
        case .other(let kind): throw XDSProblem("is \(kind): Ferry reads certificates and keys from files (filename)").inside(path)
        }
    }

    /// The identities the peer may present, from the SAN matchers: an exact URI (a SPIFFE ID)
    /// or DNS name, or a SPIFFE ID prefix ending in `/`.
    private static func identities(_ context: XDSTLSContextMessage) throws(XDSProblem) -> [IdentityPattern] {
        var patterns: [IdentityPattern] = []
        for (index, san) in context.subjectAltNames.enumerated() {
            let field = san.type == 0 ? "match_subject_alt_names[\(index)]" : "match_typed_subject_alt_names[\(index)]"
            let path = ["common_tls_context", "validation_context", field]
            guard [0, 2, 3].contains(san.type) else {
                throw XDSProblem("matches a SAN type Ferry does not verify (URI and DNS are)").inside(path + ["san_type"])
            }
            let text: String
            switch san.match {
            case .string(.exact(let value), _): text = value
            case .string(.prefix(let value), _) where value.hasPrefix("spiffe://") && value.hasSuffix("/"): text = value + "*"
            default:
                throw XDSProblem("is not supported: Ferry matches a SAN exactly, or a SPIFFE ID by a prefix ending in /").inside(path + ["matcher"])
            }
            switch IdentityPattern.parse(text) {
            case .success(let pattern): patterns.append(pattern)
            case .failure(let error): throw XDSProblem("\(error)").inside(path)
            }
        }
        return patterns
    }

    private static func minimumVersion(_ context: XDSTLSContextMessage, ignored: inout [String]) throws(XDSProblem) -> TLSVersionSetting {
        switch context.minimumVersion {
        case 4: return .v1_3
        case 0, 3: return .v1_2
        case 1, 2:
            ignored.append("tls_minimum_protocol_version below TLS 1.2 (Ferry's minimum is 1.2)")
            return .v1_2
        case let other:
            throw XDSProblem("is \(other), not a TLS version").inside("common_tls_context", "tls_params", "tls_minimum_protocol_version")
        }
    }
}
