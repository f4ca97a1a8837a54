/// `ferry-deadline`: a call's deadline as an absolute time, carried between Ferry hops for
/// plain HTTP/2 traffic (gRPC has `grpc-timeout`). The value is milliseconds since the Unix
/// epoch in decimal ASCII; an absolute time survives queues and hops without each adding its
/// own delay, at the price of relying on synchronised clocks (NTP) between hosts.
public enum DeadlineHeader {
    public static let name = "ferry-deadline"

    /// The time left (nanoseconds, possibly 0) before the deadline in `value`, or nil when the
    /// value is not 1 to 16 decimal digits.
    public static func remaining(_ value: UnsafeRawBufferPointer, wallClockMillis now: Int64) -> Int64? {
        guard (1...16).contains(value.count) else { return nil }
        var millis: Int64 = 0
        for byte in value {
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
            millis = millis * 10 + Int64(byte - UInt8(ascii: "0"))
        }
        let left = millis - now
        return left > 0 ? left.multipliedReportingOverflow(by: 1_000_000).overflow ? .max : left * 1_000_000 : 0
    }

    public static func remaining(_ value: String, wallClockMillis now: Int64) -> Int64? {
        var value = value
        return value.withUTF8 { remaining(UnsafeRawBufferPointer($0), wallClockMillis: now) }
    }

    /// The header value for a deadline at monotonic `expiresAt`, given the monotonic and
    /// wall clocks read now. Rounded down: the next hop never gets more time than there is.
    public static func value(expiresAt: Int64, monotonicNow: Int64, wallClockMillis: Int64) -> String {
        let left = max(0, expiresAt - monotonicNow) / 1_000_000
        return String(wallClockMillis + left)
    }
}
