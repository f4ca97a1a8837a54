import FerryPolicy
import XCTest

final class RateLimiterTests: XCTestCase {
    private let second: Int64 = 1_000_000_000

    func testTheBurstGoesAtOnceThenOneCallPerInterval() {
        let limiter = RateLimiter(.init(calls: 10, periodNanoseconds: second, burst: 3))
        let t0: Int64 = 5 * second
        XCTAssertEqual((0..<5).filter { _ in limiter.admit(at: t0) }.count, 3, "a full bucket lets the burst through, no more")
        XCTAssertFalse(limiter.admit(at: t0 + second / 10 - 1), "the next token is one interval (100 ms) away")
        XCTAssertTrue(limiter.admit(at: t0 + second / 10))
        XCTAssertFalse(limiter.admit(at: t0 + second / 10))
    }

    func testOverALongWindowTheRateHoldsWhateverTheDemand() {
        // 50/s with a burst of 10, asked every millisecond for 10 s: 10 + 50 x 10 admitted.
        let limiter = RateLimiter(.init(calls: 50, periodNanoseconds: second, burst: 10))
        var admitted = 0
        for ms in 0..<10_000 where limiter.admit(at: Int64(ms) * 1_000_000) { admitted += 1 }
        XCTAssertEqual(admitted, 10 + 500, accuracy: 1)
    }

    func testAQuietTimeRefillsOnlyUpToTheBurst() {
        let limiter = RateLimiter(.init(calls: 100, periodNanoseconds: second, burst: 5))
        _ = limiter.admit(at: 0)
        let later = 3600 * second
        XCTAssertEqual((0..<50).filter { _ in limiter.admit(at: later) }.count, 5)
    }

    func testLoopsRacingForTokensNeverTakeMoreThanThereAre() {
        let limiter = RateLimiter(.init(calls: 1000, periodNanoseconds: second, burst: 1000))
        let admitted = ManagedCounter()
        let now = 42 * second
        DispatchQueue.concurrentPerform(iterations: 4) { _ in
            var mine = 0
            for _ in 0..<5_000 where limiter.admit(at: now) { mine += 1 }
            admitted.add(mine)
        }
        XCTAssertEqual(admitted.value, 1000, "the clock stood still: exactly the burst, however the threads interleaved")
    }
}

private final class ManagedCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var total = 0
    func add(_ n: Int) { lock.lock(); total += n; lock.unlock() }
    var value: Int { lock.lock(); defer { lock.unlock() }; return total }
}
