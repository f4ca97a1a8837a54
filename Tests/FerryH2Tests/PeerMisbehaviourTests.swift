@testable import FerryH2
import XCTest

final class PeerStreamErrorBudgetTests: XCTestCase {
    func testABurstThenTheRate() {
        var budget = PeerStreamErrorBudget(burst: 3, perSecond: 10)
        let t0: Int64 = 5_000_000_000
        for _ in 0..<3 { XCTAssertTrue(budget.spend(at: t0)) }
        XCTAssertFalse(budget.spend(at: t0), "the burst is spent")
        XCTAssertFalse(budget.spend(at: t0 + 50_000_000), "half an interval earns nothing")
        XCTAssertTrue(budget.spend(at: t0 + 100_000_000), "one interval (100 ms at 10/s) earns one")
        XCTAssertFalse(budget.spend(at: t0 + 150_000_000))
        // A long quiet spell refills to the burst, no more.
        for _ in 0..<3 { XCTAssertTrue(budget.spend(at: t0 + 60_000_000_000)) }
        XCTAssertFalse(budget.spend(at: t0 + 60_000_000_000))
    }
}

extension PeerStreamErrorBudgetTests {
    func testAnExpensiveErrorCostsMoreAndEmptiesWhatIsLeft() {
        var budget = PeerStreamErrorBudget(burst: 100, perSecond: 10)
        XCTAssertTrue(budget.spend(17, at: 1), "a 4 KiB malformed header block: 17 tokens")
        for _ in 0..<5 { XCTAssertTrue(budget.spend(16, at: 1)) }     // 97 spent
        XCTAssertFalse(budget.spend(16, at: 1), "not enough left")
        XCTAssertFalse(budget.spend(at: 1), "and a refused spend leaves nothing")
    }
}

final class RecentlyClosedStreamsTests: XCTestCase {
    func testRemembersHowTheLatestStreamsClosedAndForgetsTheOldest() {
        var closed = RecentlyClosedStreams()
        closed.record(1, .peerEnded)
        closed.record(3, .peerReset)
        XCTAssertEqual(closed.howClosed(1), .peerEnded)
        XCTAssertEqual(closed.howClosed(3), .peerReset)
        XCTAssertNil(closed.howClosed(5))
        XCTAssertNil(closed.howClosed(0))
        for i in 0..<RecentlyClosedStreams.capacity { closed.record(Int32(101 + 2 * i), .peerEnded) }
        XCTAssertNil(closed.howClosed(1), "the oldest are forgotten")
        XCTAssertEqual(closed.howClosed(101), .peerEnded)
    }
}

final class InboundFrameScannerTests: XCTestCase {
    static let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)

    static func frame(type: UInt8, flags: UInt8 = 0, stream: Int32, payload: Int = 0) -> [UInt8] {
        [UInt8(payload >> 16), UInt8(payload >> 8 & 0xff), UInt8(payload & 0xff), type, flags,
         UInt8(stream >> 24), UInt8(stream >> 16 & 0xff), UInt8(stream >> 8 & 0xff), UInt8(stream & 0xff)]
            + [UInt8](repeating: 0xaa, count: payload)
    }

    /// The splits a scanner makes over `chunks`, as (chunk index, offset, stream) with `open` streams.
    func splits(_ chunks: [[UInt8]], open: Set<Int32>) -> [(Int, Int, Int32)] {
        var scanner = InboundFrameScanner(skipPreface: true)
        var out: [(Int, Int, Int32)] = []
        for (index, chunk) in chunks.enumerated() {
            scanner.beginBuffer()
            chunk.withUnsafeBytes { bytes in
                var from = 0
                while let split = scanner.nextSplit(in: bytes, from: from, needsCheck: { !open.contains($0) }) {
                    out.append((index, split.offset, split.streamID))
                    from = split.resume
                }
            }
        }
        return out
    }

    func testDataOnOpenStreamsIsFedWhole() {
        let bytes = Self.preface + Self.frame(type: 4, stream: 0) + Self.frame(type: 1, flags: 4, stream: 1, payload: 20)
            + Self.frame(type: 0, stream: 1, payload: 100) + Self.frame(type: 0, flags: 1, stream: 1, payload: 5)
        XCTAssertTrue(splits([bytes], open: [1]).isEmpty)
    }

    func testSplitsBeforeDataOnAStreamNotOpen() {
        let head = Self.preface + Self.frame(type: 4, stream: 0) + Self.frame(type: 0, stream: 1, payload: 10)
        let bytes = head + Self.frame(type: 0, stream: 3, payload: 7)
        let found = splits([bytes], open: [1])
        XCTAssertEqual(found.count, 1)
        XCTAssertEqual(found.first?.1, head.count)
        XCTAssertEqual(found.first?.2, 3)
    }

    func testSplitsBeforeDataAfterAResetInTheSameBuffer() {
        // RST_STREAM(1) then DATA(1): the stream looks open before nghttp2 reads the reset.
        let head = Self.preface + Self.frame(type: 3, stream: 1, payload: 4)
        let bytes = head + Self.frame(type: 0, stream: 1, payload: 4)
        let found = splits([bytes], open: [1])
        XCTAssertEqual(found.map(\.1), [head.count])
    }

    func testAHeaderSplitAcrossReadsIsFollowed() {
        let bytes = Self.preface + Self.frame(type: 0, stream: 1, payload: 30) + Self.frame(type: 0, stream: 5, payload: 3)
        // Cut inside the second frame's header: its split point is the start of the next chunk.
        let cut = Self.preface.count + 9 + 30 + 4
        let found = splits([Array(bytes[..<cut]), Array(bytes[cut...])], open: [1])
        XCTAssertEqual(found.count, 1)
        XCTAssertEqual(found.first?.0, 1)
        XCTAssertEqual(found.first?.1, 0)
        XCTAssertEqual(found.first?.2, 5)
    }
}
