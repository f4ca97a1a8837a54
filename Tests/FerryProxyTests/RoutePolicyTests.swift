@testable import FerryProxy
import FerryConfig
import FerryGRPC
import NIOCore
import XCTest

/// A route's own call policy (xDS routes carry timeouts and retries) is taken over its
/// service's, and a route with no backends answers as no route, on the whole call path.
final class RoutePolicyTests: XCTestCase {
    private func route(_ method: String, timeout: Duration? = nil, retries: Int? = nil) -> RouteConfig {
        var route = RouteConfig(match: RouteMatch(path: .grpcMethod(service: "p.S", method: method)), service: "s")
        if timeout != nil || retries != nil {
            var policy = CallPolicy(origin: "xds route t/h/\(method)")
            policy.timeout = timeout
            if let retries { policy.retry.maxAttempts = retries + 1 }
            route.policy = policy
        }
        return route
    }

    func testARoutesTimeoutEndsItsCallsWhileTheServicesOtherCallsHaveNone() {
        let net = CallPathHarness()
        net.upstream(1) { _ in .hang }
        let client = net.client(to: net.service([1]), routes: [route("Slow", timeout: .milliseconds(200)), route("Other")])
        let bounded = client.call("/p.S/Slow")
        let unbounded = client.call("/p.S/Other")
        net.advance(by: .milliseconds(199))
        XCTAssertNil(bounded.grpcStatus)
        net.advance(by: .milliseconds(1))
        XCTAssertEqual(bounded.grpcStatus, GRPCStatusCode.deadlineExceeded.rawValue)
        net.advance(by: .seconds(30))
        XCTAssertNil(unbounded.grpcStatus, "the service has no timeout; only the route had one")
    }

    /// Envoy's grpc_timeout_header_max: a caller's grpc-timeout replaces the route's timeout
    /// (longer or shorter), up to the cap; a caller without one gets the route's.
    func testACallersTimeoutReplacesTheRoutesUpToTheCapWhenTheRouteSaysSo() {
        let net = CallPathHarness()
        net.upstream(1) { _ in .hang }
        var route = route("Capped", timeout: .milliseconds(100))
        route.policy?.callerTimeoutCap = .some(.seconds(5))
        let client = net.client(to: net.service([1]), routes: [route])
        let without = client.call("/p.S/Capped")
        let longer = client.call("/p.S/Capped", timeout: "1S")
        let beyondCap = client.call("/p.S/Capped", timeout: "10S")
        net.advance(by: .milliseconds(100))
        XCTAssertEqual(without.grpcStatus, GRPCStatusCode.deadlineExceeded.rawValue, "no caller timeout: the route's 100 ms")
        XCTAssertNil(longer.grpcStatus, "the caller's 1 s replaces the route's 100 ms")
        net.advance(by: .milliseconds(900))
        XCTAssertEqual(longer.grpcStatus, GRPCStatusCode.deadlineExceeded.rawValue)
        XCTAssertNil(beyondCap.grpcStatus)
        net.advance(by: .seconds(4))
        XCTAssertEqual(beyondCap.grpcStatus, GRPCStatusCode.deadlineExceeded.rawValue, "10 s asked, capped at 5 s")
    }

    func testARouteWithoutRetriesDoesNotRetryWhereTheServiceWould() {
        let net = CallPathHarness()
        let first = net.upstream(1) { _ in .status(14) }
        let second = net.upstream(2) { _ in .echo }
        // The service retries UNAVAILABLE (Ferry's default policy); the route says no retries.
        let client = net.client(to: net.service([1, 2]) { $0.balancer.kind = .roundRobin }, routes: [route("Once", retries: 0), route("Again")])
        XCTAssertEqual(client.call("/p.S/Once").grpcStatus, 14)
        net.advance(by: .seconds(1))
        XCTAssertEqual(first.requests.count + second.requests.count, 1, "the route's policy was not taken")
        let retried = client.call("/p.S/Again")
        net.advance(by: .seconds(1))
        XCTAssertEqual(retried.grpcStatus, 0, "the service's own policy retries the other route's calls")
    }

    func testInOrderAFirstMatchWinsAndARouteWithNoBackendsIsNoRoute() {
        let net = CallPathHarness()
        let upstream = net.upstream(1) { _ in .echo }
        let stop = RouteConfig(match: RouteMatch(path: .grpcService("p.S")), split: [])
        let client = net.client(to: net.service([1]), routes: [route("M"), stop, RouteConfig(match: RouteMatch(), service: "s")],
                                order: .asWritten)
        XCTAssertEqual(client.call("/p.S/M").grpcStatus, 0)
        XCTAssertEqual(client.call("/p.S/Other").grpcStatus, GRPCStatusCode.unimplemented.rawValue, "the stop route ends the search")
        XCTAssertEqual(client.call("/q.T/Any").grpcStatus, 0, "what the stop route does not match goes on to the default")
        XCTAssertEqual(upstream.requests, ["/p.S/M", "/q.T/Any"])
    }
}
