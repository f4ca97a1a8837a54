@testable import FerryMetrics
import XCTest

final class ProcessMetricsTests: XCTestCase {
    func testStatFieldsAreCountedFromAfterTheCommandName() throws {
        // A command name with a space and a parenthesis, as a thread can be named.
        let line = "4242 (ferry (x) y) S 1 4242 4242 0 -1 4194560 1523 0 0 0 250 75 0 0 20 0 9 0 12345 553750528 3918 18446744073709551615"
        let stat = try XCTUnwrap(ProcessMetrics.parseStat(line))
        XCTAssertEqual(stat, ProcessMetrics.Stat(utime: 250, stime: 75, threads: 9, startTicks: 12345, vsize: 553_750_528, rssPages: 3918))
        XCTAssertNil(ProcessMetrics.parseStat("4242 (ferry) S 1 2"), "too few fields")
    }

    func testTheRunningProcessIsRead() throws {
        let now = try XCTUnwrap(ProcessMetrics.current())
        XCTAssertGreaterThan(now.residentBytes, 1 << 20)
        XCTAssertGreaterThan(now.openFDs, 2)
        XCTAssertGreaterThanOrEqual(now.maxFDs, now.openFDs)
        XCTAssertGreaterThan(now.startTime, 1_700_000_000)
    }
}
