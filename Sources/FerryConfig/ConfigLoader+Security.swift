/// The `tls` sections of listeners and services and the `authorization` policies.
extension ConfigLoader {
    static func location(of value: YAMLValue) -> ConfigLocation {
        ConfigLocation(file: value.file, line: value.node.line, column: value.node.column, key: value.path)
    }

    /// `tls: { certificate, key, client_ca, client_certificates: required|optional, min_version }`
    static func decodeListenerTLS(_ value: YAMLValue, configDirectory: String) throws -> ListenerTLSConfig {
        let m = try value.mapping(allowed: ["certificate", "key", "client_ca", "client_certificates", "min_version"])
        let certificate = try m.required("certificate")
        let identity = CertificateFiles(certificate: resolve(try certificate.string(), against: configDirectory),
                                        key: resolve(try m.required("key").string(), against: configDirectory),
                                        location: location(of: certificate))
        var tls = ListenerTLSConfig(identity: identity, location: location(of: value))
        if let v = m["client_ca"] { tls.clientCA = resolve(try v.string(), against: configDirectory) }
        if let v = m["client_certificates"] {
            guard let mode = ListenerTLSConfig.ClientCertificates(rawValue: try v.string()) else {
                throw v.error("expected required or optional, got \"\(try v.string())\"")
            }
            guard tls.clientCA != nil else {
                throw v.error("client certificates are verified against client_ca: set client_ca too")
            }
            tls.clientCertificates = mode
        }
        if let v = m["min_version"] { tls.minVersion = try tlsVersion(v) }
        return tls
    }

    /// `tls: { ca, certificate, key, server_name, identities: [...], min_version }`
    static func decodeUpstreamTLS(_ value: YAMLValue, configDirectory: String) throws -> UpstreamTLSConfig {
        var tls = UpstreamTLSConfig(location: location(of: value))
        guard case .mapping = value.node.content else {
            // `tls: true`: verify the endpoints against the system's trust store by hostname.
            guard try value.bool() else { throw value.error("to turn TLS off, leave tls out") }
            return tls
        }
        let m = try value.mapping(allowed: ["ca", "certificate", "key", "server_name", "identities", "min_version"])
        if let v = m["ca"] { tls.ca = resolve(try v.string(), against: configDirectory) }
        switch (m["certificate"], m["key"]) {
        case (let certificate?, let key?):
            tls.identity = CertificateFiles(certificate: resolve(try certificate.string(), against: configDirectory),
                                            key: resolve(try key.string(), against: configDirectory),
                                            location: location(of: certificate))
        case (let certificate?, nil):
            throw certificate.error("a client certificate needs its private key: set key too")
        case (nil, let key?):
            throw key.error("a private key needs its certificate: set certificate too")
        case (nil, nil):
            break
        }
        if let v = m["server_name"] {
            let name = try v.string()
            guard !name.isEmpty, !name.contains(":"), !name.contains("/") else {
                throw v.error("server_name is a DNS name (no port, no scheme), got \"\(name)\"")
            }
            tls.serverName = name
        }
        if let v = m["identities"] {
            tls.identities = try v.sequence().map(identityPattern)
            guard !tls.identities.isEmpty else { throw v.error("list the identities the endpoints may have, or leave identities out") }
        }
        if let v = m["min_version"] { tls.minVersion = try tlsVersion(v) }
        return tls
    }

    /// `authorization: { allow: [patterns], allow_unauthenticated: bool }`
    static func decodeAuthorization(_ value: YAMLValue, name: String) throws -> AuthorizationPolicy {
        let m = try value.mapping(allowed: ["allow", "allow_unauthenticated"])
        let allow = try m["allow"].map { try $0.sequence().map(identityPattern) } ?? []
        let unauthenticated = try m["allow_unauthenticated"]?.bool() ?? false
        guard !allow.isEmpty || unauthenticated else {
            throw value.error("this policy lets no one in: list identities under allow, or set allow_unauthenticated: true")
        }
        return AuthorizationPolicy(allow: allow, allowUnauthenticated: unauthenticated, name: name)
    }

    private static func identityPattern(_ value: YAMLValue) throws -> IdentityPattern {
        switch IdentityPattern.parse(try value.string()) {
        case .success(let pattern): return pattern
        case .failure(let why): throw value.error(why.description)
        }
    }

    private static func tlsVersion(_ value: YAMLValue) throws -> TLSVersionSetting {
        let text = try value.string()
        guard let version = TLSVersionSetting(rawValue: text) else {
            throw value.error("min_version is \"1.2\" or \"1.3\", got \"\(text)\"")
        }
        return version
    }
}
