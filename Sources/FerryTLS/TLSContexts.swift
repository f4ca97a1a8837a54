import FerryConfig
import NIOSSL

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// swift-nio-ssl contexts built from the configuration's PEM files. Every failure is a
/// `ConfigError` at the line that named the file, saying which file and why: unreadable, no
/// certificate in it, a key that does not parse or does not belong to the certificate, a
/// certificate already expired. The same checks run for `ferry check`, at start, on reload
/// and on every rotation (where a failure keeps the contexts in use).
public enum TLSContexts {
    /// A listener's context: its certificate, ALPN `h2` only, client certificates verified
    /// against `client_ca` when set.
    public static func server(_ config: ListenerTLSConfig) throws(ConfigError) -> NIOSSLContext {
        let (chain, key) = try identity(config.identity)
        var tls = TLSConfiguration.makeServerConfiguration(certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        tls.minimumTLSVersion = version(config.minVersion)
        tls.applicationProtocols = ["h2"]
        if let ca = config.clientCA {
            tls.trustRoots = .certificates(try certificates(ca, at: config.location.child("client_ca")))
            tls.certificateVerification = config.clientCertificates == .required ? .noHostnameVerification : .optionalVerification
        } else {
            tls.certificateVerification = .none
        }
        return try context(tls, at: config.identity.location)
    }

    /// A service's context towards its endpoints: their certificates verified against `ca`
    /// (or the system's roots), this proxy's certificate presented when configured. With
    /// `identities` the name check is the identity check after the handshake; without, the
    /// certificate must be valid for the server name (hostname verification).
    public static func client(_ config: UpstreamTLSConfig) throws(ConfigError) -> NIOSSLContext {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.minimumTLSVersion = version(config.minVersion)
        tls.applicationProtocols = ["h2"]
        if let ca = config.ca { tls.trustRoots = .certificates(try certificates(ca, at: config.location.child("ca"))) }
        if let files = config.identity {
            let (chain, key) = try identity(files)
            tls.certificateChain = chain.map { .certificate($0) }
            tls.privateKey = .privateKey(key)
        }
        tls.certificateVerification = config.identities.isEmpty ? .fullVerification : .noHostnameVerification
        return try context(tls, at: config.location)
    }

    /// Every TLS file problem in `config`, each a `ConfigError` (empty: everything loads).
    public static func problems(in config: FerryConfig) -> [ConfigError] {
        var problems: [ConfigError] = []
        for listener in config.listeners {
            guard let tls = listener.tls else { continue }
            do { _ = try server(tls) } catch { problems.append(error) }
        }
        for service in config.services {
            guard let tls = service.tls else { continue }
            do { _ = try client(tls) } catch { problems.append(error) }
        }
        return problems
    }

    /// The leaf certificate's expiry (seconds since 1970) of each certificate file in `config`.
    public static func expiries(_ config: FerryConfig) -> [(owner: String, file: String, notAfter: Int)] {
        var out: [(String, String, Int)] = []
        func add(_ owner: String, _ files: CertificateFiles?) {
            guard let files, let leaf = try? NIOSSLCertificate.fromPEMFile(files.certificate).first else { return }
            out.append((owner, files.certificate, Int(leaf.notValidAfter)))
        }
        for listener in config.listeners { add("listener/\(listener.name)", listener.tls?.identity) }
        for service in config.services { add("service/\(service.name)", service.tls?.identity) }
        return out
    }

    // MARK: - Loading

    static func identity(_ files: CertificateFiles) throws(ConfigError) -> ([NIOSSLCertificate], NIOSSLPrivateKey) {
        let chain = try certificates(files.certificate, at: files.location)
        let keyText = try read(files.key, at: files.location)
        let key: NIOSSLPrivateKey
        do {
            key = try NIOSSLPrivateKey(bytes: keyText, format: .pem)
        } catch {
            throw files.location.error("\(files.key): not a PEM private key (\(describe(error)))")
        }
        // BoringSSL refuses a key that is not the certificate's when it is set on a context.
        var probe = TLSConfiguration.makeServerConfiguration(certificateChain: [.certificate(chain[0])], privateKey: .privateKey(key))
        probe.applicationProtocols = ["h2"]
        do {
            _ = try NIOSSLContext(configuration: probe)
        } catch NIOSSLError.failedToLoadPrivateKey {
            // The key parsed above: what fails is the pair (BoringSSL's KEY_VALUES_MISMATCH).
            throw files.location.error("\(files.key) is not the private key of \(files.certificate)")
        } catch {
            throw files.location.error("\(files.certificate) and \(files.key) cannot be used together: \(describe(error))")
        }
        let now = time(nil)
        if chain[0].notValidAfter < now {
            throw files.location.error("\(files.certificate) expired \(now - chain[0].notValidAfter) s ago")
        }
        return (chain, key)
    }

    private static func certificates(_ path: String, at location: ConfigLocation) throws(ConfigError) -> [NIOSSLCertificate] {
        let text = try read(path, at: location)
        guard text.firstRange(of: Array("-----BEGIN CERTIFICATE-----".utf8)) != nil else {
            throw location.error("\(path): no certificate in the file (expected PEM \"BEGIN CERTIFICATE\")")
        }
        let chain: [NIOSSLCertificate]
        do {
            chain = try NIOSSLCertificate.fromPEMBytes(text)
        } catch {
            throw location.error("\(path): not PEM certificates (\(describe(error)))")
        }
        guard !chain.isEmpty else { throw location.error("\(path): no certificate in the file (expected PEM \"BEGIN CERTIFICATE\")") }
        return chain
    }

    private static func read(_ path: String, at location: ConfigLocation) throws(ConfigError) -> [UInt8] {
        do {
            return try TextFile.bytes(path)
        } catch {
            throw location.error("cannot read \(path): \(error)")
        }
    }

    private static func context(_ configuration: TLSConfiguration, at location: ConfigLocation) throws(ConfigError) -> NIOSSLContext {
        do {
            return try NIOSSLContext(configuration: configuration)
        } catch {
            throw location.error("TLS setup failed: \(describe(error))")
        }
    }

    private static func version(_ setting: TLSVersionSetting) -> TLSVersion {
        setting == .v1_3 ? .tlsv13 : .tlsv12
    }

    /// swift-nio-ssl's errors, as a sentence (BoringSSL's reasons without the error-stack noise).
    static func describe(_ error: any Error) -> String {
        TLSErrorText.describe(error)
    }
}

extension ConfigLocation {
    /// The location of a key beside this one (`listeners[0].tls` -> `listeners[0].tls.client_ca`).
    func child(_ key: String) -> ConfigLocation {
        ConfigLocation(file: file, line: line, column: column, key: self.key.isEmpty ? key : "\(self.key).\(key)")
    }
}
