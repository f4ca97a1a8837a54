import FerryPolicy
import XCTest

final class FairQueueTests: XCTestCase {
    func testKeysTakeTurnsAndEachKeepsItsOrder() {
        var queue = FairQueue<String, String>()
        for i in 0..<5 { queue.append("a\(i)", key: "a") }
        queue.append("b0", key: "b")
        queue.append("b1", key: "b")
        queue.append("c0", key: "c")
        XCTAssertEqual(queue.count, 8)
        var served: [String] = []
        while let next = queue.popFirst() { served.append(next) }
        XCTAssertEqual(served, ["a0", "b0", "c0", "a1", "b1", "a2", "a3", "a4"])
        XCTAssertTrue(queue.isEmpty)
    }

    func testAKeyArrivingLateIsServedWithinOneTurn() {
        // One client queued a thousand calls; another's single call waits one turn, not a thousand.
        var queue = FairQueue<Int, Int>()
        for i in 0..<1000 { queue.append(i, key: 1) }
        XCTAssertEqual(queue.popFirst(), 0)
        queue.append(-1, key: 2)
        XCTAssertEqual(queue.popFirst(), -1)            // key 1 just had its turn
        XCTAssertEqual(queue.popFirst(), 1)
        XCTAssertEqual(queue.popFirst(), 2)
        XCTAssertEqual(queue.count, 997)
    }

    func testRemovingKeepsTheTurnsRight() {
        var queue = FairQueue<String, String>()
        queue.append("a0", key: "a")
        queue.append("b0", key: "b")
        queue.append("b1", key: "b")
        queue.append("c0", key: "c")
        XCTAssertEqual(queue.popFirst(), "a0")          // a leaves the turn order; b is next
        XCTAssertTrue(queue.remove(key: "b", where: { $0 == "b0" }))
        XCTAssertFalse(queue.remove(key: "b", where: { $0 == "b0" }))
        XCTAssertFalse(queue.remove(key: "z", where: { _ in true }))
        XCTAssertTrue(queue.remove(key: "c", where: { $0 == "c0" }))   // c's lane empties
        XCTAssertEqual(queue.count, 1)
        XCTAssertEqual(queue.popFirst(), "b1")
        XCTAssertNil(queue.popFirst())
    }

    func testRemovingAKeyBeforeTheTurnDoesNotSkipTheNext() {
        var queue = FairQueue<String, String>()
        for key in ["a", "b", "c"] {
            queue.append(key + "0", key: key)
            queue.append(key + "1", key: key)
        }
        XCTAssertEqual(queue.popFirst(), "a0")
        XCTAssertEqual(queue.popFirst(), "b0")          // c's turn next
        XCTAssertTrue(queue.remove(key: "a", where: { $0 == "a1" }))   // a, before the turn, leaves
        XCTAssertEqual(queue.popFirst(), "c0")
        XCTAssertEqual(queue.removeAll(), ["b1", "c1"])
        XCTAssertEqual(queue.count, 0)
    }

    func testALongLaneIsCompactedAndKeepsItsOrder() {
        var queue = FairQueue<Int, Int>()
        for i in 0..<200 { queue.append(i, key: 0) }
        for i in 0..<150 { XCTAssertEqual(queue.popFirst(), i) }
        for i in 200..<250 { queue.append(i, key: 0) }
        XCTAssertEqual(queue.removeAll(), Array(150..<250))
    }
}
