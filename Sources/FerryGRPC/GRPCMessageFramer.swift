import NIOCore

/// Follows gRPC's length-prefixed messages (1 byte compressed flag, 4 bytes big-endian length,
/// then the message) across DATA frames split at any byte, without copying or holding the
/// messages. A proxy uses it to enforce a maximum message size and to count messages.
public struct GRPCMessageFramer: Sendable {
    public enum FramingError: Error, Equatable, CustomStringConvertible {
        /// A message announced a length over the limit.
        case messageTooLarge(length: Int, limit: Int)
        /// The compressed flag was neither 0 nor 1.
        case invalidCompressedFlag(UInt8)

        public var description: String {
            switch self {
            case .messageTooLarge(let length, let limit):
                return "message of \(length) bytes is larger than the limit of \(limit) bytes"
            case .invalidCompressedFlag(let flag):
                return "invalid compressed flag \(flag) in a message prefix"
            }
        }
    }

    private enum State: Sendable {
        /// Reading the 5-byte prefix; `have` bytes of it are in `prefix`.
        case prefix(have: Int)
        /// Inside a message body with this many bytes still to come.
        case body(remaining: Int)
    }

    public let maxMessageSize: Int
    private var state = State.prefix(have: 0)
    private var prefix: (UInt8, UInt8, UInt8, UInt8, UInt8) = (0, 0, 0, 0, 0)
    /// Messages whose last byte has been seen.
    public private(set) var completedMessages = 0
    /// Messages that had the compressed flag set.
    public private(set) var compressedMessages = 0

    public init(maxMessageSize: Int) {
        self.maxMessageSize = maxMessageSize
    }

    /// True when the bytes seen so far end exactly at a message boundary.
    public var isAtMessageBoundary: Bool {
        if case .prefix(have: 0) = state { return true }
        return false
    }

    /// Follows `bytes`; throws at the first prefix that breaks the rules.
    public mutating func scan(_ bytes: ByteBuffer) throws(FramingError) {
        var failure: FramingError?
        bytes.withUnsafeReadableBytes { raw in
            do throws(FramingError) { try self.scan(raw) } catch { failure = error }
        }
        if let failure { throw failure }
    }

    public mutating func scan(_ bytes: UnsafeRawBufferPointer) throws(FramingError) {
        var index = 0
        while index < bytes.count {
            switch state {
            case .body(let remaining):
                let take = min(remaining, bytes.count - index)
                index += take
                if take == remaining {
                    completedMessages += 1
                    state = .prefix(have: 0)
                } else {
                    state = .body(remaining: remaining - take)
                }
            case .prefix(let have):
                let byte = bytes[index]
                index += 1
                switch have {
                case 0: prefix.0 = byte
                case 1: prefix.1 = byte
                case 2: prefix.2 = byte
                case 3: prefix.3 = byte
                default: prefix.4 = byte
                }
                if have + 1 < 5 {
                    state = .prefix(have: have + 1)
                    continue
                }
                guard prefix.0 <= 1 else { throw FramingError.invalidCompressedFlag(prefix.0) }
                let length = Int(prefix.1) << 24 | Int(prefix.2) << 16 | Int(prefix.3) << 8 | Int(prefix.4)
                guard length <= maxMessageSize else { throw FramingError.messageTooLarge(length: length, limit: maxMessageSize) }
                if prefix.0 == 1 { compressedMessages += 1 }
                if length == 0 {
                    completedMessages += 1
                    state = .prefix(have: 0)
                } else {
                    state = .body(remaining: length)
                }
            }
        }
    }
}

/// Writes and reads whole length-prefixed messages (for tools, tests and proxy-made bodies).
public enum GRPCMessageCodec {
    public static func encode(_ message: ByteBuffer, compressed: Bool = false, into out: inout ByteBuffer) {
        out.writeInteger(UInt8(compressed ? 1 : 0))
        out.writeInteger(UInt32(message.readableBytes))
        out.writeImmutableBuffer(message)
    }

    /// Reads every complete message from `buffer` (consuming them); a trailing partial message
    /// stays in `buffer`.
    public static func decodeAll(from buffer: inout ByteBuffer) -> [(compressed: Bool, message: ByteBuffer)] {
        var out: [(Bool, ByteBuffer)] = []
        while buffer.readableBytes >= 5,
              let flag = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self),
              let length = buffer.getInteger(at: buffer.readerIndex + 1, as: UInt32.self),
              buffer.readableBytes >= 5 + Int(length) {
            buffer.moveReaderIndex(forwardBy: 5)
            out.append((flag == 1, buffer.readSlice(length: Int(length))!))
        }
        return out
    }
}
