@testable import FerryH2
import XCTest

final class FrameGuardTests: XCTestCase {
    func testIncreasingStreamIDsAreAccepted() {
        var guard_ = FrameGuard(maxEmptyFrames: 10, peerOpensOddStreams: true)
        for id in stride(from: Int32(1), through: 99, by: 2) {
            XCTAssertEqual(guard_.check(type: 1, flags: 4, streamID: id, length: 10), .accept)
        }
        XCTAssertEqual(guard_.highestPeerStreamID, 99)
    }

    func testHeadersOnASkippedLowerIDIsAProtocolError() {
        var guard_ = FrameGuard(maxEmptyFrames: 10, peerOpensOddStreams: true)
        XCTAssertEqual(guard_.check(type: 1, flags: 4, streamID: 5, length: 10), .accept)
        guard case .protocolError = guard_.check(type: 1, flags: 4, streamID: 3, length: 10) else {
            return XCTFail("stream 3 was skipped when 5 opened")
        }
        guard case .protocolError = guard_.check(type: 1, flags: 4, streamID: 1, length: 10) else {
            return XCTFail("stream 1 was skipped when 5 opened")
        }
    }

    func testHeadersOnAnAlreadyOpenedLowerIDIsLeftToNghttp2() {
        // Trailers on stream 1 after stream 3 opened are legal; the guard must not object.
        var guard_ = FrameGuard(maxEmptyFrames: 10, peerOpensOddStreams: true)
        XCTAssertEqual(guard_.check(type: 1, flags: 4, streamID: 1, length: 10), .accept)
        XCTAssertEqual(guard_.check(type: 1, flags: 4, streamID: 3, length: 10), .accept)
        XCTAssertEqual(guard_.check(type: 1, flags: 5, streamID: 1, length: 10), .accept)
    }

    func testEmptyDataFloodIsCounted() {
        var guard_ = FrameGuard(maxEmptyFrames: 3, peerOpensOddStreams: true)
        for _ in 0..<3 { XCTAssertEqual(guard_.check(type: 0, flags: 0, streamID: 1, length: 0), .accept) }
        // An empty DATA frame that ends the stream is normal and not counted.
        XCTAssertEqual(guard_.check(type: 0, flags: 1, streamID: 1, length: 0), .accept)
        guard case .flood = guard_.check(type: 0, flags: 0, streamID: 1, length: 0) else {
            return XCTFail("the fourth empty DATA frame should be a flood")
        }
    }

    func testSkippedRangesStayBounded() {
        var guard_ = FrameGuard(maxEmptyFrames: 10, peerOpensOddStreams: true)
        // Skip one id each time, far more often than the guard remembers.
        var id: Int32 = 3
        for _ in 0..<(FrameGuard.maxSkippedRanges * 3) {
            XCTAssertEqual(guard_.check(type: 1, flags: 4, streamID: id, length: 1), .accept)
            id += 4
        }
        // The most recent skipped id is still caught.
        guard case .protocolError = guard_.check(type: 1, flags: 4, streamID: id - 6, length: 1) else {
            return XCTFail("recently skipped id should be remembered")
        }
    }
}
