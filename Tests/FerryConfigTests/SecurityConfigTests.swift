import FerryConfig
import XCTest

final class SecurityConfigTests: XCTestCase {
    func pattern(_ text: String) throws -> IdentityPattern { try IdentityPattern.parse(text).get() }

    func testIdentityPatternsMatchExactlyByTrustDomainAndByPathPrefix() throws {
        let web = "spiffe://ferry.test/ns/shop/sa/web"
        XCTAssertTrue(try pattern(web).matches(web))
        XCTAssertFalse(try pattern(web).matches(web + "2"))
        XCTAssertTrue(try pattern("SPIFFE://Ferry.Test/ns/shop/sa/web").matches(web), "scheme and trust domain ignore case")
        XCTAssertFalse(try pattern("spiffe://ferry.test/ns/shop/sa/Web").matches(web), "the path does not")
        XCTAssertTrue(try pattern("spiffe://ferry.test").matches(web))
        XCTAssertFalse(try pattern("spiffe://ferry.test").matches("spiffe://ferry.testing/ns/a/sa/b"))
        XCTAssertTrue(try pattern("spiffe://ferry.test/ns/shop/*").matches(web))
        XCTAssertFalse(try pattern("spiffe://ferry.test/ns/shop/*").matches("spiffe://ferry.test/ns/shopping/sa/x"))
        XCTAssertTrue(try pattern("*").matches("anything.example"))
        XCTAssertTrue(try pattern("Web.Shop.svc").matches("web.shop.svc"), "DNS names ignore case")
    }

    func testMalformedIdentityPatternsAreRefusedWithTheReason() {
        for bad in ["spiffe://", "spiffe:///ns/a", "spiffe://td/ns/*/sa/x", "spiffe://td/ns/a*", "web*.svc", "two words", ""] {
            guard case .failure(let why) = IdentityPattern.parse(bad) else { return XCTFail("\(bad) parsed") }
            XCTAssertFalse(why.description.isEmpty)
        }
    }

    func testAPolicyPermitsListedIdentitiesAndUnauthenticatedCallersOnlyWhenItSays() throws {
        let policy = AuthorizationPolicy(allow: [try pattern("spiffe://td/ns/a/*")], allowUnauthenticated: false, name: "p")
        XCTAssertTrue(policy.permits("spiffe://td/ns/a/sa/x"))
        XCTAssertFalse(policy.permits("spiffe://td/ns/b/sa/x"))
        XCTAssertFalse(policy.permits(nil))
        XCTAssertTrue(AuthorizationPolicy(allow: [], allowUnauthenticated: true, name: "open").permits(nil))
    }

    let secured = """
    listeners:
      - name: inbound
        address: 0.0.0.0:4143
        tls:
          certificate: certs/node.pem
          key: /etc/ferry/node-key.pem
          client_ca: certs/ca.pem
          min_version: "1.3"
        authorization:
          allow: ["spiffe://td/ns/shop/*"]
        routes:
          - match: {method: pay.Payments/Refund}
            service: local
            authorization: {allow: ["spiffe://td/ns/shop/sa/admin"]}
          - {service: local}
    services:
      local:
        endpoints: ["127.0.0.1:8080"]
      remote:
        endpoints: ["10.0.0.2:4143"]
        tls:
          ca: certs/ca.pem
          certificate: certs/node.pem
          key: certs/node-key.pem
          identities: ["spiffe://td/ns/shop/sa/payments"]
      public:
        endpoints: ["api.example.com:443"]
        tls: true
    """

