#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The pieces of Ferry's log lines, shared by the diagnostic log and the access log: logfmt
/// values and keys, and UTC timestamps to the millisecond.
package enum LogText {
    /// A logfmt value: bare when it is safe, else quoted with `"`, `\` and control characters
    /// escaped (as a JSON string is).
    package static func logfmt(_ text: String) -> String {
        needsQuotes(text) ? JSON.string(text) : text
    }

    /// A logfmt key: spaces, `=` and quotes become `_` (a key is never quoted).
    package static func logfmtKey(_ text: String) -> String {
        guard needsQuotes(text) else { return text }
        return String(text.unicodeScalars.map { $0 == " " || $0 == "=" || $0 == "\"" || $0 == "\\" || $0.value < 0x20 ? "_" : Character($0) })
    }

    private static func needsQuotes(_ text: String) -> Bool {
        text.isEmpty || text.utf8.contains { $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "=")
            || $0 == UInt8(ascii: "\\") || $0 < 0x20 || $0 == 0x7F }
    }

    /// The wall clock in milliseconds since 1970.
    package static func unixMillis() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Int64(now.tv_sec) * 1000 + Int64(now.tv_nsec) / 1_000_000
    }

    /// `2026-12-02T01:22:03.456Z` for a time in milliseconds since 1970 (now when nil).
    package static func timestamp(unixMillis: Int64? = nil) -> String {
        let millis = unixMillis ?? Self.unixMillis()
        var seconds = time_t(millis / 1000)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        var out = ""
        out.reserveCapacity(24)
        func pad(_ n: Int, _ width: Int) {
            let text = String(n)
            for _ in text.count..<width { out.append("0") }
            out += text
        }
        pad(Int(parts.tm_year) + 1900, 4); out.append("-"); pad(Int(parts.tm_mon) + 1, 2); out.append("-"); pad(Int(parts.tm_mday), 2)
        out.append("T"); pad(Int(parts.tm_hour), 2); out.append(":"); pad(Int(parts.tm_min), 2); out.append(":"); pad(Int(parts.tm_sec), 2)
        out.append("."); pad(Int(millis % 1000), 3); out.append("Z")
        return out
    }
}
