@testable import FerryProxy
import FerryConfig
import FerryGRPC
import FerryH2
import FerryPolicy
import NIOCore
import XCTest

/// The call path's features, each scenario on the in-memory harness (CallPathHarness): no
/// sockets, no sleeps; time moves only when a test says so. Endpoints are named by port.
final class CallPathTests: XCTestCase {
    private func roundRobin(_ config: inout ServiceConfig) { config.balancer.kind = .roundRobin }

    func testACallIsForwardedAndAnswered() {
        let net = CallPathHarness()
        let upstream = net.upstream(1) { _ in .echo }
        let client = net.client(to: net.service([1]))
        let response = client.call("/p.S/M", message: "hello")
        XCTAssertTrue(response.answered)
        XCTAssertEqual(response.grpcStatus, 0)
        XCTAssertEqual(response.body.readableBytes, 10)
        XCTAssertEqual(upstream.requests, ["/p.S/M"])
    }

    /// Calls 120 ms apart keep an upstream connection with a 300 ms idle timeout: the timeout
    /// counts from the last call, not the first (its first check finds it idle for less than
    /// 300 ms and waits on); once calls stop it closes 300 ms after the last one, not before.
    func testTheIdleTimeoutCountsFromTheLastCallNotTheFirst() {
        let net = CallPathHarness()
        net.upstream(1) { _ in .echo }
        let client = net.client(to: net.service([1]) { $0.pool.idleTimeout = .milliseconds(300) })
        for _ in 0..<8 {
            XCTAssertEqual(client.call("/p.S/M").grpcStatus, 0)
            net.advance(by: .milliseconds(120))
        }
        XCTAssertEqual(net.connectAttempts[1], 1, "a connection in use every 120 ms was closed as idle")
        net.advance(by: .milliseconds(120))    // 240 ms since the last call
        XCTAssertEqual(net.openConnections(to: 1), 1, "closed before the idle timeout")
        net.advance(by: .milliseconds(400))
        XCTAssertEqual(net.openConnections(to: 1), 0, "the idle upstream connection was not closed")
    }

    // MARK: - Retries

    /// A retryable status with the server's pushback: the retry goes out exactly when the
    /// pushback says (not a moment before), to the other endpoint, marked as a retry.
    func testARetryWaitsForThePushbackAndGoesToAnotherEndpoint() {
        let net = CallPathHarness()
        let first = net.upstream(1) { _ in .status(14, pushbackMilliseconds: 300) }
        let second = net.upstream(2) { _ in .echo }
        let client = net.client(to: net.service([1, 2], configure: roundRobin))
        let response = client.call("/p.S/M")
        XCTAssertEqual(first.requests.count, 1)
        XCTAssertFalse(response.answered)
        net.advance(by: .milliseconds(299))
        XCTAssertEqual(second.requests.count, 0, "the retry waits for the pushback")
        net.advance(by: .milliseconds(1))
        XCTAssertEqual(second.requests.count, 1)
        XCTAssertEqual(second.lastHeaders?.first("grpc-previous-rpc-attempts"), "1")
        XCTAssertEqual(response.grpcStatus, 0)
    }

    /// A per-try timeout counts from when the attempt is placed: an endpoint whose connection
    /// is still being made holds the call only that long, then the call moves on.
    func testThePerTryTimeoutCoversWaitingForAConnection() {
        let net = CallPathHarness()
        net.upstream(1) { _ in .echo }
        let second = net.upstream(2) { _ in .echo }
        net.heldConnectPorts = [1]
        let service = net.service([1, 2]) { config in
            config.balancer.kind = .roundRobin
            config.policy.retry.perTryTimeout = .milliseconds(100)
        }
        let client = net.client(to: service)
        let response = client.call("/p.S/M")
        net.advance(by: .milliseconds(99))
        XCTAssertFalse(response.answered)
        XCTAssertEqual(second.requests.count, 0)
        net.advance(by: .milliseconds(1 + 250))       // the per-try timeout, then at most the backoff cap
        XCTAssertEqual(second.requests.count, 1)
        XCTAssertEqual(response.grpcStatus, 0)
        net.completeConnects(to: 1)
        XCTAssertEqual(net.upstreams[1]?.requests, [], "the abandoned attempt sends nothing once connected")
        XCTAssertEqual(service.pools.map(\.pending), [0, 0])
    }

