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
        text.isEmpty || text.utf8.contains(where: quotes)
    }

    /// A byte that makes a logfmt value need quotes: a space or control character, `"`, `=`, `\`.
    @inline(__always)
    package static func quotes(_ byte: UInt8) -> Bool {
        byte <= 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "=") || byte == UInt8(ascii: "\\") || byte == 0x7F
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
        return String(unsafeUninitializedCapacity: 32) { buffer in
            var line = LineBytes(buffer.baseAddress!)
            line.timestamp(unixMillis: millis)
            return line.count
        }
    }
}

/// A line being written into memory reserved for it (the access log writes one per call):
/// bytes stored through a pointer, whole runs copied with memcpy, no String per field. The
/// caller reserves enough: `worstCase(of:)` bounds what a string can take once escaped.
package struct LineBytes {
    private let base: UnsafeMutablePointer<UInt8>
    package private(set) var count = 0

    package init(_ base: UnsafeMutablePointer<UInt8>) { self.base = base }

    /// The most bytes `text` can take as a quoted, escaped JSON or logfmt value.
    @inline(__always)
    package static func worstCase(of text: String) -> Int { text.utf8.count * 6 + 2 }

    @inline(__always)
    package mutating func byte(_ byte: UInt8) {
        base[count] = byte
        count += 1
    }

    @inline(__always)
    package mutating func raw(_ bytes: UnsafeRawBufferPointer) {
        guard let source = bytes.baseAddress, bytes.count > 0 else { return }
        (base + count).update(from: source.assumingMemoryBound(to: UInt8.self), count: bytes.count)
        count += bytes.count
    }

    @inline(__always)
    package mutating func literal(_ text: StaticString) {
        (base + count).update(from: text.utf8Start, count: text.utf8CodeUnitCount)
        count += text.utf8CodeUnitCount
    }

    private static let hex: StaticString = "0123456789abcdef"

    /// `text` as a JSON string literal: `"`, `\` and control characters escaped, the rest as is.
    package mutating func jsonString(_ text: String) {
        byte(UInt8(ascii: "\""))
        var text = text
        text.withUTF8 { bytes in
            var start = 0
            for i in 0..<bytes.count {
                let b = bytes[i]
                guard b < 0x20 || b == UInt8(ascii: "\"") || b == UInt8(ascii: "\\") else { continue }
                raw(UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(bytes)[start..<i]))
                byte(UInt8(ascii: "\\"))
                switch b {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"): byte(b)
                case UInt8(ascii: "\n"): byte(UInt8(ascii: "n"))
                case UInt8(ascii: "\r"): byte(UInt8(ascii: "r"))
                case UInt8(ascii: "\t"): byte(UInt8(ascii: "t"))
                default:
                    literal("u00")
                    byte(Self.hex.utf8Start[Int(b >> 4)])
                    byte(Self.hex.utf8Start[Int(b & 0xF)])
                }
                start = i + 1
            }
            raw(UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(bytes)[start...]))
        }
        byte(UInt8(ascii: "\""))
    }

    /// A logfmt value: bare when safe, else quoted as a JSON string.
    package mutating func logfmt(_ text: String) {
        var text = text
        let bare = text.withUTF8 { bytes -> Bool in
            guard !bytes.isEmpty, !bytes.contains(where: LogText.quotes) else { return false }
            raw(UnsafeRawBufferPointer(bytes))
            return true
        }
        if !bare { jsonString(text) }
    }

    package mutating func int(_ value: Int64) {
        if value < 0 { byte(UInt8(ascii: "-")) }
        var rest = value.magnitude
        var digits = 1
        var scale: UInt64 = 10
        while digits < 20 && rest >= scale {
            digits += 1
            if scale > UInt64.max / 10 { break }
            scale *= 10
        }
        var at = count + digits
        count = at
        repeat {
            at -= 1
            base[at] = UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: rest % 10)
            rest /= 10
        } while rest > 0
    }

    /// `value` (0 or more) with exactly `width` digits (leading zeros), for a value below 10^width.
    package mutating func padded(_ value: Int, width: Int) {
        var rest = value
        var at = count + width
        count = at
        while at > count - width {
            at -= 1
            base[at] = UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: rest % 10)
            rest /= 10
        }
    }

    /// `2026-12-02T01:22:03.456Z`.
    package mutating func timestamp(unixMillis: Int64) {
        var seconds = time_t(unixMillis / 1000)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        padded(Int(parts.tm_year) + 1900, width: 4)
        byte(UInt8(ascii: "-"))
        padded(Int(parts.tm_mon) + 1, width: 2)
        byte(UInt8(ascii: "-"))
        padded(Int(parts.tm_mday), width: 2)
        byte(UInt8(ascii: "T"))
        padded(Int(parts.tm_hour), width: 2)
        byte(UInt8(ascii: ":"))
        padded(Int(parts.tm_min), width: 2)
        byte(UInt8(ascii: ":"))
        padded(Int(parts.tm_sec), width: 2)
        byte(UInt8(ascii: "."))
        padded(Int(unixMillis % 1000), width: 3)
        byte(UInt8(ascii: "Z"))
    }
}
