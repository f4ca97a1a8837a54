import FerryConfig
@testable import FerryXDS
import XCTest

/// Clusters written by Envoy's own classes (EnvoyEncodedMessages), taken into Ferry's services.
final class XDSClusterTests: XCTestCase {
    private func cluster(_ bytes: [UInt8]) throws -> XDSCluster { try XDSCluster.decode(bytes[...]).get() }

    private func problem(_ bytes: [UInt8]) -> String? {
        if case .failure(let problem) = XDSCluster.decode(bytes[...]) { return problem.description }
        return nil
    }

    func testAnEDSClusterBecomesAServiceWithItsPoolBalancerAccrualLimitsAndBudget() throws {
        let echo = try cluster(EnvoyEncodedMessages.edsCluster)
        XCTAssertEqual(echo.endpoints, .eds("echo-eds"))
        XCTAssertEqual(echo.service.name, "echo")
        XCTAssertEqual(echo.service.discovery, .static([]))
        XCTAssertEqual(echo.service.pool.connectTimeout, .milliseconds(250))
        XCTAssertEqual(echo.service.balancer.kind, .p2cLeastRequest)
        XCTAssertEqual(echo.service.maxConcurrentCalls, 500)
        XCTAssertEqual(echo.service.retryBudget.retryPercent, 0.25)
        XCTAssertEqual(echo.service.failureAccrual.consecutiveFailures, 3)
        XCTAssertEqual(echo.service.failureAccrual.minBackoff, .seconds(2))
        XCTAssertEqual(echo.service.failureAccrual.maxBackoff, .seconds(300))
        XCTAssertEqual(echo.service.failureAccrual.maxEjectedPercent, 50)
        XCTAssertNil(echo.service.failureAccrual.successRate, "enforcing_success_rate 0")
        XCTAssertEqual(echo.service.pool.http2.initialStreamWindow, 1 << 20)
        XCTAssertEqual(echo.service.pool.http2.maxConcurrentStreams, 200)
        XCTAssertEqual(echo.ignored, [])
    }

    func testADNSClusterResolvesItsOneNameAndOutlierDetectionTakesEnvoysDefaults() throws {
        let dns = try cluster(EnvoyEncodedMessages.dnsCluster)
        var expected = DNSDiscoveryConfig(name: "echo.svc.cluster.local")
        expected.port = 50051
        XCTAssertEqual(dns.service.discovery, .dns(expected))
        XCTAssertEqual(dns.endpoints, .inCluster)
        XCTAssertEqual(dns.service.balancer.kind, .p2cPeakEWMA, "ROUND_ROBIN, the wire's default, is Ferry's default")
        let accrual = dns.service.failureAccrual
        XCTAssertEqual(accrual.consecutiveFailures, 5)
        XCTAssertEqual(accrual.minBackoff, .seconds(30))
        XCTAssertEqual(accrual.maxEjectedPercent, 10)
        XCTAssertEqual(accrual.successRate?.interval, .seconds(10))
        XCTAssertEqual(accrual.successRate?.minEndpoints, 5)
        XCTAssertEqual(accrual.successRate?.minRequests, 100)
        XCTAssertEqual(accrual.successRate?.stdevFactor, 1.9)
    }

    func testAStaticClusterCarriesItsEndpointsAndWithoutOutlierDetectionKeepsFerrysAccrual() throws {
        let fixed = try cluster(EnvoyEncodedMessages.staticCluster)
        XCTAssertEqual(fixed.service.discovery, .static([
            EndpointConfig(address: HostPort(host: "127.0.0.1", port: 7001)),
            EndpointConfig(address: HostPort(host: "127.0.0.1", port: 7002), weight: 4),
        ]))
        XCTAssertEqual(fixed.service.failureAccrual, FailureAccrualConfig())
        XCTAssertEqual(fixed.service.pool.connectTimeout, PoolConfig().connectTimeout)
    }

    func testWhatWouldChangeRoutingOrProtectionAndFerryCannotDoIsAProblemNamedByField() {
        XCTAssertEqual(problem(EnvoyEncodedMessages.maglevCluster),
                       "lb_policy: MAGLEV is not supported (ROUND_ROBIN, which Ferry reads as its P2C PeakEWMA, and LEAST_REQUEST are)")
        XCTAssertEqual(problem(EnvoyEncodedMessages.negativeTimeoutCluster), "connect_timeout: is negative (-1 s, 0 ns)")
        XCTAssertEqual(problem(EnvoyEncodedMessages.http1Cluster),
                       "typed_extension_protocol_options[envoy.extensions.upstreams.http.v3.HttpProtocolOptions].explicit_http_config.http_protocol_options: asks for HTTP/1.1: Ferry speaks HTTP/2 to upstreams")
        XCTAssertEqual(problem([]), "name: is empty")
    }
}
