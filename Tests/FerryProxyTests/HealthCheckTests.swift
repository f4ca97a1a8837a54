@testable import FerryProxy
@testable import FerryUpstream
import FerryConfig
import FerryGRPC
import FerryH2
import FerryPolicy
import NIOCore
import XCTest

/// Active health checks on the in-memory call path: scripted upstreams answer
/// grpc.health.v1.Health/Check, time moves only when the test says.
final class HealthCheckTests: XCTestCase {
    private func serving(_ status: UInt8) -> ByteBuffer { ByteBuffer(bytes: [0, 0, 0, 0, 2, 0x08, status]) }

    private func checked(_ configure: @escaping (inout HealthCheckConfig) -> Void = { _ in }) -> (inout ServiceConfig) -> Void {
        { config in
            var check = HealthCheckConfig()
            check.interval = .milliseconds(100)
            check.timeout = .milliseconds(50)
            check.unhealthyThreshold = 2
            check.healthyThreshold = 2
            configure(&check)
            config.healthCheck = check
            config.balancer.kind = .roundRobin
        }
    }

    func testANotServingEndpointGetsNoCallsUntilItServesAgain() {
        let net = CallPathHarness()
        var status: UInt8 = 1
        let first = net.upstream(1) { path in path == GRPCHealthMessages.checkPath ? .reply(self.serving(status)) : .echo }
        let second = net.upstream(2) { path in path == GRPCHealthMessages.checkPath ? .reply(self.serving(1)) : .echo }
        let service = net.service([1, 2], configure: checked())
        let client = net.client(to: service)
        net.advance(by: .milliseconds(20))
        XCTAssertEqual(first.requests, [GRPCHealthMessages.checkPath], "the first check goes within a tenth of the interval")
        XCTAssertEqual(first.lastHeaders?.first("grpc-timeout"), "50m")
        status = 2
        net.advance(by: .milliseconds(100))
        XCTAssertTrue(service.pools[0].health.isAvailable(at: 0), "one failed check of two: still in")
        net.advance(by: .milliseconds(100))
        XCTAssertFalse(service.pools[0].health.isAvailable(at: 0), "two NOT_SERVING in a row: out")
        XCTAssertEqual(service.health.healthCheckSnapshot().first { $0.0.port == 1 }?.1, .unhealthy(reason: "the endpoint reports NOT_SERVING"))
        let before = first.requests.filter { $0 == "/p.S/M" }.count
        for _ in 0..<6 { XCTAssertEqual(client.call("/p.S/M").grpcStatus, 0) }
        XCTAssertEqual(first.requests.filter { $0 == "/p.S/M" }.count, before, "no calls to the unhealthy endpoint")
        XCTAssertEqual(second.requests.filter { $0 == "/p.S/M" }.count, 6)
        status = 1
        net.advance(by: .milliseconds(200))
        XCTAssertTrue(service.pools[0].health.isAvailable(at: 0), "two passes in a row: back")
        for _ in 0..<4 { _ = client.call("/p.S/M") }
        XCTAssertEqual(first.requests.filter { $0 == "/p.S/M" }.count, before + 2, "round-robin shares again")
    }

    func testAnEndpointThatDoesNotAnswerOrKnowTheServiceFails() {
        let net = CallPathHarness()
        net.upstream(1) { _ in .hang }
        net.upstream(2) { path in path == GRPCHealthMessages.checkPath ? .status(5) : .echo }
        let service = net.service([1, 2], configure: checked { $0.serviceName = "pkg.Svc"; $0.unhealthyThreshold = 1 })
        net.advance(by: .milliseconds(80))
        let states = Dictionary(service.health.healthCheckSnapshot().map { ($0.0.port, $0.1) }, uniquingKeysWith: { a, _ in a })
        XCTAssertEqual(states[1], .unhealthy(reason: "no answer within 50ms"))
        XCTAssertEqual(states[2], .unhealthy(reason: "the endpoint does not know the health of \"pkg.Svc\" (NOT_FOUND)"))
        XCTAssertEqual(net.upstreams[1]?.resetsReceived, [.cancel], "a check past its timeout is cancelled")
    }

    func testAnUnreachableEndpointFailsItsChecksAndEndpointsThatLeaveStopBeingChecked() {
        let net = CallPathHarness()
        net.refusedPorts = [1]
        let service = net.service([1], configure: checked { $0.unhealthyThreshold = 1 })
        net.advance(by: .milliseconds(30))
        guard case .unhealthy(let reason)? = service.health.healthCheckSnapshot().first?.1 else { return XCTFail() }
        XCTAssertTrue(reason.hasPrefix("connect failed") || reason.hasPrefix("no connection"), reason)
        service.setEndpoints([])
        let attempts = net.connectAttempts[1] ?? 0
        net.advance(by: .seconds(2))
        XCTAssertEqual(net.connectAttempts[1] ?? 0, attempts, "a retired endpoint is not checked")
    }

