/// Where a setting was written, so an error found later (a certificate file that does not
/// load at start or at rotation) names the file, line and key like any configuration error.
public struct ConfigLocation: Sendable, Hashable {
    public var file: String
    public var line: Int
    public var column: Int
    public var key: String

    public init(file: String, line: Int, column: Int, key: String) {
        self.file = file
        self.line = line
        self.column = column
        self.key = key
    }

    public func error(_ message: String) -> ConfigError {
        ConfigError(file: file, line: line, column: column, key: key, message: message)
    }
}

/// The lowest TLS version a side accepts.
public enum TLSVersionSetting: String, Sendable, Hashable {
    case v1_2 = "1.2"
    case v1_3 = "1.3"
}

/// A certificate chain and its private key, as PEM files.
public struct CertificateFiles: Sendable, Hashable {
    /// The chain, leaf first.
    public var certificate: String
    public var key: String
    /// Where `certificate` was written (errors in either file name it).
    public var location: ConfigLocation

    public init(certificate: String, key: String, location: ConfigLocation) {
        self.certificate = certificate
        self.key = key
        self.location = location
    }
}

/// TLS on a listener: the certificate it presents and, for mutual TLS, the bundle client
/// certificates must chain to.
public struct ListenerTLSConfig: Sendable, Hashable {
    public enum ClientCertificates: String, Sendable, Hashable {
        /// The handshake fails without a client certificate that verifies.
        case required
        /// A client may present one (then it must verify) or none (an unauthenticated caller).
        case optional
    }

    public var identity: CertificateFiles
    /// PEM bundle client certificates are verified against; nil: none is asked for.
    public var clientCA: String?
    public var clientCertificates = ClientCertificates.required
    public var minVersion = TLSVersionSetting.v1_2
    public var location: ConfigLocation

    public init(identity: CertificateFiles, location: ConfigLocation) {
        self.identity = identity
        self.location = location
    }
}

/// TLS towards a service's endpoints: the bundle their certificates must chain to, the
/// certificate this proxy presents (mutual TLS), and who the endpoints must be.
public struct UpstreamTLSConfig: Sendable, Hashable {
    /// PEM bundle the endpoints' certificates are verified against; nil: the system's.
    public var ca: String?
    /// Presented when the endpoint asks (mutual TLS).
    public var identity: CertificateFiles?
    /// SNI, and the name checked when `identities` is empty (default: the endpoint's host).
    public var serverName: String?
    /// Secure naming: the identities an endpoint may present (SPIFFE URI or DNS SAN). An
    /// endpoint presenting another one is a connection failure. Empty: the certificate's names
    /// must match `serverName` or the endpoint's host (hostname verification).
    public var identities: [IdentityPattern] = []
    public var minVersion = TLSVersionSetting.v1_2
    public var location: ConfigLocation

    public init(location: ConfigLocation) {
        self.location = location
    }
}

/// Who may call: verified caller identities (patterns), and whether a caller without one
/// (plaintext, or no client certificate on an `optional` listener) is let in.
public struct AuthorizationPolicy: Sendable, Hashable {
    public var allow: [IdentityPattern]
    public var allowUnauthenticated: Bool
    /// Names the policy in denials, metrics and logs (`listeners.inbound.authorization`).
    public var name: String

    public init(allow: [IdentityPattern], allowUnauthenticated: Bool, name: String) {
        self.allow = allow
        self.allowUnauthenticated = allowUnauthenticated
        self.name = name
    }

    /// Whether a caller with `identity` (nil: unauthenticated) may make the call.
    public func permits(_ identity: String?) -> Bool {
        guard let identity else { return allowUnauthenticated }
        return allow.contains { $0.matches(identity) }
    }
}

extension FerryConfig {
    /// Every certificate, key and trust bundle file the configuration names, in order, once each.
    public var tlsFiles: [String] {
        var files: [String] = []
        func add(_ path: String?) { if let path, !files.contains(path) { files.append(path) } }
        for listener in listeners {
            guard let tls = listener.tls else { continue }
            add(tls.identity.certificate); add(tls.identity.key); add(tls.clientCA)
        }
        for service in services {
            guard let tls = service.tls else { continue }
            add(tls.ca); add(tls.identity?.certificate); add(tls.identity?.key)
        }
        return files
    }
}
