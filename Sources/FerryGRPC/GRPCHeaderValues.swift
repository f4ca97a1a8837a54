/// The gRPC header values the proxy reads, parsed from their bytes (no String, no Array), so the
/// request path reads them without allocating. Each String-taking API of this module reads
/// through these.
public enum GRPCHeaderValues {
    /// `grpc-status`: 1 to 3 decimal digits, as a number. Numbers above 16 are kept (a peer may
    /// send them; gRPC clients read them as UNKNOWN); anything else is nil.
    @inlinable
    public static func status<Bytes: Collection<UInt8>>(_ value: Bytes) -> Int? {
        guard (1...3).contains(value.count) else { return nil }
        var n = 0
        for byte in value {
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
            n = n * 10 + Int(byte &- UInt8(ascii: "0"))
        }
        return n
    }

    /// `content-type` names gRPC: `application/grpc`, or it followed by `+` (a codec) or `;`.
    @inlinable
    public static func isGRPCContentType<Bytes: Collection<UInt8>>(_ value: Bytes) -> Bool {
        let prefix: StaticString = "application/grpc"
        guard value.count >= prefix.utf8CodeUnitCount else { return false }
        var index = value.startIndex
        for i in 0..<prefix.utf8CodeUnitCount {
            guard value[index] == prefix.utf8Start[i] else { return false }
            index = value.index(after: index)
        }
        guard index != value.endIndex else { return true }
        return value[index] == UInt8(ascii: "+") || value[index] == UInt8(ascii: ";")
    }

    /// `grpc-retry-pushback-ms` (gRFC A6): a non-negative decimal number of milliseconds;
    /// anything else (negative, malformed, absurdly long) asks the client not to retry.
    @inlinable
    public static func retryPushback<Bytes: Collection<UInt8>>(_ value: Bytes?) -> GRPCRetryPushback {
        guard let value else { return .none }
        guard (1...10).contains(value.count) else { return .refuse }
        var ms: Int64 = 0
        for byte in value {
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return .refuse }
            ms = ms * 10 + Int64(byte &- UInt8(ascii: "0"))
        }
        return .after(nanoseconds: ms * 1_000_000)
    }
}

/// What a server's `grpc-retry-pushback-ms` asks of a retrying client.
public enum GRPCRetryPushback: Sendable, Equatable {
    /// No pushback sent: the client's own backoff applies.
    case none
    /// Wait this long before the retry.
    case after(nanoseconds: Int64)
    /// Do not retry (a negative or malformed value).
    case refuse

    public static let headerName = "grpc-retry-pushback-ms"
}
