import FerryPolicy
import XCTest

final class DeadlineQueueTests: XCTestCase {
    func testEntriesComeOutInDeadlineOrderOnlyOnceExpired() {
        var queue = DeadlineQueue<String>()
        var rng = SystemRandomNumberGenerator()
        var expected: [Int64] = []
        for i in 0..<500 {
            let at = Int64.random(in: 0..<10_000, using: &rng)
            expected.append(at)
            _ = queue.add("c\(i)", expiresAt: at)
        }
        expected.sort()
        XCTAssertEqual(queue.earliest, expected[0])
        XCTAssertNil(queue.popExpired(now: expected[0] - 1), "nothing before its time")
        var popped: [Int64] = []
        while let entry = queue.popExpired(now: 10_000) { popped.append(entry.expiresAt) }
        XCTAssertEqual(popped, expected)
        XCTAssertEqual(queue.count, 0)
    }

    func testIdsAreUniqueAndNeverZero() {
        var queue = DeadlineQueue<Int>()
        let ids = (0..<100).map { queue.add($0, expiresAt: 5) }
        XCTAssertEqual(Set(ids).count, 100)
        XCTAssertFalse(ids.contains(0))
    }

    func testCompactionDropsStaleEntriesOnlyWhenTheyOutnumberLiveOnes() {
        var queue = DeadlineQueue<Int>()
        var live: [Int: UInt64] = [:]
        for i in 0..<1000 { live[i] = queue.add(i, expiresAt: Int64(1000 - i)) }
        // Cancel 400: not yet worth compacting (stale below half).
        for i in 0..<400 { live[i] = nil; queue.cancelOne() }
        queue.compactIfWorthIt { live[$0.item] == $0.id }
        XCTAssertEqual(queue.count, 1000)
        // Cancel 200 more: 600 stale of 1000, compacted to the 400 live, still in order.
        for i in 400..<600 { live[i] = nil; queue.cancelOne() }
        queue.compactIfWorthIt { live[$0.item] == $0.id }
        XCTAssertEqual(queue.count, 400)
        XCTAssertEqual(queue.staleCount, 0)
        var items: [Int] = []
        while let e = queue.popExpired(now: .max) { items.append(e.item) }
        XCTAssertEqual(items, Array((600..<1000).reversed()), "the earliest deadline (largest i) first")
    }

    func testTheLastLiveEntryCancelledTakesEveryStaleOneWithIt() {
        var queue = DeadlineQueue<Int>()
        var live: [Int: UInt64] = [:]
        for i in 0..<3 { live[i] = queue.add(i, expiresAt: Int64(10 + i)) }
        for i in 0..<2 { live[i] = nil; queue.cancelOne() }
        queue.compactIfWorthIt { live[$0.item] == $0.id }
        XCTAssertEqual(queue.count, 3, "a live entry left: the few stale ones wait")
        live[2] = nil
        queue.cancelOne()
        queue.compactIfWorthIt { live[$0.item] == $0.id }
        XCTAssertEqual(queue.count, 0, "none live: nothing kept")
        XCTAssertEqual(queue.staleCount, 0)
        XCTAssertNil(queue.earliest)
    }
}
