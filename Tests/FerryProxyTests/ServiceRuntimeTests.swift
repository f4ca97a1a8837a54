@testable import FerryProxy
import FerryConfig
import FerryDiscovery
import Logging
import NIOEmbedded
import XCTest

/// Endpoint and configuration changes applied to one event loop's view of a service.
final class ServiceRuntimeTests: XCTestCase {
    private let loop = EmbeddedEventLoop()
    private let logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })

    private func endpoint(_ port: Int, weight: Int = 1) -> Endpoint { Endpoint(host: "127.0.0.1", port: port, weight: weight) }

    private func runtime(_ config: ServiceConfig, _ ports: [Int]) -> ServiceRuntime {
        ServiceRuntime(config: config, health: ServiceHealth(service: config), sourceID: 1, endpoints: ports.map { endpoint($0) },
                       eventLoop: loop, loopIndex: 0, logger: logger)
    }

    func testEndpointChangesKeepThePoolsOfEndpointsThatStay() {
        let service = runtime(ServiceConfig(name: "s", endpoints: []), [1, 2])
        let kept = service.pools[1]
        service.setEndpoints([endpoint(2, weight: 5), endpoint(3)])
        XCTAssertEqual(service.pools.map(\.address.port), [2, 3])
        XCTAssertTrue(service.pools[0] === kept, "the pool (and its connections) of an endpoint that stays is kept")
        XCTAssertEqual(kept.weight, 5, "a new weight applies in place")
        XCTAssertFalse(kept.isDraining)
    }

    func testPoolSettingChangesReplaceThePoolsAndPoliciesApplyAtOnce() {
        var config = ServiceConfig(name: "s", endpoints: [])
        let service = runtime(config, [1])
        let old = service.pools[0]
        config.policy.timeout = .milliseconds(300)
        service.update(config: config, sourceID: 1, endpoints: [endpoint(1)])
        XCTAssertTrue(service.pools[0] === old, "a policy change leaves the pools alone")
        XCTAssertEqual(service.policy(forPath: nil).timeoutNanoseconds, 300_000_000)

        config.pool.maxConnectionsPerEndpoint = 2
        service.update(config: config, sourceID: 1, endpoints: [endpoint(1)])
        XCTAssertFalse(service.pools[0] === old, "new pool settings need new pools")
        XCTAssertTrue(old.isDraining, "the old pool retires: its streams finish, its connections then close")
    }

    func testMethodPoliciesAreFoundByPath() {
        var config = ServiceConfig(name: "s", endpoints: [])
        var policy = config.policy
        policy.timeout = .milliseconds(50)
        policy.origin = "services.s.methods[0]"
        config.methods = [MethodConfig(match: .grpcMethod(service: "p.S", method: "M"), policy: policy)]
        let service = runtime(config, [1])
        var path = "/p.S/M"
        XCTAssertEqual(path.withUTF8 { service.policy(forPath: UnsafeRawBufferPointer($0)).origin }, "services.s.methods[0]")
        path = "/p.S/N"
        XCTAssertEqual(path.withUTF8 { service.policy(forPath: UnsafeRawBufferPointer($0)).origin }, "services.s")
    }

    func testARetiredServiceHasNoPoolsToPick() {
        let service = runtime(ServiceConfig(name: "s", endpoints: []), [1, 2])
        let pools = service.pools
        service.retire()
        XCTAssertNil(service.pickPool())
        XCTAssertTrue(pools.allSatisfy(\.isDraining))
    }

    func testEveryLoopWeighsTheCallsOtherLoopsHaveInFlight() {
        var config = ServiceConfig(name: "s", endpoints: [])
        config.balancer.kind = .p2cLeastRequest
        let health = ServiceHealth(service: config)
        let loops = (0..<2).map { index in
            ServiceRuntime(config: config, health: health, sourceID: 1, endpoints: [endpoint(1), endpoint(2)],
                           eventLoop: loop, loopIndex: index, logger: logger)
        }
        // Loop 0 has five calls in flight at endpoint 1; loop 1 has none anywhere.
        for _ in 0..<5 { loops[0].pools[0].attemptStarted() }
        XCTAssertEqual(loops[1].pools[0].health.inFlight, 5)
        for _ in 0..<20 {
            XCTAssertEqual(loops[1].pickPool()?.address.port, 2, "loop 1 sees endpoint 1's calls from loop 0")
        }
        for _ in 0..<5 { loops[0].pools[0].attemptFinished(.neutral, at: 0) }
        XCTAssertEqual(loops[1].pools[0].health.inFlight, 0)
        XCTAssertEqual(loops[0].pools[0].pending, 0)
    }
}
