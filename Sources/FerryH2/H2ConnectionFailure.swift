/// Why a connection ended other than by an orderly close, as a value (metrics and logs read
/// its cases, not its text).
public enum H2ConnectionFailure: Sendable, Equatable, CustomStringConvertible {
    /// This side ended it with GOAWAY `code` for what the peer did (a flood, a frame on a
    /// closed stream, a header block far over the limit, too many stream errors...).
    case sentGoAway(H2ErrorCode, detail: String)
    /// nghttp2 found the peer breaking the protocol (and answered with its GOAWAY).
    case peerProtocolError(String)
    /// nghttp2 failed on this side (a fatal error: its session is unusable).
    case internalError(String)
    /// This side closed it on purpose (no SETTINGS in time, no answer to PING, a drain timeout).
    case closedByUs(H2ErrorCode, reason: String)
    /// The channel failed (a socket error, the peer's reset).
    case channelError(String)

    public var description: String {
        switch self {
        case .sentGoAway(let code, let detail): return "sent GOAWAY \(code.name)" + (detail.isEmpty ? "" : ": \(detail)")
        case .peerProtocolError(let message), .internalError(let message): return "nghttp2: \(message)"
        case .closedByUs(_, let reason): return reason
        case .channelError(let message): return message
        }
    }

    /// The label of the protocol error that ended the connection (`enhance_your_calm`,
    /// `protocol_error`, ...); nil when it ended for another reason.
    public var protocolErrorKind: String? {
        switch self {
        case .sentGoAway(let code, _): return code.name.lowercased()
        case .peerProtocolError: return "protocol_error"
        case .internalError, .closedByUs, .channelError: return nil
        }
    }
}
