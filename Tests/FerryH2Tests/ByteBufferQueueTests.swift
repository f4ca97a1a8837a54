import FerryH2
import NIOCore
import XCTest

final class ByteBufferQueueTests: XCTestCase {
    private func buffer(_ s: String) -> ByteBuffer { ByteBuffer(string: s) }

    func testFIFOAcrossInterleavedAppendsAndPops() {
        var queue = ByteBufferQueue()
        XCTAssertTrue(queue.isEmpty)
        XCTAssertNil(queue.popFirst())
        queue.append(buffer("a"))
        queue.append(buffer("b"))
        XCTAssertEqual(queue.popFirst(), buffer("a"))
        queue.append(buffer("c"))
        queue.append(buffer("d"))
        XCTAssertEqual(queue.popFirst(), buffer("b"))
        XCTAssertEqual(queue.popFirst(), buffer("c"))
        queue.append(buffer("e"))
        XCTAssertEqual(queue.popFirst(), buffer("d"))
        XCTAssertEqual(queue.popFirst(), buffer("e"))
        XCTAssertTrue(queue.isEmpty)
        XCTAssertNil(queue.popFirst())
    }

    func testWithFirstShortensTheHeadInPlace() {
        var queue = ByteBufferQueue()
        queue.append(buffer("hello"))
        queue.append(buffer("world"))
        let taken = queue.withFirst { first -> String? in first.readString(length: 3) }
        XCTAssertEqual(taken, "hel")
        XCTAssertEqual(queue.popFirst(), buffer("lo"))
        XCTAssertEqual(queue.popFirst(), buffer("world"))
        XCTAssertNil(queue.withFirst { $0.readableBytes })
    }

    func testRemoveAll() {
        var queue = ByteBufferQueue()
        for s in ["x", "y", "z"] { queue.append(buffer(s)) }
        queue.removeAll()
        XCTAssertTrue(queue.isEmpty)
        queue.append(buffer("after"))
        XCTAssertEqual(queue.popFirst(), buffer("after"))
    }
}
