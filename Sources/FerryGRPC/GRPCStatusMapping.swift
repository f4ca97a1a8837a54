/// How HTTP/2-level outcomes become gRPC statuses (gRPC's PROTOCOL-HTTP2 and
/// http-grpc-status-mapping documents).
public enum GRPCStatusMapping {
    /// The status a gRPC client would see for a stream reset with this HTTP/2 error code.
    public static func status(forResetCode code: UInt32) -> GRPCStatusCode {
        switch code {
        case 0x7: return .unavailable        // REFUSED_STREAM: not processed, safe to retry
        case 0x8: return .cancelled          // CANCEL
        case 0xb: return .resourceExhausted  // ENHANCE_YOUR_CALM
        case 0xc: return .permissionDenied   // INADEQUATE_SECURITY
        default: return .internal            // NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, ...
        }
    }

    /// The status for a response that carries no `grpc-status`, from its HTTP status.
    public static func status(forHTTPStatus status: Int) -> GRPCStatusCode {
        switch status {
        case 400: return .internal
        case 401: return .unauthenticated
        case 403: return .permissionDenied
        case 404: return .unimplemented
        case 429, 502, 503, 504: return .unavailable
        default: return .unknown
        }
    }
}
