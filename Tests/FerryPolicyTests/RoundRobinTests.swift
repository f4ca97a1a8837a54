import FerryPolicy
import XCTest

final class RoundRobinTests: XCTestCase {
    func testCyclesEvenly() {
        var rr = RoundRobin()
        var counts = [0, 0, 0]
        for _ in 0..<300 { counts[rr.pick(count: 3)!] += 1 }
        XCTAssertEqual(counts, [100, 100, 100])
    }

    func testSkipsUnavailableAndKeepsOrder() {
        var rr = RoundRobin()
        let picks = (0..<6).map { _ in rr.pick(count: 4, isAvailable: { $0 != 1 })! }
        XCTAssertEqual(picks, [0, 2, 3, 0, 2, 3])
    }

    func testNothingAvailable() {
        var rr = RoundRobin()
        XCTAssertNil(rr.pick(count: 0))
        XCTAssertNil(rr.pick(count: 3, isAvailable: { _ in false }))
    }

    func testStartOffsetsSpreadLoops() {
        var a = RoundRobin(start: 0)
        var b = RoundRobin(start: 1)
        XCTAssertNotEqual(a.pick(count: 2), b.pick(count: 2))
    }
}
