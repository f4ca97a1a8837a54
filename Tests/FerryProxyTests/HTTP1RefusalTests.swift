@testable import FerryProxy
import NIOCore
import NIOEmbedded
import XCTest

final class HTTP1RefusalTests: XCTestCase {
    private func verdict(_ text: String) -> HTTP1Refusal.Verdict? {
        HTTP1Refusal.verdict(ByteBuffer(string: text).readableBytesView)
    }

    func testTheFirstBytesTellThePrefaceFromARequestLine() {
        XCTAssertEqual(verdict("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), .http2)
        XCTAssertEqual(verdict("PRI "), .http2, "four bytes of the preface decide")
        XCTAssertNil(verdict("PR"), "too few to tell from POST")
        XCTAssertNil(verdict("P"))
        XCTAssertEqual(verdict("POST /x HTTP/1.1\r\nHost: a\r\n\r\n"), .http1(requestLine: "POST /x HTTP/1.1"))
        XCTAssertEqual(verdict("GET / HTTP/1.0\n\n"), .http1(requestLine: "GET / HTTP/1.0"))
        XCTAssertEqual(verdict("\u{16}\u{03}\u{01}\u{02}"), .other, "a TLS ClientHello is left to the HTTP/2 connection")
        XCTAssertEqual(verdict("get / HTTP/1.1"), .other, "methods are upper case")
        XCTAssertNil(verdict("GE"))
    }

    /// Records what reaches the end of the pipeline (the HTTP/2 connection's place).
    private final class Behind: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        var read = ByteBuffer()
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var bytes = unwrapInboundIn(data)
            read.writeBuffer(&bytes)
        }
    }

    func testAnHTTP1ClientGetsA505AndNoHTTP2Bytes() throws {
        var lines: [String] = []
        let channel = EmbeddedChannel()
        defer { _ = try? channel.finish(acceptAlreadyClosed: true) }
        let behind = Behind()
        try channel.pipeline.syncOperations.addHandler(HTTP1Refusal { lines.append($0) })
        try channel.pipeline.syncOperations.addHandler(behind)
        _ = try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        channel.writeAndFlush(ByteBuffer(bytes: [0, 0, 0, 4, 0, 0, 0, 0, 0]), promise: nil)   // the connection's SETTINGS
        XCTAssertNil(try channel.readOutbound(as: ByteBuffer.self), "held until the client's first bytes")
        try channel.writeInbound(ByteBuffer(string: "GET /health HTTP/1.1\r\nHost: a\r\n\r\n"))
        let answer = try XCTUnwrap(try channel.readOutbound(as: ByteBuffer.self))
        let text = String(buffer: answer)
        XCTAssertTrue(text.hasPrefix("HTTP/1.1 505 HTTP Version Not Supported\r\n"), text)
        XCTAssertTrue(text.hasSuffix(HTTP1Refusal.body))
        XCTAssertTrue(text.contains("Content-Length: \(HTTP1Refusal.body.utf8.count)\r\n"))
        XCTAssertNil(try channel.readOutbound(as: ByteBuffer.self), "the held SETTINGS never go out")
        XCTAssertEqual(behind.read.readableBytes, 0, "the HTTP/2 connection reads nothing")
        XCTAssertEqual(lines, ["GET /health HTTP/1.1"])
        XCTAssertFalse(channel.isActive, "closed after the answer")
    }

    func testAnHTTP2ClientPassesThroughUntouched() throws {
        let channel = EmbeddedChannel()
        defer { _ = try? channel.finish(acceptAlreadyClosed: true) }
        let behind = Behind()
        try channel.pipeline.syncOperations.addHandler(HTTP1Refusal { _ in XCTFail("not HTTP/1") })
        try channel.pipeline.syncOperations.addHandler(behind)
        _ = try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        channel.writeAndFlush(ByteBuffer(bytes: [0, 0, 0, 4, 0, 0, 0, 0, 0]), promise: nil)
        try channel.writeInbound(ByteBuffer(string: "PR"))          // split across reads
        XCTAssertEqual(behind.read.readableBytes, 0)
        try channel.writeInbound(ByteBuffer(string: "I * HTTP/2.0\r\n\r\nSM\r\n\r\n"))
        XCTAssertEqual(String(buffer: behind.read), "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        XCTAssertEqual(try channel.readOutbound(as: ByteBuffer.self), ByteBuffer(bytes: [0, 0, 0, 4, 0, 0, 0, 0, 0]), "the held SETTINGS go out")
        XCTAssertThrowsError(try channel.pipeline.syncOperations.context(handlerType: HTTP1Refusal.self), "it stepped aside")
        try channel.writeInbound(ByteBuffer(string: "more"))
        XCTAssertEqual(behind.read.readableBytes, 28)
    }
}
