/// The inbound checks RFC 9113 asks for that libnghttp2 1.52 lets slide, kept per connection:
///
/// - a HEADERS frame that opens a stream id lower than one the peer already opened (the
///   skipped id was implicitly closed, RFC 9113 section 5.1.1) is a connection error;
/// - floods of empty DATA, HEADERS and CONTINUATION frames, which cost us work and the
///   peer nothing, are cut off after a budget.
///
/// Memory is bounded: at most `maxSkippedRanges` ranges of skipped ids are remembered; when a
/// peer skips more often than that, the oldest ranges are forgotten (those ids are then merely
/// ignored by nghttp2 instead of failing the connection).
struct FrameGuard {
    enum Verdict: Equatable {
        case accept
        case protocolError(String)
        case flood(String)
    }

    static let maxSkippedRanges = 64

    private(set) var highestPeerStreamID: Int32 = 0
    private var skipped: [ClosedRange<Int32>] = []
    private var emptyFrames = 0
    let maxEmptyFrames: Int
    let peerOpensOddStreams: Bool

    init(maxEmptyFrames: Int, peerOpensOddStreams: Bool) {
        self.maxEmptyFrames = maxEmptyFrames
        self.peerOpensOddStreams = peerOpensOddStreams
    }

    /// Frame types, RFC 9113 section 6.
    enum FrameType {
        static let data: UInt8 = 0x0
        static let headers: UInt8 = 0x1
        static let continuation: UInt8 = 0x9
    }

    static let endStream: UInt8 = 0x1

    mutating func check(type: UInt8, flags: UInt8, streamID: Int32, length: Int) -> Verdict {
        switch type {
        case FrameType.data:
            if length == 0 && flags & Self.endStream == 0 { return countEmpty("DATA") }
        case FrameType.headers:
            if length == 0 { let v = countEmpty("HEADERS"); if v != .accept { return v } }
            return checkStreamOpen(streamID)
        case FrameType.continuation:
            if length == 0 { return countEmpty("CONTINUATION") }
        default:
            break
        }
        return .accept
    }

    private mutating func countEmpty(_ kind: String) -> Verdict {
        emptyFrames += 1
        return emptyFrames > maxEmptyFrames ? .flood("more than \(maxEmptyFrames) empty \(kind) frames") : .accept
    }

    private mutating func checkStreamOpen(_ id: Int32) -> Verdict {
        guard id > 0, (id % 2 == 1) == peerOpensOddStreams else { return .accept } // nghttp2 rejects these itself
        if id > highestPeerStreamID {
            let firstSkipped = highestPeerStreamID == 0 ? (peerOpensOddStreams ? 1 : 2) : highestPeerStreamID + 2
            if id - 2 >= firstSkipped {
                if skipped.count == Self.maxSkippedRanges { skipped.removeFirst() }
                skipped.append(firstSkipped...(id - 2))
            }
            highestPeerStreamID = id
            return .accept
        }
        for range in skipped where range.contains(id) {
            return .protocolError("HEADERS opened stream \(id), lower than stream \(highestPeerStreamID) already opened")
        }
        return .accept
    }
}
