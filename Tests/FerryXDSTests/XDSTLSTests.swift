import FerryConfig
@testable import FerryXDS
import XCTest

/// TLS contexts Envoy's classes wrote, taken into Ferry's TLS settings or refused by field.
final class XDSTLSTests: XCTestCase {
    private func clusterProblem(_ bytes: [UInt8]) -> String? {
        if case .failure(let problem) = XDSCluster.decode(bytes[...]) { return problem.description }
        return nil
    }

    func testAnUpstreamTLSContextOfFilesBecomesTheServicesMutualTLS() throws {
        let cluster = try XDSCluster.decode(EnvoyEncodedMessages.tlsCluster[...]).get()
        let tls = try XCTUnwrap(cluster.service.tls)
        XCTAssertEqual(tls.ca, "/etc/ferry/certs/ca.pem")
        XCTAssertEqual(tls.identity?.certificate, "/etc/ferry/certs/node.pem")
        XCTAssertEqual(tls.identity?.key, "/etc/ferry/certs/node-key.pem")
        XCTAssertEqual(tls.serverName, "echo.default.svc")
        XCTAssertEqual(tls.identities, [.exact("spiffe://ferry.test/ns/default/sa/echo")])
        XCTAssertEqual(tls.minVersion, .v1_3)
        XCTAssertEqual(tls.location.file, "xDS cluster static", "errors reading the files name the resource")
    }

    func testWhatFerryCannotVerifyTheWayXDSSaysIsAProblemNamingTheField() {
        XCTAssertEqual(clusterProblem(EnvoyEncodedMessages.sdsCluster),
                       "transport_socket.typed_config.common_tls_context.tls_certificate_sds_secret_configs: is not supported: "
                       + "Ferry takes certificates and trust bundles as files named in the resource")
        XCTAssertEqual(clusterProblem(EnvoyEncodedMessages.inlineKeyCluster),
                       "transport_socket.typed_config.common_tls_context.tls_certificates[0].private_key: is inline_string: "
                       + "Ferry reads certificates and keys from files (filename)")
    }

    func testADownstreamTLSContextRequiringClientCertificatesBecomesTheListenersTLSAndWhoMayCall() throws {
        let listener = try XDSListener.decode(EnvoyEncodedMessages.mtlsListener[...]).get()
        let tls = try XCTUnwrap(listener.tls)
        XCTAssertEqual(tls.identity.certificate, "/etc/ferry/certs/node.pem")
        XCTAssertEqual(tls.clientCA, "/etc/ferry/certs/ca.pem")
        XCTAssertEqual(tls.clientCertificates, .required)
        XCTAssertEqual(tls.minVersion, .v1_3)
        XCTAssertEqual(listener.authorization?.allow, [.prefix("spiffe://ferry.test/ns/default/")])
        XCTAssertEqual(listener.authorization?.allowUnauthenticated, false)

        var file = FerryConfig(admin: nil, runtime: RuntimeConfig(), listeners: [], services: [], source: "ferry.yaml")
        file.xds = XDSConfig(server: HostPort(host: "127.0.0.1", port: 1), node: .init(id: "n", cluster: ""))
        var cache = XDSResourceCache()
        XDSResourceCacheTests.take(XDSResourceCacheTests.response(.listener, version: "1", [EnvoyEncodedMessages.mtlsListener]), into: &cache)
        let built = XDSConfigBuilder.config(file: file, resources: cache)
        XCTAssertEqual(built.listeners.first?.tls, tls)
        XCTAssertEqual(built.listeners.first?.authorization, listener.authorization)
    }
}
