import FerryPolicy
import XCTest

final class CallDeadlineTests: XCTestCase {
    let ms: Int64 = 1_000_000

    func testNoSourceMeansNoDeadline() {
        XCTAssertNil(CallDeadline(startedAt: 0, callerTimeout: nil, methodTimeout: nil, listenerMax: nil))
    }

    func testTheEarliestSourceWinsAndIsNamed() throws {
        let a = try XCTUnwrap(CallDeadline(startedAt: 1000 * ms, callerTimeout: 100 * ms, methodTimeout: 300 * ms, listenerMax: 60_000 * ms))
        XCTAssertEqual(a.source, .caller)
        XCTAssertEqual(a.expiresAt, 1100 * ms)
        let b = try XCTUnwrap(CallDeadline(startedAt: 0, callerTimeout: 500 * ms, methodTimeout: 50 * ms, listenerMax: nil))
        XCTAssertEqual(b.source, .method)
        XCTAssertEqual(b.expiresAt, 50 * ms)
        let c = try XCTUnwrap(CallDeadline(startedAt: 0, callerTimeout: nil, methodTimeout: nil, listenerMax: 2000 * ms))
        XCTAssertEqual(c.source, .listener)
        let tie = try XCTUnwrap(CallDeadline(startedAt: 0, callerTimeout: 50 * ms, methodTimeout: 50 * ms, listenerMax: 50 * ms))
        XCTAssertEqual(tie.source, .caller)
    }

    func testRemainingAndExpiryFollowTheClock() throws {
        let d = try XCTUnwrap(CallDeadline(startedAt: 10 * ms, callerTimeout: 100 * ms, methodTimeout: nil, listenerMax: nil))
        XCTAssertEqual(d.remaining(at: 10 * ms), 100 * ms)
        XCTAssertEqual(d.remaining(at: 60 * ms), 50 * ms)
        XCTAssertFalse(d.hasExpired(at: 109 * ms))
        XCTAssertTrue(d.hasExpired(at: 110 * ms))
        XCTAssertEqual(d.remaining(at: 500 * ms), 0)
    }

    func testPropagationSubtractsTheOffsetAndRefusesWhatCannotFinish() throws {
        let d = try XCTUnwrap(CallDeadline(startedAt: 0, callerTimeout: 100 * ms, methodTimeout: nil, listenerMax: nil))
        XCTAssertEqual(d.propagatedTimeout(at: 30 * ms, offset: 0), 70 * ms)
        XCTAssertEqual(d.propagatedTimeout(at: 30 * ms, offset: 5 * ms), 65 * ms)
        XCTAssertNil(d.propagatedTimeout(at: 96 * ms, offset: 5 * ms), "less left than the offset: do not start")
        XCTAssertNil(d.propagatedTimeout(at: 100 * ms, offset: 0), "expired: do not start")
    }

    func testHugeTimeoutsSaturateInsteadOfOverflowing() throws {
        let d = try XCTUnwrap(CallDeadline(startedAt: Int64.max - 10, callerTimeout: .max, methodTimeout: nil, listenerMax: nil))
        XCTAssertEqual(d.expiresAt, .max)
        XCTAssertFalse(d.hasExpired(at: Int64.max - 1))
        let zero = try XCTUnwrap(CallDeadline(startedAt: 5, callerTimeout: 0, methodTimeout: nil, listenerMax: nil))
        XCTAssertTrue(zero.hasExpired(at: 5), "a zero timeout has expired on arrival")
    }
}