    func testAWatchStreamsStateAppliesTheMomentItChanges() {
        let net = CallPathHarness()
        let first = net.upstream(1) { path in path == GRPCHealthMessages.watchPath ? .stream : .echo }
        net.upstream(2) { path in path == GRPCHealthMessages.watchPath ? .stream : .echo }
        let service = net.service([1, 2], configure: checked { $0.watch = true; $0.interval = .seconds(10); $0.timeout = .seconds(2); $0.unhealthyThreshold = 3 })
        let client = net.client(to: service)
        net.advance(by: .seconds(1))   // the spread of the first check is within a tenth of the interval
        XCTAssertEqual(first.requests, [GRPCHealthMessages.watchPath], "one Watch stream, not a Check per interval")
        XCTAssertNil(first.lastHeaders?.first("grpc-timeout"), "a Watch stream has no deadline")
        first.push(serving(1))
        net.advance(by: .milliseconds(1))
        XCTAssertEqual(service.health.healthCheckSnapshot().first { $0.0.port == 1 }?.1, .healthy)
        first.push(serving(2))
        net.advance(by: .milliseconds(1))
        XCTAssertFalse(service.pools[0].health.isAvailable(at: 0), "NOT_SERVING applies at once, whatever unhealthy_threshold says")
        for _ in 0..<4 { XCTAssertEqual(client.call("/p.S/M").grpcStatus, 0) }
        XCTAssertEqual(first.requests.filter { $0 == "/p.S/M" }.count, 0)
        first.push(serving(1))
        net.advance(by: .milliseconds(1))
        XCTAssertTrue(service.pools[0].health.isAvailable(at: 0), "SERVING brings it back at once")
        XCTAssertEqual(first.requests.filter { $0 == GRPCHealthMessages.watchPath }.count, 1, "the same stream all along")
        XCTAssertEqual(first.openStreamCount, 1)
    }

    func testABrokenWatchStreamIsAFailedCheckAndIsOpenedAgainAfterTheInterval() {
        let net = CallPathHarness()
        let first = net.upstream(1) { path in path == GRPCHealthMessages.watchPath ? .stream : .echo }
        let service = net.service([1], configure: checked { $0.watch = true; $0.interval = .milliseconds(100); $0.unhealthyThreshold = 2 })
        net.advance(by: .milliseconds(20))
        first.push(serving(1))
        net.advance(by: .milliseconds(1))
        first.endStreams(grpcStatus: 0)
        net.advance(by: .milliseconds(1))
        XCTAssertTrue(service.pools[0].health.isAvailable(at: 0), "one broken stream of unhealthy_threshold 2")
        net.advance(by: .milliseconds(100))
        XCTAssertEqual(first.requests.filter { $0 == GRPCHealthMessages.watchPath }.count, 2, "a new stream after the interval")
        first.resetStreams()
        net.advance(by: .milliseconds(1))
        guard case .unhealthy(let reason)? = service.health.healthCheckSnapshot().first?.1 else { return XCTFail() }
        XCTAssertTrue(reason.hasPrefix("the Watch stream broke"), reason)
        net.advance(by: .milliseconds(100))
        first.push(serving(1))
        net.advance(by: .milliseconds(1))
        XCTAssertTrue(service.pools[0].health.isAvailable(at: 0), "the new stream's SERVING restores it")
    }

    func testAWatchThatGetsNoFirstAnswerInTimeFails() {
        let net = CallPathHarness()
        let first = net.upstream(1) { path in path == GRPCHealthMessages.watchPath ? .stream : .echo }
        let service = net.service([1], configure: checked { $0.watch = true; $0.unhealthyThreshold = 1 })
        net.advance(by: .milliseconds(80))
        XCTAssertEqual(service.health.healthCheckSnapshot().first?.1, .unhealthy(reason: "no answer within 50ms"))
        XCTAssertEqual(first.resetsReceived, [.cancel])
    }

    func testAServerWithoutWatchIsAskedCheck() {
        let net = CallPathHarness()
        let first = net.upstream(1) { path in
            switch path {
            case GRPCHealthMessages.watchPath: return .status(12)       // UNIMPLEMENTED
            case GRPCHealthMessages.checkPath: return .reply(self.serving(1))
            default: return .echo
            }
        }
        let service = net.service([1], configure: checked { $0.watch = true; $0.unhealthyThreshold = 1 })
        net.advance(by: .milliseconds(250))
        XCTAssertEqual(first.requests.first, GRPCHealthMessages.watchPath)
        XCTAssertEqual(first.requests.filter { $0 == GRPCHealthMessages.watchPath }.count, 1, "asked once")
        XCTAssertGreaterThanOrEqual(first.requests.filter { $0 == GRPCHealthMessages.checkPath }.count, 2, "then Check every interval")
        XCTAssertEqual(service.health.healthCheckSnapshot().first?.1, .healthy, "UNIMPLEMENTED for Watch is not a failed check")
    }

    func testPassiveAndActiveMustBothAgreeToRestore() {
        let net = CallPathHarness()
        let health = ServiceHealth(service: ServiceConfig(name: "s", endpoints: []))
        let endpoint = health.endpoint(HostPort(host: "h", port: 1))
        let thresholds = HealthCheckState.Settings(healthyThreshold: 1, unhealthyThreshold: 1)
        _ = endpoint.recordHealthCheck(failure: "down", settings: thresholds, at: 0)
        XCTAssertFalse(endpoint.isAvailable(at: 0))
        XCTAssertFalse(endpoint.admit(at: 0), "no probe call while its checks fail")
        _ = endpoint.recordHealthCheck(failure: nil, settings: thresholds, at: 0)
        XCTAssertTrue(endpoint.isAvailable(at: 0))
        for _ in 0..<7 { endpoint.recordFailure(at: 0) }
        XCTAssertTrue(endpoint.isEjected, "passing checks do not hold off passive ejection")
        XCTAssertFalse(endpoint.isAvailable(at: 0))
        _ = net
    }
}
