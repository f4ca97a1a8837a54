/// Header blocks for responses the proxy makes itself, as (name, value) pairs in wire order.
public enum GRPCResponses {
    public static let contentType = "application/grpc"

    /// True for a request or response whose content-type is `application/grpc` or `application/grpc+...`/`;...`.
    public static func isGRPCContentType(_ value: String) -> Bool {
        GRPCHeaderValues.isGRPCContentType(value.utf8)
    }

    /// A Trailers-Only response: one HEADERS frame with END_STREAM carrying the status.
    public static func trailersOnly(_ code: GRPCStatusCode, message: String) -> [(String, String)] {
        [(":status", "200"), ("content-type", contentType)] + trailers(code, message: message)
    }

    /// Trailers that end a response whose headers (and perhaps data) were already sent.
    public static func trailers(_ code: GRPCStatusCode, message: String) -> [(String, String)] {
        var fields = [("grpc-status", String(code.rawValue))]
        if !message.isEmpty { fields.append(("grpc-message", GRPCMessageEncoding.encode(message))) }
        return fields
    }
}
