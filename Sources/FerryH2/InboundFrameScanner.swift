/// Walks the frame headers of the bytes a client sends (server role), ahead of nghttp2, to find the DATA frames
/// nghttp2 would drop without a word: those on a stream that has closed. (nghttp2 forgets closed
/// streams, and for such DATA it calls none of our callbacks, so RFC 9113 section 5.1's
/// STREAM_CLOSED answer must be decided here.) The connection feeds nghttp2 up to such a frame,
/// then looks at the stream's state as nghttp2 left it.
///
/// Only frame headers are read (9 bytes a frame, payloads skipped), and a buffer is split only
/// before a DATA frame whose stream is not open, or was ended or reset earlier in the same
/// buffer; the usual buffer is fed whole.
struct InboundFrameScanner {
    /// Preface bytes still to skip (the client's 24-byte preface, server role).
    private var prefaceLeft: Int
    /// Payload bytes of the current frame still to skip.
    private var payloadLeft = 0
    /// A frame header that straddles two reads.
    private var header: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) = (0, 0, 0, 0, 0, 0, 0, 0, 0)
    private var headerHave = 0
    /// Streams an END_STREAM or RST_STREAM touched in this buffer since the last split; past
    /// `maxClosedInBuffer` of them, every DATA frame is checked until the next split.
    private var closedInBuffer: [Int32] = []
    private var closedOverflow = false
    static let maxClosedInBuffer = 16

    init(skipPreface: Bool) {
        prefaceLeft = skipPreface ? 24 : 0
    }

    static let typeData: UInt8 = 0x0
    static let typeRstStream: UInt8 = 0x3
    static let flagEndStream: UInt8 = 0x1

    @inline(__always)
    private static func parseHeader(_ l0: UInt8, _ l1: UInt8, _ l2: UInt8, _ type: UInt8, _ flags: UInt8,
                                    _ s0: UInt8, _ s1: UInt8, _ s2: UInt8, _ s3: UInt8)
        -> (length: Int, type: UInt8, flags: UInt8, streamID: Int32) {
        (Int(l0) << 16 | Int(l1) << 8 | Int(l2), type, flags,
         Int32(bitPattern: UInt32(s0 & 0x7f) << 24 | UInt32(s1) << 16 | UInt32(s2) << 8 | UInt32(s3)))
    }

    /// A new buffer starts: nothing in it has been seen closing yet.
    mutating func beginBuffer() {
        closedInBuffer.removeAll(keepingCapacity: true)
        closedOverflow = false
    }

    /// Scans `bytes` from `offset`. Returns where to split (the start of a DATA frame whose
    /// stream `needsCheck` says is not known to be open, or one a frame earlier in the buffer
    /// ended), that frame's stream, and where the scan resumes (past its header); nil once
    /// the buffer is scanned to its end.
    mutating func nextSplit(in bytes: UnsafeRawBufferPointer, from offset: Int,
                            needsCheck: (Int32) -> Bool) -> (offset: Int, streamID: Int32, resume: Int)? {
        var i = offset
        let end = bytes.count
        while i < end {
            if prefaceLeft > 0 {
                let n = Swift.min(prefaceLeft, end - i)
                prefaceLeft -= n
                i += n
                continue
            }
            if payloadLeft > 0 {
                let n = Swift.min(payloadLeft, end - i)
                payloadLeft -= n
                i += n
                continue
            }
            let frameStart = i - headerHave                 // negative: the header began in an earlier buffer
            let type: UInt8, flags: UInt8, length: Int, streamID: Int32
            if headerHave == 0 && end - i >= 9 {
                // The whole header is in this buffer (the usual case): read it in place.
                (length, type, flags, streamID) = Self.parseHeader(bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3],
                                                                   bytes[i + 4], bytes[i + 5], bytes[i + 6], bytes[i + 7], bytes[i + 8])
                i += 9
            } else {
                while headerHave < 9 && i < end {
                    withUnsafeMutableBytes(of: &header) { $0[headerHave] = bytes[i] }
                    headerHave += 1
                    i += 1
                }
                guard headerHave == 9 else { return nil }
                headerHave = 0
                let (h0, h1, h2, h3, h4, h5, h6, h7, h8) = header
                (length, type, flags, streamID) = Self.parseHeader(h0, h1, h2, h3, h4, h5, h6, h7, h8)
            }
            payloadLeft = length
            let closes = type == Self.typeRstStream || flags & Self.flagEndStream != 0
            if type == Self.typeData && (closedOverflow || closedInBuffer.contains(streamID) || needsCheck(streamID)) {
                // Everything before the split will have been processed when the check runs.
                beginBuffer()
                if closes { closedInBuffer.append(streamID) }
                return (Swift.max(0, frameStart), streamID, i)
            }
            if closes {
                if closedInBuffer.count < Self.maxClosedInBuffer {
                    closedInBuffer.append(streamID)
                } else {
                    closedOverflow = true
                }
            }
        }
        return nil
    }
}
