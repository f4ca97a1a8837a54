import FerryConfig
import FerryGRPC
import XCTest

final class BalancingConfigTests: XCTestCase {
    private func parse(_ body: String) throws -> FerryConfig {
        let yaml = "listeners: [{name: l, address: \"127.0.0.1:9\", service: s}]\nservices:\n  s:\n    endpoints: [\"127.0.0.1:1\"]\n" + body
        return try ConfigLoader.parse(yaml: yaml, source: "b.yaml")
    }

    private func service(_ body: String) throws -> ServiceConfig {
        try XCTUnwrap(try parse(body).service(named: "s"))
    }

    private func error(_ body: String) -> ConfigError? {
        do { _ = try parse(body); return nil } catch let e as ConfigError { return e } catch { return nil }
    }

    func testDefaultsAreLinkerdsAndEveryKnobParses() throws {
        let d = try service("")
        XCTAssertEqual(d.balancer.kind, .p2cPeakEWMA)
        XCTAssertEqual(d.balancer.initialRTT, .milliseconds(30))
        XCTAssertEqual(d.balancer.decay, .seconds(10))
        XCTAssertEqual(d.failureAccrual.consecutiveFailures, 7)
        XCTAssertEqual(d.failureAccrual.minBackoff, .seconds(1))
        XCTAssertEqual(d.failureAccrual.maxBackoff, .seconds(60))
        XCTAssertTrue(d.failureAccrual.countDeadlineExceeded)
        XCTAssertTrue(d.failureAccrual.countPerTryTimeout)
        XCTAssertFalse(d.failureAccrual.countCancelled)
        XCTAssertEqual(d.pool.keepaliveInterval, .seconds(10))
        XCTAssertEqual(d.pool.keepaliveTimeout, .seconds(3))
        XCTAssertEqual(d.policy.failureStatuses, [.unavailable])
        XCTAssertNil(d.maxConcurrentCalls)

        let s = try service("""
            balancer: {kind: p2c-least-request, initial_rtt: 5ms, decay: 2s}
            failure_accrual: {consecutive_failures: 3, min_backoff: 500ms, max_backoff: 10s, max_ejected_percent: 50,
                              count_deadline_exceeded: false, count_per_try_timeout: false, count_cancelled: true}
            keepalive: {interval: 5s, timeout: 1s}
            failure_statuses: [UNAVAILABLE, internal, 8]
            max_concurrent_calls: 100
        """)
        XCTAssertEqual(s.balancer.kind, .p2cLeastRequest)
        XCTAssertEqual(s.balancer.initialRTT, .milliseconds(5))
        XCTAssertEqual(s.failureAccrual.consecutiveFailures, 3)
        XCTAssertEqual(s.failureAccrual.maxEjectedPercent, 50)
        XCTAssertFalse(s.failureAccrual.countDeadlineExceeded)
        XCTAssertFalse(s.failureAccrual.countPerTryTimeout)
        XCTAssertTrue(s.failureAccrual.countCancelled)
        XCTAssertEqual(s.pool.keepaliveInterval, .seconds(5))
        XCTAssertEqual(s.policy.failureStatuses, [.unavailable, .internal, .resourceExhausted])
        XCTAssertEqual(s.maxConcurrentCalls, 100)
        XCTAssertEqual(try service("    balancer: round-robin\n").balancer.kind, .roundRobin)
    }

    func testBadValuesNameTheKey() throws {
        XCTAssertEqual(error("    balancer: random\n")?.key, "services.s.balancer")
        XCTAssertTrue(error("    balancer: random\n")?.message.contains("p2c-peak-ewma") ?? false)
        XCTAssertEqual(error("    failure_statuses: [NOPE]\n")?.key, "services.s.failure_statuses[0]")
        XCTAssertEqual(error("    failure_accrual: {count_cancelled: maybe}\n")?.key, "services.s.failure_accrual.count_cancelled")
        XCTAssertEqual(error("    failure_accrual: {min_backoff: 10s, max_backoff: 1s}\n")?.key, "services.s.failure_accrual.min_backoff")
        XCTAssertEqual(error("    failure_accrual: {max_ejected_percent: 101}\n")?.key, "services.s.failure_accrual.max_ejected_percent")
    }
}
