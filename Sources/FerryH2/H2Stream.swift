import NIOCore

/// What one side of a stream hears from its connection. All calls arrive on the
/// connection's event loop; none is made while a previous one is still running for the same stream.
public protocol H2StreamDelegate: AnyObject {
    /// Request headers (server role) or final response headers (client role).
    /// `endStream` is true when the block also ended the peer's side (no body).
    func streamReceivedHeaders(_ stream: H2Stream, headers: H2Headers, endStream: Bool)
    /// A piece of body. The bytes count against the peer's window until `stream.consume` is called.
    func streamReceivedData(_ stream: H2Stream, data: ByteBuffer)
    /// The peer ended its side with END_STREAM on a DATA frame.
    func streamReceivedEnd(_ stream: H2Stream)
    /// Trailers, which also end the peer's side.
    func streamReceivedTrailers(_ stream: H2Stream, trailers: H2Headers)
    /// Bytes this side queued with `sendData` were taken into DATA frames.
    func streamSentData(_ stream: H2Stream, byteCount: Int)
    /// The stream is gone. `error` is nil for a clean close (both sides ended).
    func streamClosed(_ stream: H2Stream, error: H2StreamError?)
}

/// Why a stream ended other than by both sides finishing.
public enum H2StreamError: Error, Sendable, Equatable {
    /// The peer sent RST_STREAM with this HTTP/2 error code.
    case resetByPeer(H2ErrorCode)
    /// This side reset the stream with this code.
    case resetLocally(H2ErrorCode)
    /// The peer's GOAWAY did not cover this stream: it was never processed and is safe to retry.
    case refusedByGoAway
    /// The connection failed or closed while the stream was open.
    case connectionLost
}

/// An HTTP/2 error code (RFC 9113 section 7), as RST_STREAM and GOAWAY carry it. A struct,
/// not an enum: a peer may send any 32-bit value, and unknown codes must pass through intact.
public struct H2ErrorCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public init(_ rawValue: UInt32) { self.rawValue = rawValue }

    public static let noError = H2ErrorCode(0x0)
    public static let protocolError = H2ErrorCode(0x1)
    public static let internalError = H2ErrorCode(0x2)
    public static let flowControlError = H2ErrorCode(0x3)
    public static let settingsTimeout = H2ErrorCode(0x4)
    public static let streamClosed = H2ErrorCode(0x5)
    public static let frameSizeError = H2ErrorCode(0x6)
    public static let refusedStream = H2ErrorCode(0x7)
    public static let cancel = H2ErrorCode(0x8)
    public static let compressionError = H2ErrorCode(0x9)
    public static let connectError = H2ErrorCode(0xa)
    public static let enhanceYourCalm = H2ErrorCode(0xb)
    public static let inadequateSecurity = H2ErrorCode(0xc)
    public static let http11Required = H2ErrorCode(0xd)

    /// The RFC's name (`REFUSED_STREAM`), or the value in hex for a code it does not define.
    public var name: String {
        switch rawValue {
        case 0x0: return "NO_ERROR"
        case 0x1: return "PROTOCOL_ERROR"
        case 0x2: return "INTERNAL_ERROR"
        case 0x3: return "FLOW_CONTROL_ERROR"
        case 0x4: return "SETTINGS_TIMEOUT"
        case 0x5: return "STREAM_CLOSED"
        case 0x6: return "FRAME_SIZE_ERROR"
        case 0x7: return "REFUSED_STREAM"
        case 0x8: return "CANCEL"
        case 0x9: return "COMPRESSION_ERROR"
        case 0xa: return "CONNECT_ERROR"
        case 0xb: return "ENHANCE_YOUR_CALM"
        case 0xc: return "INADEQUATE_SECURITY"
        case 0xd: return "HTTP_1_1_REQUIRED"
        default: return "0x\(String(rawValue, radix: 16))"
        }
    }

    public var description: String { name }
}

/// One HTTP/2 stream on an `H2Connection`. Owned by the connection; the delegate hears its events.
public final class H2Stream {
    /// How the outbound side of the stream ends once its queued bytes are sent.
    enum OutboundEnd {
        case open
        case endStream
        case trailers(H2Headers)
    }

    /// Where the inbound side is in its header/body/trailer sequence.
    enum InboundPhase {
        case awaitingHeaders
        case body
        case ended
    }

    public let id: Int32
    /// The stream's connection. Not counted: a stream reaches it only while open (each
    /// forwarding method below returns at once on a closed stream), and a connection closes
    /// every stream before it goes away, so an open stream's connection is alive. A held,
    /// closed stream may outlive its connection (a call whose caller left); it then never
    /// touches it. (`unowned` made every access a checked retain and a release, 600
    /// instructions per proxied call, and trapped on a closed stream whose connection was
    /// gone.) Read it only from the connection's own callbacks or while `!isClosed`.
    public unowned(unsafe) let connection: H2Connection
    public var delegate: H2StreamDelegate?

    /// Bytes waiting to go out in DATA frames.
    var outbound = ByteBufferQueue()
    var outboundBytes = 0
    var outboundEnd = OutboundEnd.open
    /// True once the HEADERS that start our side were submitted with a data provider.
    var hasDataProvider = false
    /// True while nghttp2 holds the data provider deferred, waiting for `resume`.
    var deferred = false

    var inboundPhase = InboundPhase.awaitingHeaders
    /// DATA bytes received but not yet handed back to the peer's window with `consume`.
    var unconsumedInbound = 0
    /// True once our side has sent (or submitted) its final HEADERS.
    public internal(set) var sentHeaders = false
    public internal(set) var isClosed = false
    /// How the stream was reset, if it was: by us, by the peer, or refused by the peer's GOAWAY.
    var localResetCode: H2ErrorCode?
    var peerResetCode: H2ErrorCode?
    var refusedByGoAway = false

    init(id: Int32, connection: H2Connection, delegate: H2StreamDelegate?) {
        self.id = id
        self.connection = connection
        self.delegate = delegate
    }

    // MARK: - Convenience forwarding to the connection

    // Each returns at once on a closed stream (whose connection may be gone), as the
    // connection's own methods would.

    public func sendData(_ data: ByteBuffer, endStream: Bool = false) {
        guard !isClosed else { return }
        connection.sendData(self, data, endStream: endStream)
    }

    public func sendEnd() {
        guard !isClosed else { return }
        connection.sendEnd(self)
    }

    public func sendTrailers(_ trailers: H2Headers) {
        guard !isClosed else { return }
        connection.sendTrailers(self, trailers)
    }

    public func reset(_ code: H2ErrorCode) {
        guard !isClosed else { return }
        connection.reset(self, code: code)
    }

    /// Returns `byteCount` received bytes to the peer's window; on a closed stream they are
    /// only no longer counted as held.
    public func consume(_ byteCount: Int) {
        guard !isClosed else {
            unconsumedInbound -= Swift.min(Swift.max(0, byteCount), unconsumedInbound)
            return
        }
        connection.consume(self, byteCount: byteCount)
    }

    public var queuedOutboundBytes: Int { outboundBytes }

    /// DATA bytes received on this stream and not yet returned with `consume`.
    public var unconsumedInboundBytes: Int { unconsumedInbound }
}
