import CNghttp2
import CNghttp2Memory
import XCTest

/// The per-thread caching allocator nghttp2 sessions use.
final class Nghttp2MemoryTests: XCTestCase {
    private let memory = ferry_nghttp2_memory()!.pointee

    func testBlocksAreReusedAndKeepTheirContents() throws {
        // Counted once `a` is taken: this thread may hold blocks of its class from earlier
        // tests, and `a` may be one of them (ThreadSanitizer's run order showed it).
        let a = try XCTUnwrap(memory.malloc(100, nil))
        let before = ferry_nghttp2_memory_cached_blocks()
        memory.free(a, nil)
        XCTAssertEqual(ferry_nghttp2_memory_cached_blocks(), before + 1, "a freed small block is kept")
        let b = try XCTUnwrap(memory.malloc(90, nil))
        XCTAssertEqual(a, b, "the same size class takes the kept block")
        XCTAssertEqual(ferry_nghttp2_memory_cached_blocks(), before)

        let bytes = b.assumingMemoryBound(to: UInt8.self)
        for i in 0..<90 { bytes[i] = UInt8(i) }
        let grown = try XCTUnwrap(memory.realloc(b, 5000, nil)).assumingMemoryBound(to: UInt8.self)
        XCTAssertEqual((0..<90).map { grown[$0] }, (0..<90).map { UInt8($0) }, "realloc keeps the contents")
        memory.free(grown, nil)

        let zeroed = try XCTUnwrap(memory.calloc(3, 40, nil)).assumingMemoryBound(to: UInt8.self)
        XCTAssertTrue((0..<120).allSatisfy { zeroed[$0] == 0 })
        memory.free(zeroed, nil)
        XCTAssertNil(memory.calloc(Int.max, 2, nil), "a size that cannot be allocated is refused")
        XCTAssertNil(memory.calloc(Int.max, 3, nil), "an overflowing size is refused")
    }

    func testEachSizeClassKeepsABoundedNumberOfBlocks() {
        let before = ferry_nghttp2_memory_cached_blocks()
        let blocks = (0..<10_000).map { _ in memory.malloc(2000, nil)! }
        for block in blocks { memory.free(block, nil) }
        let kept = ferry_nghttp2_memory_cached_blocks() - before
        XCTAssertGreaterThan(kept, 0)
        XCTAssertLessThanOrEqual(kept * 2048, 128 * 1024, "the class keeps at most its budget; the rest went back to malloc")
    }

    func testLargeBlocksHaveTheirOwnPagesAndWorkLikeAnyOther() throws {
        // nghttp2's 16 KiB outbound frame buffer (one per session) takes this path.
        let big = try XCTUnwrap(memory.calloc(1, 20_000, nil)).assumingMemoryBound(to: UInt8.self)
        XCTAssertEqual(Int(bitPattern: UnsafeRawPointer(big)) % 4096, 16, "page-aligned, after the 16-byte header")
        XCTAssertTrue((0..<20_000).allSatisfy { big[$0] == 0 }, "zeroed")
        for i in 0..<20_000 { big[i] = UInt8(truncatingIfNeeded: i) }
        let grown = try XCTUnwrap(memory.realloc(big, 50_000, nil)).assumingMemoryBound(to: UInt8.self)
        XCTAssertTrue((0..<20_000).allSatisfy { grown[$0] == UInt8(truncatingIfNeeded: $0) }, "realloc keeps the contents")
        let same = try XCTUnwrap(memory.realloc(grown, 50_000, nil))
        XCTAssertEqual(UnsafeMutableRawPointer(grown), same, "a block large enough already is kept")
        memory.free(same, nil)
    }
}
