@testable import FerryProxy
import NIOCore
import XCTest

final class ReplayBufferTests: XCTestCase {
    private func bytes(_ n: Int, _ value: UInt8) -> ByteBuffer {
        var b = ByteBufferAllocator().buffer(capacity: n)
        b.writeRepeatingByte(value, count: n)
        return b
    }

    func testKeepsChunksInOrderUpToTheCap() {
        var replay = ReplayBuffer(cap: 100)
        replay.record(bytes(40, 1))
        replay.record(bytes(0, 9))      // empty chunks are not kept
        replay.record(bytes(60, 2))
        XCTAssertTrue(replay.canReplay)
        XCTAssertEqual(replay.byteCount, 100)
        XCTAssertEqual(replay.chunks, [bytes(40, 1), bytes(60, 2)])
    }

    func testOverflowDropsEverythingAndStaysOverflowed() {
        var replay = ReplayBuffer(cap: 100)
        replay.record(bytes(60, 1))
        replay.record(bytes(41, 2))
        XCTAssertFalse(replay.canReplay)
        XCTAssertEqual(replay.chunks, [])
        replay.record(bytes(1, 3))
        XCTAssertFalse(replay.canReplay, "a body that outgrew the cap can never be replayed")
    }

    func testDefaultCapIs64KiB() {
        XCTAssertEqual(ReplayBuffer().cap, 64 * 1024)
    }
}
