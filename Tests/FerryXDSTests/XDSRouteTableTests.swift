import FerryConfig
import FerryGRPC
@testable import FerryXDS
import XCTest

/// Route tables written by Envoy's own classes (EnvoyEncodedMessages), taken into Ferry's routes.
final class XDSRouteTableTests: XCTestCase {
    private func problem(_ bytes: [UInt8]) -> String? {
        if case .failure(let problem) = XDSRouteTable.decode(bytes[...]) { return problem.description }
        return nil
    }

    func testVirtualHostsKeepTheirDomainsAndRoutesInOrderWithMatchesBackendsAndPolicies() throws {
        let table = try XDSRouteTable.decode(EnvoyEncodedMessages.routeTable[...]).get()
        XCTAssertEqual(table.name, "local")
        XCTAssertEqual(table.virtualHosts.map(\.name), ["echo", "any"])
        XCTAssertEqual(table.virtualHosts[0].domains.map(\.description), ["echo.svc", "*.echo.svc:8080"])
        XCTAssertEqual(table.virtualHosts[1].domains, [.any])
        XCTAssertEqual(table.clusterNames, ["slow", "a", "b", "echo", "default"])

        let routes = table.virtualHosts[0].routes
        XCTAssertEqual(routes.map(\.name), ["slow", "canary", "rest"])
        XCTAssertEqual(routes[0].route.match, RouteMatch(path: .grpcMethod(service: "echo.Echo", method: "Slow")))
        XCTAssertEqual(routes[0].policy.timeout, nil, "timeout 0 is none")
        XCTAssertEqual(routes[0].policy.callerTimeout, .honoured(max: .seconds(5), offset: .milliseconds(50)))
        XCTAssertNil(routes[0].policy.retry)

        XCTAssertEqual(routes[1].route.match, RouteMatch(path: .prefix("/echo.Echo/"), headers: [
            HeaderMatch(name: "x-canary", kind: .exact("1")),
            HeaderMatch(name: "x-user", kind: .prefix("team-")),
            HeaderMatch(name: "x-trace", kind: .present),
        ]))
        XCTAssertEqual(routes[1].route.backends, [WeightedService(service: "a", weight: 90), WeightedService(service: "b", weight: 10)],
                       "a weight of 0 takes no calls")
        XCTAssertEqual(routes[1].policy.timeout, .seconds(15), "Envoy's default route timeout")
        XCTAssertEqual(routes[1].policy.callerTimeout, .ignored)

        XCTAssertEqual(routes[2].route.match, RouteMatch(headers: [HeaderMatch(name: "content-type", kind: .prefix("application/grpc"))]))
        XCTAssertEqual(routes[2].policy.timeout, .seconds(3))
        let retry = try XCTUnwrap(routes[2].policy.retry)
        XCTAssertEqual(retry.on, [.unavailable, .cancelled])
        XCTAssertEqual(retry.maxAttempts, 3)
        XCTAssertEqual(retry.perTryTimeout, .seconds(1))
        XCTAssertEqual(retry.backoffBase, .milliseconds(10))
        XCTAssertEqual(retry.backoffMax, .milliseconds(100))
        XCTAssertEqual(table.ignored, ["retry_on \"retriable-4xx\""])

        // The virtual host's retry policy applies to its routes that have none.
        let fallback = table.virtualHosts[1].routes[0]
        XCTAssertEqual(fallback.route.match, RouteMatch())
        XCTAssertEqual(fallback.policy.retry?.on, [.unavailable])
        XCTAssertEqual(fallback.policy.retry?.maxAttempts, 2, "num_retries defaults to 1")
    }

    func testWhatFerryCannotMatchOrDoIsAProblemNamedByField() {
        XCTAssertEqual(problem(EnvoyEncodedMessages.regexRouteTable), "virtual_hosts[0].routes[0].match.safe_regex: is not supported")
        XCTAssertEqual(problem(EnvoyEncodedMessages.redirectRouteTable),
                       "virtual_hosts[0].routes[0].redirect: is not supported: Ferry forwards calls to clusters")
        XCTAssertEqual(problem(EnvoyEncodedMessages.negativeTimeoutRouteTable),
                       "virtual_hosts[0].routes[0].route.timeout: is negative (-5 s, 0 ns)")
        XCTAssertEqual(problem(EnvoyEncodedMessages.duplicateDomainRouteTable), "virtual_hosts[1].domains: \"a.svc\" is in two virtual hosts")
    }
}
