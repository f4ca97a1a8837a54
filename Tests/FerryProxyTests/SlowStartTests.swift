@testable import FerryProxy
@testable import FerryUpstream
import FerryConfig
import FerryDiscovery
import FerryH2
import NIOCore
import XCTest

/// Slow start on the in-memory call path: an endpoint that joins beside serving ones gets a
/// share of calls that grows over the window; at start nobody warms up.
final class SlowStartTests: XCTestCase {
    private func slowly(_ config: inout ServiceConfig) {
        var slow = SlowStartConfig()
        slow.window = .seconds(10)
        slow.minWeightPercent = 10
        config.slowStart = slow
        config.balancer.kind = .roundRobin
    }

    private func calls(to port: Int, of count: Int, _ client: TestClient, _ net: CallPathHarness) -> Int {
        let before = net.upstreams[port]?.requests.count ?? 0
        for _ in 0..<count { XCTAssertEqual(client.call("/p.S/M").grpcStatus, 0) }
        return (net.upstreams[port]?.requests.count ?? 0) - before
    }

    func testAJoiningEndpointRampsOverTheWindow() {
        let net = CallPathHarness()
        for port in 1...3 { net.upstream(port) { _ in .echo } }
        let service = net.service([1, 2], configure: slowly)
        let client = net.client(to: service)
        XCTAssertEqual(calls(to: 1, of: 100, client, net), 50, "at start every endpoint is new: none warms up")
        service.setEndpoints((1...3).map { Endpoint(host: "127.0.0.1", port: $0, weight: 1) })
        // Weights 1, 1 and 0.1: the new one has 0.1 / 2.1 of the calls.
        XCTAssertEqual(calls(to: 3, of: 210, client, net), 10, accuracy: 1)
        net.advance(by: .seconds(5))
        // Half way: 0.5 / 2.5.
        XCTAssertEqual(calls(to: 3, of: 250, client, net), 50, accuracy: 2)
        net.advance(by: .seconds(5))
        XCTAssertEqual(calls(to: 3, of: 300, client, net), 100, accuracy: 1, "after the window: an equal share")
    }

    func testAnEndpointBackFromAnEjectionWarmsUp() {
        let net = CallPathHarness()
        for port in 1...2 { net.upstream(port) { _ in .echo } }
        let service = net.service([1, 2], configure: slowly)
        let pool = service.pools[1]
        XCTAssertEqual(pool.warmUpShare(at: net.clock.now()), 1)
        for _ in 0..<7 { pool.health.recordFailure(at: net.clock.now()) }
        XCTAssertTrue(pool.health.isEjected)
        guard case .ejected(let until, _) = pool.health.accrualState else { return XCTFail("\(pool.health.accrualState)") }
        XCTAssertTrue(pool.health.admit(at: until))
        pool.health.recordSuccess(at: until)                 // its probe passed
        XCTAssertEqual(pool.warmUpShare(at: until), 0.1, accuracy: 0.001)
        XCTAssertEqual(pool.warmUpShare(at: until + 5_000_000_000), 0.5, accuracy: 0.001)
        XCTAssertEqual(pool.warmUpShare(at: until + 10_000_000_000), 1)
    }

    func testWithoutSlowStartAJoiningEndpointGetsItsShareAtOnce() {
        let net = CallPathHarness()
        for port in 1...3 { net.upstream(port) { _ in .echo } }
        let service = net.service([1, 2]) { $0.balancer.kind = .roundRobin }
        let client = net.client(to: service)
        service.setEndpoints((1...3).map { Endpoint(host: "127.0.0.1", port: $0, weight: 1) })
        XCTAssertEqual(calls(to: 3, of: 300, client, net), 100)
    }
}
