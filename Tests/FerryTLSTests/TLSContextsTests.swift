import FerryConfig
@testable import FerryTLS
import NIOSSL
import XCTest

/// The certificates in `certs/` were made by `scripts/make-certs --days 36500` (the CA keys
/// were not kept): `server` (spiffe://ferry.test/ns/prod/sa/server) and `client` from `ca`,
/// `old` from `ca` but expired, `rogue` from `rogue-ca`.
final class TLSContextsTests: XCTestCase {
    static let certs = URLPath.directory(of: #filePath) + "/certs"
    let at = ConfigLocation(file: "ferry.yaml", line: 7, column: 7, key: "listeners[0].tls.certificate")

    func files(_ certificate: String, _ key: String) -> CertificateFiles {
        CertificateFiles(certificate: "\(Self.certs)/\(certificate).pem", key: "\(Self.certs)/\(key)-key.pem", location: at)
    }

    func listener(_ certificate: String, _ key: String, clientCA: String? = "ca") -> ListenerTLSConfig {
        var tls = ListenerTLSConfig(identity: files(certificate, key),
                                    location: ConfigLocation(file: "ferry.yaml", line: 6, column: 5, key: "listeners[0].tls"))
        tls.clientCA = clientCA.map { "\(Self.certs)/\($0).pem" }
        return tls
    }

    func assertProblem(_ build: () throws(ConfigError) -> NIOSSLContext, line: Int, contains text: String,
                       file: StaticString = #filePath, at: UInt = #line) {
        do {
            _ = try build()
            XCTFail("built a context", file: file, line: at)
        } catch {
            XCTAssertEqual(error.file, "ferry.yaml", file: file, line: at)
            XCTAssertEqual(error.line, line, "\(error)", file: file, line: at)
            XCTAssertTrue(error.message.contains(text), "\(error)", file: file, line: at)
        }
    }

    func testGoodFilesMakeServerAndClientContexts() throws {
        _ = try TLSContexts.server(listener("server", "server"))
        var upstream = UpstreamTLSConfig(location: at)
        upstream.ca = "\(Self.certs)/ca.pem"
        upstream.identity = files("client", "client")
        _ = try TLSContexts.client(upstream)
    }

    func testAKeyThatIsNotTheCertificatesIsRefusedByName() {
        assertProblem({ () throws(ConfigError) in try TLSContexts.server(listener("server", "client")) }, line: 7,
                      contains: "client-key.pem is not the private key of \(Self.certs)/server.pem")
    }

    func testAnExpiredCertificateIsRefused() {
        assertProblem({ () throws(ConfigError) in try TLSContexts.server(listener("old", "old")) }, line: 7, contains: "old.pem expired")
    }

    func testMissingAndMalformedFilesSayWhich() {
        assertProblem({ () throws(ConfigError) in try TLSContexts.server(listener("nowhere", "server")) }, line: 7,
                      contains: "cannot read \(Self.certs)/nowhere.pem")
        // A key file given as the certificate: no certificate in it.
        var swapped = listener("server", "server")
        swapped.identity.certificate = "\(Self.certs)/server-key.pem"
        assertProblem({ () throws(ConfigError) in try TLSContexts.server(swapped) }, line: 7, contains: "no certificate in the file")
        var badKey = listener("server", "server")
        badKey.identity.key = "\(Self.certs)/ca.pem"
        assertProblem({ () throws(ConfigError) in try TLSContexts.server(badKey) }, line: 7, contains: "not a PEM private key")
        assertProblem({ () throws(ConfigError) in try TLSContexts.server(listener("server", "server", clientCA: "absent")) },
                      line: 6, contains: "cannot read \(Self.certs)/absent.pem")
    }

    func testTheIdentityIsTheSPIFFEIDElseTheFirstDNSName() throws {
        let server = try NIOSSLCertificate.fromPEMFile("\(Self.certs)/server.pem")
        XCTAssertEqual(server.count, 2, "leaf then CA")
        XCTAssertEqual(WorkloadIdentity.of(server[0]), "spiffe://ferry.test/ns/prod/sa/server")
        // The CA carries only its trust domain as URI SAN.
        XCTAssertEqual(WorkloadIdentity.of(server[1]), "spiffe://ferry.test")
    }

    func testServerNamesMatchDNSNamesOnly() throws {
        let server = try NIOSSLCertificate.fromPEMFile("\(Self.certs)/server.pem")[0]
        XCTAssertEqual(WorkloadIdentity.dnsNames(server), ["server", "localhost"])
        XCTAssertTrue(WorkloadIdentity.hasDNSName("LocalHost.", server))
        XCTAssertFalse(WorkloadIdentity.hasDNSName("127.0.0.1", server), "an IP SAN is not a DNS name")
        XCTAssertFalse(WorkloadIdentity.hasDNSName("somebody-else", server))
    }

    func testBoringSSLReasonsReadAsWords() {
        XCTAssertEqual(TLSErrorText.reason(of: "Error: 268435581 error:1000007d:SSL routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED at /x/handshake.cc:1"),
                       "certificate verify failed")
        XCTAssertEqual(TLSErrorText.reason(of: "Error:  EOF during handshake"), "EOF during handshake")
    }

    func testExpiriesListEachPresentedCertificate() throws {
        var config = FerryConfig(admin: nil, runtime: RuntimeConfig(),
                                 listeners: [ListenerConfig(name: "in", address: HostPort(host: "127.0.0.1", port: 1), service: "s")],
                                 services: [ServiceConfig(name: "s", endpoints: [])], source: "ferry.yaml")
        config.listeners[0].tls = listener("server", "server")
        let expiries = TLSContexts.expiries(config)
        XCTAssertEqual(expiries.count, 1)
        XCTAssertEqual(expiries[0].owner, "listener/in")
        XCTAssertGreaterThan(expiries[0].notAfter, Int(time(nil)) + 50 * 365 * 86400)
    }
}

enum URLPath {
    static func directory(of path: String) -> String {
        String(path[..<(path.lastIndex(of: "/") ?? path.endIndex)])
    }
}