    /// The per-try timeout is Ferry's clock, not the endpoint's: the grpc-timeout sent is what
    /// is left of the call's deadline (none without one), so the endpoint never ends an attempt
    /// at the per-try timeout, and an attempt that times out is reset by Ferry.
    func testThePerTryTimeoutIsNotSentAsTheEndpointsDeadline() {
        let net = CallPathHarness()
        let first = net.upstream(1) { _ in .hang }
        let second = net.upstream(2) { _ in .echo }
        let service = net.service([1, 2]) { config in
            config.balancer.kind = .roundRobin
            config.policy.retry.perTryTimeout = .milliseconds(100)
        }
        let client = net.client(to: service)
        let response = client.call("/p.S/M", timeout: "5S")
        let sent = first.lastHeaders?.first("grpc-timeout").flatMap { try? GRPCTimeout.parse($0).get().nanoseconds }
        XCTAssertGreaterThan(sent ?? 0, 4_000_000_000, "the call's own 5 s, not 100 ms")
        net.advance(by: .milliseconds(350))             // the per-try timeout, then at most the backoff cap
        XCTAssertEqual(first.resetsReceived, [.cancel], "the timed-out attempt is reset")
        XCTAssertEqual(second.requests.count, 1)
        XCTAssertEqual(response.grpcStatus, 0)
        let plain = CallPathHarness()
        let only = plain.upstream(1) { _ in .echo }
        let plainService = plain.service([1]) { $0.policy.retry.perTryTimeout = .milliseconds(100) }
        XCTAssertEqual(plain.client(to: plainService).call("/p.S/M").grpcStatus, 0)
        XCTAssertEqual(only.requests.count, 1)
        XCTAssertNil(only.lastHeaders?.first("grpc-timeout"), "no deadline: none is made up from the per-try timeout")
    }

    /// Once the response has started (committed: it can no longer be retried) the per-try
    /// timeout is over: a long server stream is not cut at it.
    func testAPerTryTimeoutDoesNotEndACommittedStream() {
        let net = CallPathHarness()
        let upstream = net.upstream(1) { _ in .stream }
        let service = net.service([1]) { $0.policy.retry.perTryTimeout = .milliseconds(100) }
        let client = net.client(to: service)
        let response = client.call("/p.S/Watch")
        net.advance(by: .milliseconds(10))
        XCTAssertEqual(response.headers?.first(":status"), "200", "the response started")
        for i in 0..<10 {
            net.advance(by: .milliseconds(100))
            upstream.push(ByteBuffer(bytes: [0, 0, 0, 0, 1, UInt8(i)]))
        }
        net.advance(by: .milliseconds(10))
        XCTAssertFalse(response.answered, "still streaming after 10 per-try timeouts")
        XCTAssertEqual(response.body.readableBytes, 60)
        XCTAssertEqual(upstream.resetsReceived, [])
        upstream.endStreams(grpcStatus: 0)
        net.advance(by: .milliseconds(1))
        XCTAssertEqual(response.grpcStatus, 0)
    }

    /// A stream the upstream refused (never processed) goes to the other endpoint at once,
    /// without the retry policy or the budget, and counts against the refusing endpoint.
    func testARefusedStreamIsRetriedTransparentlyAndCountsInAccrual() {
        let net = CallPathHarness()
        let refusing = net.upstream(1) { _ in .refuse }
        let good = net.upstream(2) { _ in .echo }
        let service = net.service([1, 2]) { config in
            config.balancer.kind = .roundRobin
            config.policy.retry.maxAttempts = 1          // no policy retries: only transparent ones
        }
        let response = net.client(to: service).call("/p.S/M")
        XCTAssertEqual(response.grpcStatus, 0)
        XCTAssertEqual(refusing.requests.count, 1)
        XCTAssertEqual(good.requests.count, 1)
        XCTAssertEqual(service.pools[0].health.accrualState, .active(failures: 1))
    }

    /// The retry budget spent, a retryable failure is answered as it is: one attempt only.
    func testAnExhaustedBudgetStopsRetries() {
        let net = CallPathHarness()
        let upstreams = [net.upstream(1) { _ in .status(14) }, net.upstream(2) { _ in .status(14) }]
        let service = net.service([1, 2]) { config in
            config.retryBudget.minRetriesPerSecond = 0
            config.retryBudget.retryPercent = 0
        }
        let client = net.client(to: service)
        let responses = (0..<5).map { _ in client.call("/p.S/M") }
        net.advance(by: .seconds(1))
        XCTAssertEqual(responses.map(\.grpcStatus), Array(repeating: 14, count: 5))
        XCTAssertEqual(upstreams.map(\.requests.count).reduce(0, +), 5, "no retry went out")
    }

