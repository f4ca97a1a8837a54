import FerryConfig
import FerryDemo
import FerryH2
import FerryProxy
import Logging
import NIOCore
import NIOPosix
import XCTest

/// The proxy in-process, between Ferry's own client and server layers. (Interop with
/// independent implementations is tested in Tests/interop with grpcio, h2load and python-h2.)
final class ProxyForwardingTests: XCTestCase {
    var group: MultiThreadedEventLoopGroup!

    override func setUp() {
        group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
    }

    override func tearDown() async throws {
        try await group.shutdownGracefully()
        group = nil
    }

    private func startProxy(endpoints: [Int], configure: (inout ServiceConfig) -> Void = { _ in }) async throws -> (FerryServer, Int) {
        var service = ServiceConfig(name: "svc", endpoints: endpoints.map { EndpointConfig(address: HostPort(host: "127.0.0.1", port: $0)) })
        configure(&service)
        let config = FerryConfig(admin: nil, runtime: RuntimeConfig(),
                                 listeners: [ListenerConfig(name: "l", address: HostPort(host: "127.0.0.1", port: 0), service: "svc")],
                                 services: [service], source: "<test>")
        let server = FerryServer(config: config, group: group, logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
        let port = try await server.start()[0].port!
        return (server, port)
    }

    func testForwardsEveryCallAndSpreadsThemRoundRobin() async throws {
        let upstreams = [
            try await EchoUpstream.start(name: "a", group: group),
            try await EchoUpstream.start(name: "b", group: group),
            try await EchoUpstream.start(name: "c", failEvery: 10, group: group),
        ]
        let (server, port) = try await startProxy(endpoints: upstreams.map(\.port)) {
            $0.balancer.kind = .roundRobin
            $0.policy.retry.maxAttempts = 1     // every 10th call to "c" fails, and the client must see it
        }
        let report = try await DemoClient.run(host: "127.0.0.1", port: port, calls: 900, concurrency: 20, payloadSize: 1000, group: group)
        XCTAssertEqual(report.calls, 900)
        XCTAssertEqual(report.corruptedBodies, 0)
        // Two event loops each round-robin over three endpoints: the split is even overall.
        XCTAssertEqual(report.perUpstream.values.reduce(0, +), 900)
        for (_, count) in report.perUpstream { XCTAssertEqual(Double(count), 300, accuracy: 2) }
        let failed = report.statuses["UNAVAILABLE"] ?? 0
        XCTAssertEqual(failed, report.perUpstream["c"]! / 10, accuracy: 1)
        XCTAssertEqual(report.statuses["OK"], 900 - failed)
        await server.shutdown(drainTimeout: .seconds(1))
        for u in upstreams { await u.stop() }
    }

    func testPeerStreamLimitIsRespectedAndEveryCallCompletes() async throws {
        var settings = H2Settings()
        settings.maxConcurrentStreams = 2
        let upstream = try await EchoUpstream.start(name: "narrow", settings: settings, group: group)
        let (server, port) = try await startProxy(endpoints: [upstream.port]) { $0.pool.maxConnectionsPerEndpoint = 3 }
        let report = try await DemoClient.run(host: "127.0.0.1", port: port, calls: 500, concurrency: 40, group: group)
        XCTAssertEqual(report.statuses, ["OK": 500])
        XCTAssertEqual(report.corruptedBodies, 0)
        // 40 calls in flight against 2 streams per connection: the pool grew to its cap, no further.
        XCTAssertEqual(upstream.peakConnections, 3)
        await server.shutdown(drainTimeout: .seconds(1))
        await upstream.stop()
    }

    func testOneConnectionCarriesAllStreamsWhileItHasRoom() async throws {
        let upstream = try await EchoUpstream.start(name: "wide", group: group)
        let (server, port) = try await startProxy(endpoints: [upstream.port])
        let report = try await DemoClient.run(host: "127.0.0.1", port: port, calls: 300, concurrency: 50, group: group)
        XCTAssertEqual(report.statuses, ["OK": 300])
        // One downstream connection lives on one event loop: its calls share one upstream connection.
        XCTAssertEqual(upstream.peakConnections, 1)
        await server.shutdown(drainTimeout: .seconds(1))
        await upstream.stop()
    }

    func testIdleUpstreamConnectionsCloseAfterTheIdleTimeout() async throws {
        let upstream = try await EchoUpstream.start(name: "idle", group: group)
        let (server, port) = try await startProxy(endpoints: [upstream.port]) { $0.pool.idleTimeout = .milliseconds(200) }
        let report = try await DemoClient.run(host: "127.0.0.1", port: port, calls: 10, concurrency: 2, group: group)
        XCTAssertEqual(report.statuses, ["OK": 10])
        XCTAssertEqual(upstream.openConnections, 1)
        var waited = 0
        while upstream.openConnections > 0 && waited < 3000 {
            try await Task.sleep(for: .milliseconds(50))
            waited += 50
        }
        XCTAssertEqual(upstream.openConnections, 0, "the idle upstream connection was not closed")
        XCTAssertGreaterThanOrEqual(waited, 100, "closed before the idle timeout")
        // The next call opens a fresh connection and succeeds.
        let again = try await DemoClient.run(host: "127.0.0.1", port: port, calls: 5, concurrency: 1, group: group)
        XCTAssertEqual(again.statuses, ["OK": 5])
        await server.shutdown(drainTimeout: .seconds(1))
        await upstream.stop()
    }

    func testDeadEndpointAnswersUnavailableFromTheProxy() async throws {
        let closed = try await EchoUpstream.start(name: "gone", group: group)
        let port = closed.port
        await closed.stop()
        let (server, proxyPort) = try await startProxy(endpoints: [port])
        let report = try await DemoClient.run(host: "127.0.0.1", port: proxyPort, calls: 20, concurrency: 4, group: group)
        XCTAssertEqual(report.statuses, ["UNAVAILABLE": 20])
        XCTAssertTrue(report.perUpstream.isEmpty)
        await server.shutdown(drainTimeout: .seconds(1))
    }

    func testPendingCallCapFailsFastWithResourceExhausted() async throws {
        let closedButSlow = try await EchoUpstream.start(name: "x", group: group)
        let (server, proxyPort) = try await startProxy(endpoints: [closedButSlow.port]) {
            $0.pool.maxPendingCalls = 0
        }
        // With no waiting allowed, only calls that find a ready connection proceed; the rest fail fast.
        let report = try await DemoClient.run(host: "127.0.0.1", port: proxyPort, calls: 50, concurrency: 10, group: group)
        XCTAssertEqual(report.calls, 50)
        XCTAssertEqual((report.statuses["OK"] ?? 0) + (report.statuses["RESOURCE_EXHAUSTED"] ?? 0), 50, "\(report.statuses)")
        XCTAssertGreaterThan(report.statuses["RESOURCE_EXHAUSTED"] ?? 0, 0)
        await server.shutdown(drainTimeout: .seconds(1))
        await closedButSlow.stop()
    }
}
