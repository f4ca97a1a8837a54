import NIOCore

/// The messages of gRPC's health protocol (`grpc.health.v1.Health`), written and read by hand:
/// two tiny protobuf messages do not need a code generator. `HealthCheckRequest { string
/// service = 1; }`, `HealthCheckResponse { ServingStatus status = 1; }`.
public enum GRPCHealthMessages {
    public static let checkPath = "/grpc.health.v1.Health/Check"
    /// The server-streaming method that sends the status at once and again on each change.
    public static let watchPath = "/grpc.health.v1.Health/Watch"

    /// `ServingStatus` values (SERVICE_UNKNOWN is sent by Watch only).
    public enum ServingStatus: Equatable, Sendable, CustomStringConvertible {
        case unknown
        case serving
        case notServing
        case serviceUnknown
        case other(UInt64)

        init(_ value: UInt64) {
            switch value {
            case 0: self = .unknown
            case 1: self = .serving
            case 2: self = .notServing
            case 3: self = .serviceUnknown
            default: self = .other(value)
            }
        }

        public var description: String {
            switch self {
            case .unknown: return "UNKNOWN"
            case .serving: return "SERVING"
            case .notServing: return "NOT_SERVING"
            case .serviceUnknown: return "SERVICE_UNKNOWN"
            case .other(let n): return "status \(n)"
            }
        }
    }

    /// A `HealthCheckRequest` for `service`, with its gRPC message prefix (uncompressed).
    public static func checkRequest(service: String) -> ByteBuffer {
        var message = ByteBuffer()
        if !service.isEmpty {
            message.writeInteger(UInt8(0x0A))            // field 1, length-delimited
            writeVarint(UInt64(service.utf8.count), to: &message)
            message.writeString(service)
        }
        var framed = ByteBuffer()
        framed.writeInteger(UInt8(0))
        framed.writeInteger(UInt32(message.readableBytes))
        framed.writeImmutableBuffer(message)
        return framed
    }

    public enum DecodeError: Error, Equatable, CustomStringConvertible {
        case notOneMessage
        case compressed
        case malformed

        public var description: String {
            switch self {
            case .notOneMessage: return "the answer is not one whole gRPC message"
            case .compressed: return "the answer is compressed (Ferry asks for none)"
            case .malformed: return "the answer is not a HealthCheckResponse"
            }
        }
    }

    /// The status in a response body: one prefixed `HealthCheckResponse` (unknown fields skipped).
    public static func decodeCheckResponse(_ body: ByteBuffer) -> Result<ServingStatus, DecodeError> {
        var body = body
        guard let flag = body.readInteger(as: UInt8.self), let length = body.readInteger(as: UInt32.self),
              body.readableBytes == Int(length) else { return .failure(.notOneMessage) }
        guard flag == 0 else { return .failure(.compressed) }
        var status: UInt64 = 0
        while body.readableBytes > 0 {
            guard let key = readVarint(&body) else { return .failure(.malformed) }
            let field = key >> 3
            switch key & 7 {
            case 0:
                guard let value = readVarint(&body) else { return .failure(.malformed) }
                if field == 1 { status = value }
            case 1:
                guard body.readSlice(length: 8) != nil else { return .failure(.malformed) }
            case 2:
                guard let n = readVarint(&body), n <= UInt64(body.readableBytes), body.readSlice(length: Int(n)) != nil else {
                    return .failure(.malformed)
                }
            case 5:
                guard body.readSlice(length: 4) != nil else { return .failure(.malformed) }
            default:
                return .failure(.malformed)
            }
        }
        return .success(ServingStatus(status))
    }

    /// The next whole prefixed `HealthCheckResponse` of a Watch stream, taken from the front of
    /// `buffer`, or nil while the message is not all there yet.
    public static func nextWatchResponse(_ buffer: inout ByteBuffer) -> Result<ServingStatus, DecodeError>? {
        guard let length = buffer.getInteger(at: buffer.readerIndex + 1, as: UInt32.self) else { return nil }
        guard buffer.readableBytes >= 5 + Int(length), let message = buffer.readSlice(length: 5 + Int(length)) else { return nil }
        return decodeCheckResponse(message)
    }

    private static func writeVarint(_ value: UInt64, to buffer: inout ByteBuffer) {
        var v = value
        while v >= 0x80 {
            buffer.writeInteger(UInt8(v & 0x7F | 0x80))
            v >>= 7
        }
        buffer.writeInteger(UInt8(v))
    }

    private static func readVarint(_ buffer: inout ByteBuffer) -> UInt64? {
        var value: UInt64 = 0
        for shift in stride(from: 0, to: 64, by: 7) {
            guard let byte = buffer.readInteger(as: UInt8.self) else { return nil }
            value |= UInt64(byte & 0x7F) << UInt64(shift)
            if byte < 0x80 { return value }
        }
        return nil
    }
}
