import CNghttp2

/// One HTTP/2 frame as it was on the wire.
public struct RawFrame: Sendable, Equatable {
    public var type: UInt8
    public var flags: UInt8
    public var streamID: UInt32
    public var payload: [UInt8]
}

/// Splits one direction's bytes into frames, across record boundaries. The client direction
/// starts with the 24-byte connection preface.
public struct FrameSplitter: Sendable {
    static let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)
    private var buffer: [UInt8] = []
    private var prefacePending: Bool
    public private(set) var badPreface = false

    public init(expectPreface: Bool) {
        prefacePending = expectPreface
    }

    public mutating func append(_ bytes: [UInt8]) -> [RawFrame] {
        buffer += bytes
        if prefacePending {
            guard buffer.count >= Self.preface.count else { return [] }
            badPreface = Array(buffer[0..<Self.preface.count]) != Self.preface
            buffer.removeFirst(Self.preface.count)
            prefacePending = false
        }
        var frames: [RawFrame] = []
        var offset = 0
        while buffer.count - offset >= 9 {
            let length = Int(buffer[offset]) << 16 | Int(buffer[offset + 1]) << 8 | Int(buffer[offset + 2])
            guard buffer.count - offset >= 9 + length else { break }
            let stream = (UInt32(buffer[offset + 5]) << 24 | UInt32(buffer[offset + 6]) << 16
                          | UInt32(buffer[offset + 7]) << 8 | UInt32(buffer[offset + 8])) & 0x7fff_ffff
            frames.append(RawFrame(type: buffer[offset + 3], flags: buffer[offset + 4], streamID: stream,
                                   payload: Array(buffer[(offset + 9)..<(offset + 9 + length)])))
            offset += 9 + length
        }
        buffer.removeFirst(offset)
        return frames
    }

    /// Bytes left that do not make a whole frame.
    public var leftover: Int { buffer.count }
}

/// HPACK decoding with libnghttp2's inflater, one instance per direction (it keeps the
/// dynamic table).
public final class HPACKDecoder {
    private var inflater: OpaquePointer?

    public struct DecodingError: Error, CustomStringConvertible {
        public let code: Int
        public var description: String { "HPACK decoding failed (\(String(cString: nghttp2_strerror(Int32(code)))))" }
    }

    public init() {
        nghttp2_hd_inflate_new(&inflater)
    }

    deinit {
        nghttp2_hd_inflate_del(inflater)
    }

    public func decode(_ block: [UInt8]) throws -> [(name: String, value: String)] {
        var fields: [(String, String)] = []
        try block.withUnsafeBufferPointer { input in
            var position = 0
            while true {
                var nv = nghttp2_nv()
                var flags: Int32 = 0
                let remaining = input.count - position
                let n = nghttp2_hd_inflate_hd2(inflater, &nv, &flags, input.baseAddress.map { $0 + position }, remaining, 1)
                if n < 0 { throw DecodingError(code: n) }
                position += n
                if flags & Int32(NGHTTP2_HD_INFLATE_EMIT.rawValue) != 0 {
                    let name = String(decoding: UnsafeBufferPointer(start: nv.name, count: nv.namelen), as: UTF8.self)
                    let value = String(decoding: UnsafeBufferPointer(start: nv.value, count: nv.valuelen), as: UTF8.self)
                    fields.append((name, value))
                }
                if flags & Int32(NGHTTP2_HD_INFLATE_FINAL.rawValue) != 0 {
                    nghttp2_hd_inflate_end_headers(inflater)
                    break
                }
                if n == 0 && remaining == 0 { break }
            }
        }
        return fields
    }
}

/// Frame type numbers and names (RFC 9113 section 6).
public enum FrameType {
    public static let data: UInt8 = 0, headers: UInt8 = 1, priority: UInt8 = 2, rstStream: UInt8 = 3,
                      settings: UInt8 = 4, pushPromise: UInt8 = 5, ping: UInt8 = 6, goAway: UInt8 = 7,
                      windowUpdate: UInt8 = 8, continuation: UInt8 = 9

    public static func name(_ type: UInt8) -> String {
        ["DATA", "HEADERS", "PRIORITY", "RST_STREAM", "SETTINGS", "PUSH_PROMISE", "PING", "GOAWAY",
         "WINDOW_UPDATE", "CONTINUATION"].indices.contains(Int(type))
            ? ["DATA", "HEADERS", "PRIORITY", "RST_STREAM", "SETTINGS", "PUSH_PROMISE", "PING", "GOAWAY",
               "WINDOW_UPDATE", "CONTINUATION"][Int(type)]
            : "UNKNOWN(0x\(String(type, radix: 16)))"
    }
}

/// A frame of a fixture with its direction and time, and its header block decoded when the
/// frame ends one (HEADERS or PUSH_PROMISE plus any CONTINUATIONs).
public struct DecodedFrame {
    public var direction: Fixture.Direction
    public var seconds: Double
    public var frame: RawFrame
    public var headers: [(name: String, value: String)]?
    /// For a HEADERS frame: whether the block also carried END_STREAM (from the HEADERS frame).
    public var headersEndStream = false
}

/// Decodes a whole fixture into frames, both directions interleaved in recorded order.
public func decodeFrames(_ fixture: Fixture) throws -> [DecodedFrame] {
    var splitters = [Fixture.Direction.clientToServer: FrameSplitter(expectPreface: true),
                     .serverToClient: FrameSplitter(expectPreface: false)]
    let decoders = [Fixture.Direction.clientToServer: HPACKDecoder(), .serverToClient: HPACKDecoder()]
    var pendingBlock: [Fixture.Direction: (block: [UInt8], endStream: Bool)] = [:]
    var out: [DecodedFrame] = []
    for record in fixture.records {
        for frame in splitters[record.direction]!.append(record.bytes) {
            var decoded = DecodedFrame(direction: record.direction, seconds: record.seconds, frame: frame)
            if frame.type == FrameType.headers || frame.type == FrameType.pushPromise || frame.type == FrameType.continuation {
                var fragment = frame.payload
                if frame.type != FrameType.continuation {
                    fragment = headerBlockFragment(frame)
                    pendingBlock[record.direction] = ([], frame.type == FrameType.headers && frame.flags & 0x1 != 0)
                }
                pendingBlock[record.direction]?.block += fragment
                if frame.flags & 0x4 != 0, let pending = pendingBlock[record.direction] {
                    decoded.headers = try decoders[record.direction]!.decode(pending.block)
                    decoded.headersEndStream = pending.endStream
                    pendingBlock[record.direction] = nil
                }
            }
            out.append(decoded)
        }
    }
    return out
}

/// The header block fragment of a HEADERS or PUSH_PROMISE frame, without padding and priority.
func headerBlockFragment(_ frame: RawFrame) -> [UInt8] {
    var start = 0
    var end = frame.payload.count
    if frame.flags & 0x8 != 0, let pad = frame.payload.first {
        start = 1
        end -= Int(pad)
    }
    if frame.type == FrameType.headers && frame.flags & 0x20 != 0 { start += 5 }
    if frame.type == FrameType.pushPromise { start += 4 }
    guard start <= end, end <= frame.payload.count else { return [] }
    return Array(frame.payload[start..<end])
}