    // MARK: - Hedging

    /// No answer within the hedge delay: a hedge races the first attempt on the other
    /// endpoint; the first answer wins and the loser is cancelled.
    func testAHedgeWinsAndTheLoserIsCancelled() {
        let net = CallPathHarness()
        let slow = net.upstream(1) { _ in .hang }
        let fast = net.upstream(2) { _ in .echo }
        let service = net.service([1, 2]) { config in
            config.balancer.kind = .roundRobin
            var hedge = HedgePolicy()
            hedge.delay = .fixed(.milliseconds(50))
            config.policy.hedge = hedge
        }
        let response = net.client(to: service).call("/p.S/M")
        net.advance(by: .milliseconds(49))
        XCTAssertEqual(fast.requests.count, 0)
        net.advance(by: .milliseconds(1))
        XCTAssertEqual(fast.requests.count, 1)
        XCTAssertEqual(response.grpcStatus, 0)
        XCTAssertEqual(slow.resetsReceived, [.cancel], "the losing attempt is cancelled")
        XCTAssertEqual(service.pools.map(\.pending), [0, 0])
    }

    /// The primary fails while its hedge waits for a connection: the primary's retry must
    /// take the waiting hedge with it. Before, the hedge stayed queued: when its connection
    /// came first it was taken as the retried primary's (a stream on endpoint 2 credited to
    /// endpoint 3, where the call also still waited), and endpoint 3's connection then opened
    /// a "hedge" credited to endpoint 2.
    func testARetriedPrimaryTakesItsWaitingHedgeWithIt() {
        let net = CallPathHarness()
        net.upstream(1) { _ in .hang }
        let hedged = net.upstream(2) { _ in .echo }
        let third = net.upstream(3) { _ in .echo }
        net.heldConnectPorts = [2, 3]
        let service = net.service([1, 2, 3]) { config in
            config.balancer.kind = .roundRobin
            var hedge = HedgePolicy()
            hedge.delay = .fixed(.milliseconds(50))
            config.policy.hedge = hedge
        }
        let response = net.client(to: service).call("/p.S/M")
        net.advance(by: .milliseconds(50))              // the hedge goes to endpoint 2 and waits for its connection
        XCTAssertEqual(service.pools[1].pending, 1)
        net.dropConnections(to: 1)                      // the primary's stream is lost: a policy retry
        net.advance(by: .milliseconds(250))             // after the backoff the retry waits in endpoint 3's pool
        XCTAssertEqual(service.pools.map(\.pending), [0, 0, 1], "the hedge left endpoint 2's pool with its primary's retry")
        net.completeConnects(to: 2)
        XCTAssertEqual(hedged.requests.count, 0, "nothing goes out on the abandoned hedge's connection")
        XCTAssertFalse(response.answered)
        net.completeConnects(to: 3)
        XCTAssertEqual(third.requests.count, 1)
        XCTAssertEqual(response.grpcStatus, 0)
        XCTAssertEqual(service.pools.map(\.pending), [0, 0, 0])
    }

    // MARK: - Deadlines and pools

    /// The deadline counts the time waiting for a connection: the call ends on time with
    /// DEADLINE_EXCEEDED, leaves the pool's queue, and never goes out later.
    func testTheDeadlineCoversTheQueue() {
        let net = CallPathHarness()
        let upstream = net.upstream(1) { _ in .echo }
        net.heldConnectPorts = [1]
        let service = net.service([1])
        let response = net.client(to: service).call("/p.S/M", timeout: "200m")
        net.advance(by: .milliseconds(199))
        XCTAssertFalse(response.answered)
        net.advance(by: .milliseconds(1))
        XCTAssertEqual(response.grpcStatus, 4)
        XCTAssertTrue(response.grpcMessage?.contains("deadline exceeded") ?? false, response.grpcMessage ?? "")
        XCTAssertEqual(service.pools[0].pending, 0)
        XCTAssertEqual(service.pools[0].pendingCallCount, 0, "the call left the pool's queue")
        net.completeConnects(to: 1)
        XCTAssertEqual(upstream.requests, [])
    }

