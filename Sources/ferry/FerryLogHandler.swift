#if canImport(Glibc)
import Glibc
#endif
import FerryAdmin
import Logging

/// How log lines are written: logfmt text (`ts=... level=info msg="..." key=value`, a value
/// quoted when it has a space, a quote, an `=` or nothing), or one JSON object per line.
enum LogFormat: String, CaseIterable {
    case text
    case json
}

/// Ferry's log handler: one line per event on standard error, timestamped to the millisecond
/// (UTC), the level, the message, the source module and the metadata, sorted by key.
struct FerryLogHandler: LogHandler {
    var logLevel: Logger.Level
    var metadata: Logger.Metadata = [:]
    let format: LogFormat

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var fields = self.metadata
        if let extra = event.metadata { fields.merge(extra) { $1 } }
        let line = Self.line(format: format, timestamp: Self.timestamp(), level: event.level, message: "\(event.message)",
                             source: event.source, fields: fields)
        // One write(2) per line: lines from several threads do not interleave.
        var bytes = Array(line.utf8)
        var written = 0
        while written < bytes.count {
            let n = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress! + written, $0.count - written) }
            if n <= 0 { break }
            written += n
        }
    }

    static func line(format: LogFormat, timestamp: String, level: Logger.Level, message: String, source: String,
                     fields: Logger.Metadata) -> String {
        let sorted = fields.sorted { $0.key < $1.key }.map { ($0.key, "\($0.value)") }
        switch format {
        case .text:
            var parts = ["ts=\(timestamp)", "level=\(level)", "msg=\(logfmt(message))", "source=\(logfmt(source))"]
            parts += sorted.map { "\(logfmt($0.0, isKey: true))=\(logfmt($0.1))" }
            return parts.joined(separator: " ") + "\n"
        case .json:
            var parts = ["\"ts\":\(json(timestamp))", "\"level\":\(json(level.rawValue))", "\"msg\":\(json(message))",
                         "\"source\":\(json(source))"]
            parts += sorted.filter { !["ts", "level", "msg", "source"].contains($0.0) }.map { "\(json($0.0)):\(json($0.1))" }
            return "{" + parts.joined(separator: ",") + "}\n"
        }
    }

    /// A logfmt value: bare when it is safe, else quoted with `"`, `\` and control characters escaped.
    static func logfmt(_ text: String, isKey: Bool = false) -> String {
        let needsQuotes = text.isEmpty || text.unicodeScalars.contains { $0 == " " || $0 == "\"" || $0 == "=" || $0 == "\\" || $0.value < 0x20 }
        guard needsQuotes else { return text }
        if isKey { return text.map { $0 == " " || $0 == "=" || $0 == "\"" ? "_" : String($0) }.joined() }
        return JSON.string(text)
    }

    /// A JSON string literal (the admin server's own escaping).
    static func json(_ text: String) -> String { JSON.string(text) }

    /// Now, UTC, to the millisecond: `2026-12-02T01:22:03.456Z`.
    static func timestamp() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var seconds = now.tv_sec
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func pad(_ n: Int32, _ width: Int) -> String {
            let text = String(n)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))T"
            + "\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2)).\(pad(Int32(now.tv_nsec / 1_000_000), 3))Z"
    }
}
