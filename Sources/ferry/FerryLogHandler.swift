#if canImport(Glibc)
import Glibc
#endif
import FerryAdmin
import FerryConfig
import Logging

/// Ferry's log handler: one line per event on standard error, as logfmt text (`ts=...
/// level=info msg="..." key=value`, a value quoted when it has a space, a quote, an `=` or
/// nothing) or one JSON object, timestamped to the millisecond
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

    static func logfmt(_ text: String, isKey: Bool = false) -> String {
        isKey ? LogText.logfmtKey(text) : LogText.logfmt(text)
    }

    /// A JSON string literal (the admin server's own escaping).
    static func json(_ text: String) -> String { JSON.string(text) }

    /// Now, UTC, to the millisecond: `2026-12-02T01:22:03.456Z`.
    static func timestamp() -> String { LogText.timestamp() }
}
