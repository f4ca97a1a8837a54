@testable import FerryProxy
import FerryConfig
import FerryGRPC
import FerryH2
import FerryPolicy
import NIOCore
import XCTest

/// Injected faults on the in-memory call path (CallPathHarness): time moves only when a test
/// says so, so a delay is seen to hold the call exactly as long as configured.
final class FaultInjectionTests: XCTestCase {
    private func fault(abort: GRPCStatusCode? = nil, delay: Duration? = nil, percent: Double = 100) -> (inout ServiceConfig) -> Void {
        { config in
            var fault = FaultConfig(origin: "services.s.fault")
            fault.abort = abort.map { FaultConfig.Abort(grpcStatus: $0, httpStatus: 503, percent: percent) }
            fault.delay = delay.map { FaultConfig.Delay(duration: $0, percent: percent) }
            config.policy.fault = fault
        }
    }

    func testAnAbortAnswersAtOnceAndNoUpstreamSeesTheCall() {
        let net = CallPathHarness()
        let upstream = net.upstream(1) { _ in .echo }
        let response = net.client(to: net.service([1], configure: fault(abort: .unavailable))).call("/p.S/M")
        XCTAssertEqual(response.grpcStatus, 14)
        XCTAssertEqual(response.grpcMessage, "ferry: fault injected (services.s.fault)")
        XCTAssertEqual(upstream.requests, [])
    }

    func testAnAbortIsNotRetriedAway() {
        let net = CallPathHarness()
        let upstream = net.upstream(1) { _ in .echo }
        let service = net.service([1]) { config in
            self.fault(abort: .unavailable)(&config)
            config.policy.retry.on = [.unavailable]
            config.policy.retry.maxAttempts = 5
        }
        let response = net.client(to: service).call("/p.S/M")
        net.advance(by: .seconds(1))
        XCTAssertEqual(response.grpcStatus, 14, "the injected status is the caller's answer")
        XCTAssertEqual(upstream.requests, [])
    }

    func testADelayHoldsTheCallBeforeItsFirstAttempt() {
        let net = CallPathHarness()
        let upstream = net.upstream(1) { _ in .echo }
        let response = net.client(to: net.service([1], configure: fault(delay: .milliseconds(300)))).call("/p.S/M", message: "held")
        net.advance(by: .milliseconds(299))
        XCTAssertEqual(upstream.requests, [], "the body waits with the call")
        XCTAssertFalse(response.answered)
        net.advance(by: .milliseconds(1))
        XCTAssertEqual(upstream.requests, ["/p.S/M"])
        XCTAssertEqual(response.grpcStatus, 0)
        XCTAssertEqual(response.body.readableBytes, 9, "the request body sent during the delay reached the upstream")
    }

    func testADelayThenAnAbort() {
        let net = CallPathHarness()
        let upstream = net.upstream(1) { _ in .echo }
        let response = net.client(to: net.service([1], configure: fault(abort: .resourceExhausted, delay: .milliseconds(50)))).call("/p.S/M")
        net.advance(by: .milliseconds(49))
        XCTAssertFalse(response.answered)
        net.advance(by: .milliseconds(1))
        XCTAssertEqual(response.grpcStatus, 8)
        XCTAssertEqual(upstream.requests, [])
    }

    func testTheDeadlineRunsDuringADelay() {
        let net = CallPathHarness()
        let upstream = net.upstream(1) { _ in .echo }
        let response = net.client(to: net.service([1], configure: fault(delay: .seconds(1)))).call("/p.S/M", timeout: "200m")
        net.advance(by: .milliseconds(200))
        XCTAssertEqual(response.grpcStatus, 4)
        net.advance(by: .seconds(1))
        XCTAssertEqual(upstream.requests, [], "the call ended in its delay; nothing goes upstream after")
    }

    func testSharesAreDrawnPerCall() {
        var random = FastRandom(seed: 7)
        var config = FaultConfig(origin: "o")
        config.abort = FaultConfig.Abort(grpcStatus: .unavailable, httpStatus: 503, percent: 12.5)
        let injector = FaultInjector(config)
        let aborted = (0..<100_000).filter { _ in injector.decide(H2Headers(), isGRPC: true, random: &random).abort != nil }.count
        XCTAssertEqual(Double(aborted) / 100_000, 0.125, accuracy: 0.005)
        config.abort?.percent = 0
        XCTAssertNil(FaultInjector(config).decide(H2Headers(), isGRPC: true, random: &random).abort)
    }

    func testRequestsAskForFaultsOnlyWhereAllowed() {
        var random = FastRandom(seed: 1)
        var config = FaultConfig(origin: "listeners.l.routes[0].fault")
        let asking = H2Headers([("ferry-fault-abort", "unavailable"), ("ferry-fault-delay", "250ms")])
        XCTAssertTrue(FaultInjector(config).decide(asking, isGRPC: true, random: &random).isNone, "off unless enabled")
        config.fromHeaders = true
        let decision = FaultInjector(config).decide(asking, isGRPC: true, random: &random)
        XCTAssertEqual(decision.abort?.grpcStatus, .unavailable)
        XCTAssertEqual(decision.delayNanoseconds, 250_000_000)
        XCTAssertTrue(decision.askedByRequest)
        let http = FaultInjector(config).decide(H2Headers([("ferry-fault-abort", "429")]), isGRPC: false, random: &random)
        XCTAssertEqual(http.abort?.httpStatus, 429)
        for (name, value) in [("ferry-fault-abort", "OK"), ("ferry-fault-abort", "99"), ("ferry-fault-delay", "1h"), ("ferry-fault-delay", "soon")] {
            let bad = FaultInjector(config).decide(H2Headers([(name, value)]), isGRPC: true, random: &random)
            XCTAssertEqual(bad.invalid?.grpcStatus, .invalidArgument, "\(name): \(value)")
            XCTAssertTrue(bad.invalid?.message.contains(name) ?? false)
        }
    }
}
