import FerryPolicy
import XCTest

final class DeadlineHeaderTests: XCTestCase {
    func testRemainingTimeFromTheAbsoluteValue() {
        XCTAssertEqual(DeadlineHeader.remaining("1700000000250", wallClockMillis: 1_700_000_000_000), 250_000_000)
        XCTAssertEqual(DeadlineHeader.remaining("1700000000000", wallClockMillis: 1_700_000_000_100), 0, "already past: nothing left")
        XCTAssertNil(DeadlineHeader.remaining("", wallClockMillis: 0))
        XCTAssertNil(DeadlineHeader.remaining("17e9", wallClockMillis: 0))
        XCTAssertNil(DeadlineHeader.remaining("-5", wallClockMillis: 0))
        XCTAssertNil(DeadlineHeader.remaining("12345678901234567", wallClockMillis: 0), "more than 16 digits")
        XCTAssertEqual(DeadlineHeader.remaining("9999999999999999", wallClockMillis: 0), .max, "no overflow")
    }

    func testValueRoundsDownAndRoundTrips() {
        let value = DeadlineHeader.value(expiresAt: 5_300_999_999, monotonicNow: 5_000_000_000, wallClockMillis: 1_700_000_000_000)
        XCTAssertEqual(value, "1700000000300")
        XCTAssertEqual(DeadlineHeader.remaining(value, wallClockMillis: 1_700_000_000_000), 300_000_000)
        XCTAssertEqual(DeadlineHeader.value(expiresAt: 1, monotonicNow: 10, wallClockMillis: 42), "42", "expired: now")
    }
}