    func testTLSAndAuthorizationSectionsDecodeWithPathsResolvedBesideTheConfig() throws {
        let config = try ConfigLoader.parse(yaml: secured, source: "/etc/ferry/ferry.yaml", directory: "/etc/ferry")
        let inbound = config.listeners[0]
        let tls = try XCTUnwrap(inbound.tls)
        XCTAssertEqual(tls.identity.certificate, "/etc/ferry/certs/node.pem")
        XCTAssertEqual(tls.identity.key, "/etc/ferry/node-key.pem")
        XCTAssertEqual(tls.clientCA, "/etc/ferry/certs/ca.pem")
        XCTAssertEqual(tls.clientCertificates, .required)
        XCTAssertEqual(tls.minVersion, .v1_3)
        XCTAssertEqual(tls.identity.location.line, 5)
        XCTAssertEqual(inbound.authorization?.name, "listeners.inbound.authorization")
        XCTAssertEqual(inbound.routes[0].authorization?.allow, [.exact("spiffe://td/ns/shop/sa/admin")])
        XCTAssertEqual(inbound.routes[0].authorization?.name, "listeners.inbound.routes[0].authorization")
        XCTAssertNil(inbound.routes[1].authorization)
        let remote = try XCTUnwrap(config.service(named: "remote")?.tls)
        XCTAssertEqual(remote.ca, "/etc/ferry/certs/ca.pem")
        XCTAssertEqual(remote.identities, [.exact("spiffe://td/ns/shop/sa/payments")])
        XCTAssertEqual(remote.identity?.key, "/etc/ferry/certs/node-key.pem")
        let publicTLS = try XCTUnwrap(config.service(named: "public")?.tls)
        XCTAssertNil(publicTLS.ca)
        XCTAssertTrue(publicTLS.identities.isEmpty)
        XCTAssertNil(config.service(named: "local")?.tls)
        XCTAssertEqual(config.tlsFiles, ["/etc/ferry/certs/node.pem", "/etc/ferry/node-key.pem", "/etc/ferry/certs/ca.pem",
                                         "/etc/ferry/certs/node-key.pem"])
    }

    func assertError(_ yaml: String, line: Int, key: String, contains text: String, file: StaticString = #filePath, at: UInt = #line) {
        XCTAssertThrowsError(try ConfigLoader.parse(yaml: yaml, source: "f.yaml"), file: file, line: at) { error in
            guard let error = error as? ConfigError else { return XCTFail("\(error)", file: file, line: at) }
            XCTAssertEqual(error.line, line, "\(error)", file: file, line: at)
            XCTAssertEqual(error.key, key, "\(error)", file: file, line: at)
            XCTAssertTrue(error.message.contains(text), "\(error)", file: file, line: at)
        }
    }

    func testSecurityMistakesNameTheLineAndKey() {
        let head = "listeners:\n  - name: l\n    address: 127.0.0.1:1\n    service: s\n"
        let tail = "services:\n  s: {endpoints: [\"127.0.0.1:2\"]}\n"
        assertError(head + "    tls: {certificate: a.pem}\n" + tail, line: 5, key: "listeners[0].tls", contains: "missing required key \"key\"")
        assertError(head + "    tls: {certificate: a.pem, key: k.pem, client_certificates: optional}\n" + tail,
                    line: 5, key: "listeners[0].tls.client_certificates", contains: "set client_ca too")
        assertError(head + "    tls: {certificate: a.pem, key: k.pem, min_version: \"1.1\"}\n" + tail,
                    line: 5, key: "listeners[0].tls.min_version", contains: "\"1.2\" or \"1.3\"")
        assertError(head + "    authorization: {}\n" + tail, line: 5, key: "listeners[0].authorization", contains: "lets no one in")
        assertError(head + "    authorization:\n      allow: [\"spiffe://td/*/x\"]\n" + tail,
                    line: 6, key: "listeners[0].authorization.allow[0]", contains: "'*' may only end a pattern")
        assertError(head + "    authorization:\n      allow: [\"spiffe://td/ns/a/*\"]\n" + tail,
                    line: 6, key: "listeners[0].authorization.allow", contains: "needs tls with client_ca")
        assertError(head + "services:\n  s:\n    endpoints: [\"127.0.0.1:2\"]\n    tls: {certificate: c.pem}\n",
                    line: 8, key: "services.s.tls.certificate", contains: "needs its private key")
        assertError(head + "services:\n  s:\n    endpoints: [\"127.0.0.1:2\"]\n    tls: {server_name: \"https://x\"}\n",
                    line: 8, key: "services.s.tls.server_name", contains: "a DNS name")
        assertError(head + "services:\n  s:\n    endpoints: [\"127.0.0.1:2\"]\n    tls: false\n",
                    line: 8, key: "services.s.tls", contains: "leave tls out")
    }
}
