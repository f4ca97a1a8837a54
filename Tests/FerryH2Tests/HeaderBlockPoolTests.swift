@testable import FerryH2
import XCTest

final class HeaderBlockPoolTests: XCTestCase {
    func testAnEmptyPoolMakesNewBlocks() {
        let pool = HeaderBlockPool()
        let block = pool.take()
        XCTAssertTrue(block.isEmpty)
        XCTAssertEqual(pool.count, 0)
    }

    func testAGivenBlockComesBackEmptyWithItsBuffers() {
        let pool = HeaderBlockPool()
        var block = H2Headers(capacity: 2048)
        block.append(name: ":path", value: "/a.B/C")
        pool.give(block)
        XCTAssertEqual(pool.count, 1)
        let again = pool.take()
        XCTAssertTrue(again.isEmpty)
        XCTAssertEqual(again.capacity, block.capacity, "the given block's buffer was not reused")
        XCTAssertEqual(pool.count, 0)
    }

    func testABlockStillHeldElsewhereKeepsItsFields() {
        let pool = HeaderBlockPool()
        var held = H2Headers()
        held.append(name: "grpc-status", value: "0")
        pool.give(held)
        var reused = pool.take()
        reused.append(name: ":status", value: "200")
        XCTAssertEqual(held.first("grpc-status"), "0")
        XCTAssertEqual(held.count, 1)
        XCTAssertEqual(reused.count, 1)
        XCTAssertNil(reused.first("grpc-status"))
    }

    func testThePoolKeepsAtMostItsLimitAndNoLargeBlocks() {
        let pool = HeaderBlockPool()
        for _ in 0..<(HeaderBlockPool.maxBlocks + 8) { pool.give(H2Headers()) }
        XCTAssertEqual(pool.count, HeaderBlockPool.maxBlocks)
        let other = HeaderBlockPool()
        other.give(H2Headers(capacity: HeaderBlockPool.maxBlockCapacity * 2))
        XCTAssertEqual(other.count, 0)
    }
}
