import FerryConfig
import Logging

enum LogSetup {
    /// The levels `--log-level` takes, most verbose first.
    static let levels = Logger.Level.allCases.map(\.rawValue)

    /// Checks a `--log-level` and `--log-format` pair (the command line's errors name the mistake).
    static func parse(level: String, format: String) throws(UsageError) -> (Logger.Level, LogFormat) {
        guard let parsedLevel = Logger.Level(rawValue: level) else {
            throw UsageError("--log-level takes one of \(levels.joined(separator: ", ")), not '\(level)'")
        }
        guard let parsedFormat = LogFormat(rawValue: format) else {
            throw UsageError("--log-format takes text or json, not '\(format)'")
        }
        return (parsedLevel, parsedFormat)
    }

    /// The log settings `ferry run` uses: a flag given on the command line, else the
    /// configuration's `log:` section, else info and text.
    static func parse(level: String?, format: String?, config: LogConfig) throws(UsageError) -> (Logger.Level, LogFormat) {
        let (parsedLevel, parsedFormat) = try parse(level: level ?? config.level ?? "info", format: format ?? config.format?.rawValue ?? "text")
        return (parsedLevel, parsedFormat)
    }

    static func bootstrap(level: Logger.Level, format: LogFormat = .text) -> Logger {
        LoggingSystem.bootstrap { _ in FerryLogHandler(logLevel: level, format: format) }
        return Logger(label: "ferry")
    }
}
