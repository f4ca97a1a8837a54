import FerryConfig
@testable import FerryProxy
import FerryH2
import NIOCore
import NIOEmbedded
import XCTest
#if canImport(Glibc)
import Glibc
#endif

final class AccessLogTests: XCTestCase {
    private func entry() -> AccessLogEntry {
        var e = AccessLogEntry()
        e.startUnixMillis = 1_796_174_523_456    // 2026-12-02T01:22:03.456Z
        e.listener = "in"
        e.client = "[::1]:50312"
        e.identity = "spiffe://mesh.local/ns/a/sa/frontend"
        e.authority = "greeter.svc:8080"
        e.method = "POST"
        e.path = "/helloworld.Greeter/SayHello"
        e.requestID = "id with \"quotes\""
        e.service = "greeter"
        e.grpc = true
        e.grpcStatus = 14
        e.httpStatus = 200
        e.durationNanoseconds = 12_345_678
        e.requestBytes = 17
        e.responseBytes = 0
        e.attempts = 2
        e.endpointsTried = ["10.0.0.1:8080", "10.0.0.2:8080"]
        e.deadlineNanoseconds = 300_000_000
        e.proxyError = "no endpoint answered"
        return e
    }

    func testATextLineIsLogfmtWithQuotedValues() {
        let line = entry().line(.text)
        XCTAssertTrue(line.hasSuffix("\n"))
        XCTAssertEqual(line, "time=2026-12-02T01:22:03.456Z listener=in client=[::1]:50312 identity=spiffe://mesh.local/ns/a/sa/frontend "
            + "authority=greeter.svc:8080 method=POST path=/helloworld.Greeter/SayHello request_id=\"id with \\\"quotes\\\"\" "
            + "service=greeter status=UNAVAILABLE grpc_status=14 http_status=200 duration_ms=12.345 request_bytes=17 response_bytes=0 "
            + "attempts=2 endpoints=10.0.0.1:8080,10.0.0.2:8080 endpoint=10.0.0.2:8080 deadline_ms=300 error=\"no endpoint answered\"\n")
    }

    func testAJSONLineHasNumbersListsAndNull() {
        var e = entry()
        e.deadlineNanoseconds = nil
        e.identity = nil
        e.proxyError = nil
        let line = e.line(.json)
        XCTAssertTrue(line.hasPrefix("{\"time\":\"2026-12-02T01:22:03.456Z\",\"listener\":\"in\",\"client\":\"[::1]:50312\",\"authority\""), line)
        XCTAssertTrue(line.contains("\"request_id\":\"id with \\\"quotes\\\"\""), line)
        XCTAssertTrue(line.contains("\"grpc_status\":14,\"http_status\":200,\"duration_ms\":12.345,\"request_bytes\":17"), line)
        XCTAssertTrue(line.contains("\"endpoints\":[\"10.0.0.1:8080\",\"10.0.0.2:8080\"],\"endpoint\":\"10.0.0.2:8080\",\"deadline_ms\":null}"), line)
        XCTAssertFalse(line.contains("identity") || line.contains("\"error\""))
        var plain = AccessLogEntry()
        plain.httpStatus = 404
        XCTAssertTrue(plain.line(.json).contains("\"status\":\"404\",\"http_status\":404"), "plain HTTP/2: the HTTP status")
        XCTAssertTrue(plain.line(.text).contains("endpoints=- endpoint=-"), "no attempt was made")
    }

    func testControlCharactersAreEscapedAndNumbersWrittenWhole() {
        var e = entry()
        e.path = "/a\nb\u{01}c\\d\te"
        e.requestBytes = Int.max
        e.responseBytes = 1_000_000_000
        e.durationNanoseconds = 1_000_000_007_999
        let json = e.line(.json)
        XCTAssertTrue(json.contains("\"path\":\"/a\\nb\\u0001c\\\\d\\te\""), json)
        XCTAssertTrue(json.contains("\"request_bytes\":9223372036854775807,\"response_bytes\":1000000000"), json)
        XCTAssertTrue(json.contains("\"duration_ms\":1000000.007,"), json)
        let text = e.line(.text)
        XCTAssertTrue(text.contains("path=\"/a\\nb\\u0001c\\\\d\\te\" "), text)
        XCTAssertTrue(text.contains(" request_bytes=9223372036854775807 response_bytes=1000000000 "), text)
        XCTAssertEqual(text.filter { $0 == "\n" }.count, 1, "one line, whatever the values hold")
        var zero = AccessLogEntry()
        zero.startUnixMillis = 0
        XCTAssertTrue(zero.line(.json).hasPrefix("{\"time\":\"1970-01-01T00:00:00.000Z\""), zero.line(.json))
        XCTAssertTrue(zero.line(.json).contains("\"attempts\":0,\"endpoints\":[],"), zero.line(.json))
    }