    /// An upstream allowing one stream per connection: the pool grows to its connection limit,
    /// queues up to its pending limit, and answers the next call RESOURCE_EXHAUSTED at once.
    func testThePoolGrowsToItsLimitsAndThenSheds() {
        let net = CallPathHarness()
        var one = H2Settings()
        one.maxConcurrentStreams = 1
        let upstream = net.upstream(1, settings: one) { _ in .hang }
        let service = net.service([1]) { config in
            config.pool.maxConnectionsPerEndpoint = 2
            config.pool.maxPendingCalls = 1
        }
        let client = net.client(to: service)
        let responses = (0..<4).map { _ in client.call("/p.S/M") }
        XCTAssertEqual(net.connectAttempts[1], 2)
        XCTAssertEqual(upstream.requests.count, 2, "one stream on each connection")
        XCTAssertEqual(service.pools[0].pendingCallCount, 1)
        XCTAssertEqual(responses.map(\.answered), [false, false, false, true])
        XCTAssertEqual(responses[3].grpcStatus, 8)
    }

    /// Issue 17: an ejected endpoint with no connection tries to connect every 200 ms; once a
    /// connection is made its wait ends and the next call is its probe, well before the backoff.
    func testAConnectionToAnEjectedEndpointEndsItsEjectionWithAProbe() {
        let net = CallPathHarness()
        let restarted = net.upstream(1) { _ in .echo }
        net.upstream(2) { _ in .echo }
        net.refusedPorts = [1]
        let service = net.service([1, 2]) { config in
            config.balancer.kind = .roundRobin
            config.failureAccrual.consecutiveFailures = 1
            config.failureAccrual.minBackoff = .seconds(10)
            config.failureAccrual.maxBackoff = .seconds(10)
        }
        let client = net.client(to: service)
        // The first call goes to 1, fails to connect (which ejects it) and moves to 2.
        XCTAssertEqual(client.call("/p.S/M").grpcStatus, 0)
        guard case .ejected = service.pools[0].health.accrualState else {
            return XCTFail("\(service.pools[0].health.accrualState)")
        }
        let attempts = net.connectAttempts[1] ?? 0
        net.advance(by: .milliseconds(200))
        XCTAssertEqual(net.connectAttempts[1], attempts + 1, "a reconnect probe, without a call")
        net.refusedPorts = []                           // the endpoint is back
        net.advance(by: .milliseconds(200))
        XCTAssertEqual(net.connectAttempts[1], attempts + 2)
        for _ in 0..<2 { XCTAssertEqual(client.call("/p.S/M").grpcStatus, 0) }
        XCTAssertEqual(restarted.requests.count, 1, "the probe went to the restarted endpoint long before its backoff (5-10 s) ended")
        XCTAssertEqual(service.pools[0].health.accrualState, .active(failures: 0))
    }

    func testEveryEndpointEjectedAndUnreachableFailsCallsFastUntilOneAnswers() {
        let net = CallPathHarness()
        net.upstream(1) { _ in .echo }
        net.upstream(2) { _ in .echo }
        net.refusedPorts = [1, 2]                       // a partition: nothing connects
        let service = net.service([1, 2]) { config in
            config.balancer.kind = .roundRobin
            config.failureAccrual.consecutiveFailures = 1
            config.failureAccrual.minBackoff = .seconds(10)
            config.failureAccrual.maxBackoff = .seconds(10)
        }
        let client = net.client(to: service)
        // The first call tries both (each connect fails, which ejects each) and fails.
        XCTAssertEqual(client.call("/p.S/M").grpcStatus, 14)
        let attempts = net.connectAttempts.values.reduce(0, +)
        // Now both are ejected and failing to connect: a call fails at once, without placing an
        // attempt or waiting for a connect.
        let fast = client.call("/p.S/M")
        XCTAssertEqual(fast.grpcStatus, 14)
        XCTAssertTrue(fast.grpcMessage?.contains("failing fast") ?? false, fast.grpcMessage ?? "")
        XCTAssertEqual(net.connectAttempts.values.reduce(0, +), attempts, "the call waited for a connect")
        XCTAssertEqual(service.pools.map(\.pending), [0, 0])
        // The ejected endpoints' reconnect probes go on; once one answers, calls are served.
        net.refusedPorts = [2]
        net.advance(by: .milliseconds(400))
        XCTAssertGreaterThan(net.connectAttempts.values.reduce(0, +), attempts)
        XCTAssertEqual(client.call("/p.S/M").grpcStatus, 0)
    }
}
