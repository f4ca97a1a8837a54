@testable import FerryProxy
import FerryConfig
import FerryDiscovery
import FerryUpstream
import Logging
import NIOEmbedded
import XCTest

/// A runtime the configuration drops (a reload that replaces or removes its service) is freed.
final class ServiceRuntimeReleaseTests: XCTestCase {
    func testARetiredRuntimeWithSweepsAndPoolsIsFreed() throws {
        let loop = EmbeddedEventLoop()
        defer { try? loop.syncShutdownGracefully() }
        var config = ServiceConfig(name: "s", endpoints: [])
        var rate = SuccessRateConfig()
        rate.interval = .seconds(1)
        config.failureAccrual.successRate = rate
        weak var released: ServiceRuntime?
        do {
            let runtime = ServiceRuntime(config: config, health: ServiceHealth(service: config), sourceID: 1,
                                         endpoints: [Endpoint(host: "127.0.0.1", port: 1, weight: 1), Endpoint(host: "127.0.0.1", port: 2, weight: 1)],
                                         eventLoop: loop, loopIndex: 0, logger: Logger(label: "t", factory: { _ in SwiftLogNoOpLogHandler() }))
            loop.advanceTime(by: .seconds(3))
            runtime.retire()
            released = runtime
        }
        loop.advanceTime(by: .seconds(3))
        XCTAssertNil(released, "a retired runtime outlived its last reference")
    }
}