    func testGeneratedRequestIDsAreVersion4UUIDs() {
        let id = AccessLog.uuid(0xFFFF_FFFF_FFFF_FFFF, 0)
        XCTAssertEqual(id, "ffffffff-ffff-4fff-8000-000000000000")
        XCTAssertEqual(AccessLog.uuid(0x0123_4567_89AB_CDEF, 0xFEDC_BA98_7654_3210), "01234567-89ab-4def-bedc-ba9876543210")
    }

    private func sink(_ path: String, format: LogFormat = .text) throws -> AccessLogSink {
        var config = AccessLogConfig()
        config.destination = .file(path)
        config.format = format
        return try AccessLogSink(config: config, writer: AccessLogWriter())
    }

    func testARequestIDIsKeptGeneratedOrOnlyPassedOn() throws {
        let path = NSTemporaryPath()
        defer { unlink(path) }
        let log = AccessLog(sink: try sink(path), eventLoop: EmbeddedEventLoop())
        let given = log.requestID(in: H2Headers([("x-request-id", "abc-123")]))
        XCTAssertEqual(given.id, "abc-123")
        XCTAssertFalse(given.generated)
        let made = log.requestID(in: H2Headers([(":path", "/x")]))
        XCTAssertTrue(made.generated)
        XCTAssertEqual(made.id?.count, 36)
        XCTAssertNotEqual(made.id, log.requestID(in: H2Headers([])).id, "each call its own")
        let long = log.requestID(in: H2Headers([("x-request-id", String(repeating: "a", count: 201))]))
        XCTAssertTrue(long.generated, "an id longer than 200 bytes is replaced")
    }

    func testLinesGoToTheFileInBatchesAndNoneIsLost() throws {
        let path = NSTemporaryPath()
        defer { unlink(path) }
        let loop = EmbeddedEventLoop()
        let sink = try sink(path)
        let log = AccessLog(sink: sink, eventLoop: loop)
        var e = entry()
        for i in 0..<1000 {
            e.requestID = "r\(i)"
            log.write(e)
        }
        // 1,000 lines of ~400 bytes: several batches went at 64 KiB; the rest waits for the timer.
        loop.advanceTime(by: AccessLog.flushInterval)
        for _ in 0..<1000 where sink.writer.counts.written < 1000 { usleep(10_000) }
        let text = try String(contentsOfFileAtPath: path)
        let lines = text.split(separator: "\n")
        XCTAssertEqual(lines.count, 1000)
        let ids: [String] = lines.map { String($0.split(separator: " ")[7]) }
        XCTAssertEqual(ids, (0..<1000).map { "request_id=r\($0)" }, "in order")
        XCTAssertEqual(sink.writer.counts.written, 1000)
        XCTAssertEqual(sink.writer.counts.dropped, 0)
    }

    func testAFileThatCannotBeOpenedNamesThePathAndWhy() {
        XCTAssertThrowsError(try sink("/nonexistent-dir/access.log")) { error in
            XCTAssertEqual("\(error)", "access_log.path: cannot open /nonexistent-dir/access.log for appending: No such file or directory")
        }
    }

    func testAPipeGetsWholeLinesOfAtMostPIPEBUFPerWrite() throws {
        // 40 lines of 300 bytes in one batch: cut at line ends into pieces of at most 4,096.
        let line = Array(String(repeating: "x", count: 299).utf8) + [UInt8(ascii: "\n")]
        let bytes = Array((0..<40).map { _ in line }.joined())
        let pieces = AccessLogSink.pieces(bytes, limit: 4096)
        XCTAssertEqual(pieces.map(\.count), [3900, 3900, 3900, 300])
        XCTAssertEqual(pieces.first?.lowerBound, 0)
        XCTAssertEqual(pieces.last?.upperBound, bytes.count)
        let long = Array(String(repeating: "y", count: 5000).utf8) + [10] + line
        XCTAssertEqual(AccessLogSink.pieces(long, limit: 4096).map(\.count), [5001, 300], "a longer line goes whole")
        XCTAssertEqual(AccessLogSink.pieces(line, limit: Int.max), [0..<300], "a file takes the batch in one write")

        var fds: [Int32] = [0, 0]
        XCTAssertEqual(pipe(&fds), 0)
        defer { close(fds[0]) }
        let sink = try sink("/proc/self/fd/\(fds[1])")
        close(fds[1])
        XCTAssertTrue(sink.write(bytes))
        var received: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while received.count < bytes.count {
            let n = read(fds[0], &chunk, chunk.count)
            guard n > 0 else { break }
            received += chunk[0..<n]
        }
        XCTAssertEqual(received, bytes)
    }
}

private func NSTemporaryPath() -> String {
    var template = Array("/tmp/ferry-access-XXXXXX".utf8CString)
    let fd = mkstemp(&template)
    close(fd)
    return String(cString: template)
}

private extension String {
    init(contentsOfFileAtPath path: String) throws {
        let fd = open(path, O_RDONLY)
        defer { close(fd) }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = read(fd, &chunk, chunk.count)
            if n <= 0 { break }
            out += chunk[0..<n]
        }
        self = String(decoding: out, as: UTF8.self)
    }
}
