import FerryPolicy
import XCTest

final class RetryBudgetTests: XCTestCase {
    let s: Int64 = 1_000_000_000

    func testTheReserveThenTwentyPercentOfRequests() {
        let budget = RetryBudget()                          // ttl 10 s, 10/s, 20%
        var granted = 0
        while budget.tryWithdraw(at: 0) { granted += 1 }
        XCTAssertEqual(granted, 100, "the floor: 10 retries/s over the 10 s window, with no requests yet")
        for _ in 0..<50 { budget.deposit(at: 0) }
        XCTAssertTrue((0..<10).allSatisfy { _ in budget.tryWithdraw(at: 0) }, "20% of 50 requests: 10 more")
        XCTAssertFalse(budget.tryWithdraw(at: 0))
    }

    func testOldSecondsLeaveTheWindow() {
        let budget = RetryBudget()
        while budget.tryWithdraw(at: 0) {}
        XCTAssertFalse(budget.tryWithdraw(at: 9 * s + s / 2), "still inside the 10 s window")
        XCTAssertTrue(budget.tryWithdraw(at: 10 * s), "second 0 left the window: its retries no longer count")
    }

    func testLongRunRateIsBoundedByTwentyPercentPlusTheFloor() {
        let budget = RetryBudget()
        var retries = 0
        var requests = 0
        // 100 s of 1,000 failing requests per second, each wanting a retry.
        for second in 0..<100 {
            for i in 0..<1_000 {
                let now = Int64(second) * s + Int64(i) * 1_000_000
                budget.deposit(at: now)
                requests += 1
                if budget.tryWithdraw(at: now) { retries += 1 }
            }
        }
        XCTAssertLessThanOrEqual(Double(retries), 0.2 * Double(requests) + 10 * 100 + 100)
        XCTAssertGreaterThan(Double(retries), 0.2 * Double(requests), "the budget is used, not starved")
    }

    func testFullJitterBackoffStaysWithinTheDoublingCeiling() {
        var random = FastRandom(seed: 5)
        let ms: Int64 = 1_000_000
        for retry in 1...6 {
            let ceiling = min(250 * ms, 25 * ms << (retry - 1))
            let delays = (0..<2_000).map { _ in RetryBackoff.delay(retry: retry, base: 25 * ms, max: 250 * ms, using: &random) }
            XCTAssertTrue(delays.allSatisfy { $0 >= 0 && $0 <= ceiling }, "retry \(retry)")
            XCTAssertGreaterThan(delays.max()!, ceiling * 9 / 10, "full jitter reaches the ceiling")
            XCTAssertLessThan(delays.min()!, ceiling / 10, "and goes down to zero")
        }
    }
}
