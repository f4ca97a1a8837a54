import FerryGRPC
import NIOCore
import XCTest

final class GRPCMessageFramerTests: XCTestCase {
    private func framed(_ sizes: [Int], compressed: Bool = false) -> ByteBuffer {
        var out = ByteBufferAllocator().buffer(capacity: 1024)
        for (i, size) in sizes.enumerated() {
            var message = ByteBufferAllocator().buffer(capacity: size)
            message.writeRepeatingByte(UInt8(truncatingIfNeeded: i), count: size)
            GRPCMessageCodec.encode(message, compressed: compressed, into: &out)
        }
        return out
    }

    func testFollowsMessagesSplitAtEveryByte() throws {
        let sizes = [0, 1, 5, 300, 70_000]
        let stream = framed(sizes)
        // Every possible split point of the whole stream into two pieces, and byte by byte.
        for split in stride(from: 0, through: stream.readableBytes, by: 997) {
            var framer = GRPCMessageFramer(maxMessageSize: 100_000)
            try framer.scan(stream.getSlice(at: 0, length: split)!)
            try framer.scan(stream.getSlice(at: split, length: stream.readableBytes - split)!)
            XCTAssertEqual(framer.completedMessages, sizes.count)
            XCTAssertTrue(framer.isAtMessageBoundary)
        }
        var framer = GRPCMessageFramer(maxMessageSize: 100_000)
        for i in 0..<min(stream.readableBytes, 400) { try framer.scan(stream.getSlice(at: i, length: 1)!) }
        XCTAssertEqual(framer.completedMessages, 4) // 0, 1, 5 and 300-byte messages end within 400 bytes
        XCTAssertFalse(framer.isAtMessageBoundary)
    }

    func testTooLargeMessageIsRejectedAtItsPrefix() {
        var framer = GRPCMessageFramer(maxMessageSize: 1024)
        let stream = framed([1024, 1025])
        XCTAssertThrowsError(try framer.scan(stream)) { error in
            XCTAssertEqual(error as? GRPCMessageFramer.FramingError, .messageTooLarge(length: 1025, limit: 1024))
        }
        XCTAssertEqual(framer.completedMessages, 1)
    }

    func testCompressedFlagIsCountedAndInvalidFlagsRejected() throws {
        var framer = GRPCMessageFramer(maxMessageSize: 100)
        try framer.scan(framed([3, 4], compressed: true))
        XCTAssertEqual(framer.compressedMessages, 2)
        var bad = ByteBufferAllocator().buffer(capacity: 5)
        bad.writeBytes([2, 0, 0, 0, 0])
        XCTAssertThrowsError(try framer.scan(bad)) { error in
            XCTAssertEqual(error as? GRPCMessageFramer.FramingError, .invalidCompressedFlag(2))
        }
    }

    func testPropertyEncodeThenDecodeRoundTrips() {
        var random = SeededRandom(seed: 7)
        for _ in 0..<300 {
            let sizes = (0..<Int.random(in: 0...6, using: &random)).map { _ in Int.random(in: 0...5000, using: &random) }
            let compressed = Bool.random(using: &random)
            var stream = framed(sizes, compressed: compressed)
            let decoded = GRPCMessageCodec.decodeAll(from: &stream)
            XCTAssertEqual(decoded.map(\.message.readableBytes), sizes)
            XCTAssertTrue(decoded.allSatisfy { $0.compressed == compressed })
            XCTAssertEqual(stream.readableBytes, 0)
            for (i, d) in decoded.enumerated() {
                XCTAssertTrue(d.message.readableBytesView.allSatisfy { $0 == UInt8(truncatingIfNeeded: i) })
            }
        }
    }

    func testPartialTailStaysInTheBuffer() {
        var stream = framed([10, 20])
        stream.moveWriterIndex(to: stream.writerIndex - 3)
        let decoded = GRPCMessageCodec.decodeAll(from: &stream)
        XCTAssertEqual(decoded.count, 1)
        XCTAssertEqual(stream.readableBytes, 5 + 17)
    }
}
