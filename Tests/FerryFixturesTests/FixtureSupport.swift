import FerryFixtures
@testable import FerryH2
import Foundation
import NIOCore
import NIOEmbedded
import XCTest

/// The fixtures directory at the top of the repository.
let fixturesDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("fixtures")

func fixtureNames() throws -> [String] {
    try FileManager.default.contentsOfDirectory(atPath: fixturesDirectory.path)
        .filter { $0.hasSuffix(".fixture") }.map { String($0.dropLast(".fixture".count)) }.sorted()
}

func loadFixture(_ name: String) throws -> Fixture {
    try Fixture(parsing: readFile(fixturesDirectory.appendingPathComponent("\(name).fixture").path))
}

/// What fixtures/expect.py decoded (independently, with python's hyperframe and hpack).
struct Expectation: Decodable {
    struct StreamSummary: Decodable, Equatable {
        var headers: [[String]]?
        var informational: [[[String]]]
        var trailers: [[String]]?
        var end_stream: Bool
        var reset: UInt32?
        var body_length: Int
        var body_fnv1a64: String
    }

    var fixture: String
    var client: [String: StreamSummary]
    var server: [String: StreamSummary]
}

func loadExpectation(_ name: String) throws -> Expectation {
    let data = try Data(contentsOf: fixturesDirectory.appendingPathComponent("\(name).expect.json"))
    return try JSONDecoder().decode(Expectation.self, from: data)
}

func fnv1a64(_ bytes: ByteBuffer) -> String {
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    for byte in bytes.readableBytesView {
        hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3
    }
    let text = String(hash, radix: 16)
    return String(repeating: "0", count: 16 - text.count) + text
}

/// What one side of Ferry's framing layer delivered for one stream. Touched on one event loop
/// while the connection lives and read by the test after it closed.
final class ReplayedStream: H2StreamDelegate, @unchecked Sendable {
    var headers: H2Headers?
    var trailers: H2Headers?
    var body = ByteBuffer()
    var ended = false
    var closeError: H2StreamError?

    func streamReceivedHeaders(_ stream: H2Stream, headers: H2Headers, endStream: Bool) {
        self.headers = headers
        if endStream { ended = true }
    }

    func streamReceivedData(_ stream: H2Stream, data: ByteBuffer) {
        body.writeImmutableBuffer(data)
        stream.consume(data.readableBytes)
    }

    func streamReceivedEnd(_ stream: H2Stream) { ended = true }
    func streamReceivedTrailers(_ stream: H2Stream, trailers: H2Headers) { self.trailers = trailers; ended = true }
    func streamSentData(_ stream: H2Stream, byteCount: Int) {}
    func streamClosed(_ stream: H2Stream, error: H2StreamError?) { closeError = error }

    /// The parts of the expectation this side can observe.
    func check(against expected: Expectation.StreamSummary, _ label: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(headers?.pairs.map { [$0.name, $0.value] }, expected.headers, "\(label): headers", file: file, line: line)
        XCTAssertEqual(trailers?.pairs.map { [$0.name, $0.value] }, expected.trailers, "\(label): trailers", file: file, line: line)
        XCTAssertEqual(body.readableBytes, expected.body_length, "\(label): body length", file: file, line: line)
        XCTAssertEqual(fnv1a64(body), expected.body_fnv1a64, "\(label): body bytes", file: file, line: line)
        XCTAssertEqual(ended, expected.end_stream, "\(label): end of stream", file: file, line: line)
        // A reset after the sender had already ended the stream finds it closed and is ignored
        // (RFC 9113 5.1); one that arrives while the stream is open must be seen with its code.
        if let reset = expected.reset, !(ended && closeError == nil) {
            XCTAssertEqual(closeError, .resetByPeer(H2ErrorCode(reset)), "\(label): reset", file: file, line: line)
        }
    }
}

/// Windows and frames as large as HTTP/2 allows: the recorded peer obeyed someone else's limits.
var replaySettings: H2Settings {
    var s = H2Settings()
    s.initialStreamWindow = 0x7fff_ffff
    s.connectionWindow = 0x7fff_ffff
    s.maxFrameSize = 16_777_215
    s.maxConcurrentStreams = 10_000
    return s
}

func buffer(_ bytes: [UInt8]) -> ByteBuffer {
    var b = ByteBufferAllocator().buffer(capacity: bytes.count)
    b.writeBytes(bytes)
    return b
}
