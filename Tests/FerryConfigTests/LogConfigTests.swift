import FerryConfig
import XCTest
#if canImport(Glibc)
import Glibc
#endif

final class LogConfigTests: XCTestCase {
    private let base = """
    listeners:
      - { name: in, address: "127.0.0.1:4140", service: svc }
    services:
      svc: { endpoints: ["127.0.0.1:8080"] }

    """

    private func parse(_ extra: String) throws -> FerryConfig {
        try ConfigLoader.parse(yaml: base + extra, source: "ferry.yaml", directory: "/etc/ferry")
    }

    private func message(_ extra: String) -> String? {
        do {
            _ = try parse(extra)
            return nil
        } catch {
            return "\(error)"
        }
    }

    func testTheAccessLogHasItsOwnDestinationFormatAndSample() throws {
        XCTAssertNil(try parse("").accessLog, "off unless asked for")
        XCTAssertNil(try parse("access_log: false\n").accessLog)
        let on = try XCTUnwrap(try parse("access_log: true\n").accessLog)
        XCTAssertEqual(on.destination, .stdout)
        XCTAssertEqual(on.format, .text)
        XCTAssertEqual(on.sample, 1)
        XCTAssertTrue(on.generateRequestID)
        let file = try XCTUnwrap(try parse("access_log: { path: logs/access.log, format: json, sample: 0.25, request_id: forward }\n").accessLog)
        XCTAssertEqual(file.destination, .file("/etc/ferry/logs/access.log"), "relative to the configuration's directory")
        XCTAssertEqual(file.format, .json)
        XCTAssertEqual(file.sample, 0.25)
        XCTAssertFalse(file.generateRequestID)
        XCTAssertEqual(try parse("access_log: { path: stderr }\n").accessLog?.destination, .stderr)
        XCTAssertEqual(try parse("access_log: { path: /var/log/ferry/access.log }\n").accessLog?.destination, .file("/var/log/ferry/access.log"))
    }

    func testAccessLogMistakesAreNamedAtTheirLine() throws {
        let format = try XCTUnwrap(message("access_log: { format: yaml }\n"))
        XCTAssertTrue(format.hasPrefix("ferry.yaml:5:"), format)
        XCTAssertTrue(format.contains("text (logfmt) or json, not \"yaml\""), format)
        XCTAssertTrue(try XCTUnwrap(message("access_log: { sample: 0 }\n")).contains("above 0 and at most 1"))
        XCTAssertTrue(try XCTUnwrap(message("access_log: { request_id: always }\n")).contains("generate"))
        XCTAssertTrue(try XCTUnwrap(message("access_log: { file: x }\n")).contains("unknown key \"file\""))
        let moved = try XCTUnwrap(message("admin: { address: \"127.0.0.1:9990\", access_log: true }\n"))
        XCTAssertTrue(moved.contains("write access_log: at the top level"), moved)
    }

    func testTheLogSectionSetsLevelAndFormat() throws {
        XCTAssertEqual(try parse("").log, LogConfig())
        let log = try parse("log: { level: debug, format: json }\n").log
        XCTAssertEqual(log.level, "debug")
        XCTAssertEqual(log.format, .json)
        XCTAssertTrue(try XCTUnwrap(message("log: { level: verbose }\n")).contains("trace, debug, info, notice, warning, error, critical, not \"verbose\""))
        XCTAssertTrue(try XCTUnwrap(message("log: { format: xml }\n")).contains("not \"xml\""))
    }

    func testAReloadSaysTheLogsChanged() throws {
        let before = try parse("")
        let after = try parse("log: { format: json }\naccess_log: true\n")
        let changes = ConfigChanges.describe(from: before, to: after)
        XCTAssertTrue(changes.contains("log changed (takes effect at the next start)"), "\(changes)")
        XCTAssertTrue(changes.contains("access_log changed"), "\(changes)")
    }
}

final class CheckAllErrorsTests: XCTestCase {
    func testEveryErrorInTheFileIsReportedInOrder() throws {
        let yaml = """
        admin: { adress: "127.0.0.1:9990" }
        runtime: { event_loops: 0 }
        listeners:
          - { name: in, address: "127.0.0.1:4140", service: broken }
          - { name: out, address: "300.1.1.1:4141", service: good }
          - { name: other, address: "127.0.0.1:4142", service: nowhere }
        services:
          good: { endpoints: ["127.0.0.1:8080"] }
          broken: { endpoints: ["127.0.0.1:8081"], timeout: soon }
        tracing: {}

        """
        let path = "/tmp/ferry-check-\(getpid()).yaml"
        FileManagerless.store(path, yaml)
        defer { unlink(path) }
        let (config, errors) = ConfigLoader.check(path: path)
        XCTAssertNil(config)
        let lines = errors.map(\.line)
        XCTAssertEqual(lines, lines.sorted(), "in the file's order")
        let text = errors.map(\.description)
        XCTAssertEqual(errors.count, 6, text.joined(separator: "\n"))
        XCTAssertTrue(text[0].contains("admin.adress: unknown key \"adress\" (did you mean \"address\"?)"), text[0])
        XCTAssertTrue(text[1].contains("runtime.event_loops"), text[1])
        XCTAssertTrue(text[2].contains("300.1.1.1"), text[2])
        XCTAssertTrue(text[3].contains("no service named \"nowhere\""), text[3])
        XCTAssertTrue(text[4].contains("services.broken.timeout"), text[4])
        XCTAssertTrue(text[5].contains("unknown key \"tracing\""), text[5])
        XCTAssertFalse(text.contains { $0.contains("no service named \"broken\"") }, "a broken service is not also missing")

        // load() still throws the first error only.
        XCTAssertThrowsError(try ConfigLoader.load(path: path))
        FileManagerless.store(path, "listeners: []\nservices: {}\n")
        let empty = ConfigLoader.check(path: path).errors.map(\.description)
        XCTAssertEqual(empty.count, 2, "\(empty)")
    }
}

private enum FileManagerless {
    static func store(_ path: String, _ text: String) {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        _ = text.withCString { write(fd, $0, strlen($0)) }
        close(fd)
    }
}
