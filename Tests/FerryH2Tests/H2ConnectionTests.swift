@testable import FerryH2
import CNghttp2
import NIOCore
import NIOEmbedded
import XCTest

/// Records what a stream hears; consumes received bytes only when told to.
final class StreamRecorder: H2StreamDelegate {
    var headers: H2Headers?
    var trailers: H2Headers?
    var body = ByteBuffer()
    var ended = false
    var closed = false
    var closeError: H2StreamError?
    var autoConsume = true

    func streamReceivedHeaders(_ stream: H2Stream, headers: H2Headers, endStream: Bool) {
        self.headers = headers
        if endStream { ended = true }
    }

    func streamReceivedData(_ stream: H2Stream, data: ByteBuffer) {
        body.writeImmutableBuffer(data)
        if autoConsume { stream.consume(data.readableBytes) }
    }

    func streamReceivedEnd(_ stream: H2Stream) { ended = true }
    func streamReceivedTrailers(_ stream: H2Stream, trailers: H2Headers) { self.trailers = trailers; ended = true }
    func streamSentData(_ stream: H2Stream, byteCount: Int) {}

    func streamClosed(_ stream: H2Stream, error: H2StreamError?) {
        closed = true
        closeError = error
    }
}

final class ServerRecorder: H2ConnectionDelegate {
    var streams: [H2Stream] = []
    var recorders: [StreamRecorder] = []
    var autoConsume = true

    func connection(_ connection: H2Connection, didOpen stream: H2Stream) {
        let recorder = StreamRecorder()
        recorder.autoConsume = autoConsume
        stream.delegate = recorder
        streams.append(stream)
        recorders.append(recorder)
    }
}

/// A client and a server connection joined in memory: `pump` moves bytes until both are quiet.
/// Both channels are finished when the pair goes away, which runs their loops until the
/// pipelines have let go of the connections (an unfinished EmbeddedChannel keeps its handlers,
/// and everything they hold, for good).
final class ConnectionPair {
    let client: EmbeddedChannel
    let server: EmbeddedChannel
    let clientH2: H2Connection
    let serverH2: H2Connection
    let serverRecorder: ServerRecorder

    init(settings: H2Settings = H2Settings()) throws {
        serverRecorder = ServerRecorder()
        clientH2 = H2Connection(role: .client, settings: settings)
        serverH2 = H2Connection(role: .server, settings: settings, delegate: serverRecorder)
        client = EmbeddedChannel(handler: clientH2)
        server = EmbeddedChannel(handler: serverH2)
        let address = try SocketAddress(ipAddress: "127.0.0.1", port: 1)
        try client.connect(to: address).wait()
        try server.connect(to: address).wait()
        try pump()
    }

    deinit {
        _ = try? client.finish(acceptAlreadyClosed: true)
        _ = try? server.finish(acceptAlreadyClosed: true)
    }

    func pump() throws {
        for _ in 0..<1000 {
            client.embeddedEventLoop.run()
            server.embeddedEventLoop.run()
            var moved = false
            while let bytes = try client.readOutbound(as: ByteBuffer.self) {
                moved = true
                if server.isActive { try server.writeInbound(bytes) }
            }
            while let bytes = try server.readOutbound(as: ByteBuffer.self) {
                moved = true
                if client.isActive { try client.writeInbound(bytes) }
            }
            if !moved { return }
        }
        XCTFail("connections never went quiet")
    }

    static let requestHeaders = H2Headers([(":method", "POST"), (":scheme", "http"), (":path", "/pkg.Svc/Method"),
                                           (":authority", "test"), ("content-type", "application/grpc"), ("te", "trailers")])
}

/// Splits raw HTTP/2 output into (type, flags, stream id, payload).
func parseFrames(_ buffer: ByteBuffer, skipPreface: Bool = false) -> [(type: UInt8, flags: UInt8, stream: UInt32, payload: ByteBuffer)] {
    var buffer = buffer
    if skipPreface { buffer.moveReaderIndex(forwardBy: 24) }
    var frames: [(UInt8, UInt8, UInt32, ByteBuffer)] = []
    while buffer.readableBytes >= 9 {
        let length = Int(buffer.getInteger(at: buffer.readerIndex, as: UInt16.self)!) << 8
            | Int(buffer.getInteger(at: buffer.readerIndex + 2, as: UInt8.self)!)
        let type = buffer.getInteger(at: buffer.readerIndex + 3, as: UInt8.self)!
        let flags = buffer.getInteger(at: buffer.readerIndex + 4, as: UInt8.self)!
        let stream = buffer.getInteger(at: buffer.readerIndex + 5, as: UInt32.self)! & 0x7fff_ffff
        guard buffer.readableBytes >= 9 + length else { break }
        buffer.moveReaderIndex(forwardBy: 9)
        frames.append((type, flags, stream, buffer.readSlice(length: length)!))
    }
    return frames
}

final class H2ConnectionTests: XCTestCase {
    func testRequestAndResponseWithTrailersCrossIntact() throws {
        let pair = try ConnectionPair()
        let client = StreamRecorder()
        let stream = try XCTUnwrap(pair.clientH2.openStream(headers: ConnectionPair.requestHeaders, endStream: false, delegate: client))
        var body = ByteBufferAllocator().buffer(capacity: 100_000)
        for i in 0..<100_000 { body.writeInteger(UInt8(truncatingIfNeeded: i)) }
        stream.sendData(body, endStream: true)
        try pair.pump()

        let server = try XCTUnwrap(pair.serverRecorder.recorders.first)
        XCTAssertEqual(server.headers?.first(":path"), "/pkg.Svc/Method")
        XCTAssertEqual(server.body, body)
        XCTAssertTrue(server.ended)

        let serverStream = pair.serverRecorder.streams[0]
        pair.serverH2.sendHeaders(serverStream, H2Headers([(":status", "200"), ("content-type", "application/grpc")]), endStream: false)
        serverStream.sendData(body)
        serverStream.sendTrailers(H2Headers([("grpc-status", "0"), ("x-trailer-bin", "AAE=")]))
        try pair.pump()

        XCTAssertEqual(client.headers?.first(":status"), "200")
        XCTAssertEqual(client.body, body)
        XCTAssertEqual(client.trailers?.first("grpc-status"), "0")
        XCTAssertEqual(client.trailers?.first("x-trailer-bin"), "AAE=")
        XCTAssertTrue(client.closed)
        XCTAssertNil(client.closeError)
        XCTAssertTrue(server.closed)
        XCTAssertNil(server.closeError)
    }

    func testSentTrailersGoBackToThePoolAndReceivedBlocksComeFromIt() throws {
        let pair = try ConnectionPair()
        let client = StreamRecorder()
        _ = try XCTUnwrap(pair.clientH2.openStream(headers: ConnectionPair.requestHeaders, endStream: true, delegate: client))
        try pair.pump()
        let serverStream = try XCTUnwrap(pair.serverRecorder.streams.first)
        pair.serverH2.sendHeaders(serverStream, H2Headers([(":status", "200")]), endStream: false)
        serverStream.sendTrailers(H2Headers([("grpc-status", "0")]))
        XCTAssertEqual(pair.serverH2.headerBlocks.count, 0, "trailers are given back only once nghttp2 has them")
        try pair.pump()
        XCTAssertEqual(client.trailers?.first("grpc-status"), "0")
        XCTAssertEqual(pair.serverH2.headerBlocks.count, 1, "the sent trailers' block was not given back")

        // The client's received blocks came from its pool; given back, the next ones reuse them.
        pair.clientH2.recycle(try XCTUnwrap(client.headers))
        pair.clientH2.recycle(try XCTUnwrap(client.trailers))
        client.headers = nil
        client.trailers = nil
        XCTAssertEqual(pair.clientH2.headerBlocks.count, 2)
        let second = StreamRecorder()
        _ = try XCTUnwrap(pair.clientH2.openStream(headers: ConnectionPair.requestHeaders, endStream: true, delegate: second))
        try pair.pump()
        let secondServerStream = pair.serverRecorder.streams[1]
        pair.serverH2.sendHeaders(secondServerStream, H2Headers([(":status", "200")]), endStream: true)
        try pair.pump()
        XCTAssertEqual(second.headers?.first(":status"), "200")
        XCTAssertEqual(second.headers?.count, 1)
        XCTAssertEqual(pair.clientH2.headerBlocks.count, 1, "the response headers were not received into a given-back block")
    }

    func testUnconsumedBytesStopTheSenderAtOneWindow() throws {
        var settings = H2Settings()
        settings.initialStreamWindow = 65_535
        let pair = try ConnectionPair(settings: settings)
        pair.serverRecorder.autoConsume = false
        let client = StreamRecorder()
        let stream = try XCTUnwrap(pair.clientH2.openStream(headers: ConnectionPair.requestHeaders, endStream: false, delegate: client))
        let total = 1_000_000
        var body = ByteBufferAllocator().buffer(capacity: total)
        body.writeRepeatingByte(7, count: total)
        stream.sendData(body, endStream: true)
        try pair.pump()

        let server = try XCTUnwrap(pair.serverRecorder.recorders.first)
        let serverStream = pair.serverRecorder.streams[0]
        // The receiver consumed nothing: exactly one stream window crossed, the rest waits at the sender.
        XCTAssertEqual(server.body.readableBytes, 65_535)
        XCTAssertEqual(stream.queuedOutboundBytes, total - 65_535)
        XCTAssertEqual(serverStream.unconsumedInboundBytes, 65_535)

        // Consuming returns the window and the next window's worth flows, no more.
        serverStream.consume(65_535)
        try pair.pump()
        XCTAssertEqual(server.body.readableBytes, 2 * 65_535)
        XCTAssertEqual(stream.queuedOutboundBytes, total - 2 * 65_535)

        while !server.ended {
            serverStream.consume(serverStream.unconsumedInboundBytes)
            try pair.pump()
        }
        XCTAssertEqual(server.body.readableBytes, total)
        XCTAssertEqual(stream.queuedOutboundBytes, 0)
    }

    func testResetByServerReachesClientWithItsCode() throws {
        let pair = try ConnectionPair()
        let client = StreamRecorder()
        _ = try XCTUnwrap(pair.clientH2.openStream(headers: ConnectionPair.requestHeaders, endStream: false, delegate: client))
        try pair.pump()
        pair.serverRecorder.streams[0].reset(H2ErrorCode.cancel)
        try pair.pump()
        XCTAssertTrue(client.closed)
        XCTAssertEqual(client.closeError, .resetByPeer(H2ErrorCode.cancel))
        XCTAssertEqual(pair.serverRecorder.recorders[0].closeError, .resetLocally(H2ErrorCode.cancel))
    }

    func testLostConnectionClosesOpenStreams() throws {
        let pair = try ConnectionPair()
        let client = StreamRecorder()
        _ = try XCTUnwrap(pair.clientH2.openStream(headers: ConnectionPair.requestHeaders, endStream: false, delegate: client))
        try pair.pump()
        _ = try? pair.client.finish(acceptAlreadyClosed: true)
        XCTAssertTrue(client.closed)
        XCTAssertEqual(client.closeError, .connectionLost)
    }

    func testInvalidPrefaceGetsGoAwayProtocolError() throws {
        let server = EmbeddedChannel(handler: H2Connection(role: .server))
        defer { _ = try? server.finish(acceptAlreadyClosed: true) }
        try server.connect(to: try SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        _ = try server.readOutbound(as: ByteBuffer.self) // our SETTINGS
        var junk = ByteBufferAllocator().buffer(capacity: 64)
        junk.writeString("GET / HTTP/1.1\r\nHost: example\r\n\r\n")
        try server.writeInbound(junk)
        var out = ByteBuffer()
        while var chunk = try server.readOutbound(as: ByteBuffer.self) { out.writeBuffer(&chunk) }
        let goaway = parseFrames(out).first { $0.type == 0x7 }
        XCTAssertNotNil(goaway)
        XCTAssertEqual(goaway?.payload.getInteger(at: goaway!.payload.readerIndex + 4, as: UInt32.self), H2ErrorCode.protocolError.rawValue)
        XCTAssertFalse(server.isActive)
    }

    func testGracefulShutdownSendsTwoGoAwaysAndLetsStreamsFinish() throws {
        let pair = try ConnectionPair()
        let client = StreamRecorder()
        _ = try XCTUnwrap(pair.clientH2.openStream(headers: ConnectionPair.requestHeaders, endStream: false, delegate: client))
        try pair.pump()
        pair.serverH2.beginGracefulShutdown(gracePeriod: .milliseconds(100))
        let first = try XCTUnwrap(pair.server.readOutbound(as: ByteBuffer.self))
        let notice = try XCTUnwrap(parseFrames(first).first { $0.type == 0x7 })
        XCTAssertEqual(notice.payload.getInteger(at: notice.payload.readerIndex, as: UInt32.self), 0x7fff_ffff)
        try pair.client.writeInbound(first)
        pair.server.embeddedEventLoop.advanceTime(by: .milliseconds(150))
        let second = try XCTUnwrap(pair.server.readOutbound(as: ByteBuffer.self))
        let final = try XCTUnwrap(parseFrames(second).first { $0.type == 0x7 })
        XCTAssertEqual(final.payload.getInteger(at: final.payload.readerIndex, as: UInt32.self), 1)
        try pair.client.writeInbound(second)
        XCTAssertTrue(pair.clientH2.receivedGoAway)
        XCTAssertFalse(pair.clientH2.canOpenStream)

        // Stream 1 was processed before the GOAWAY: it still completes.
        let serverStream = pair.serverRecorder.streams[0]
        pair.serverH2.sendHeaders(serverStream, H2Headers([(":status", "200")]), endStream: true)
        try pair.pump()
        XCTAssertEqual(client.headers?.first(":status"), "200")
    }
}

/// nghttp2 calls that fail are not passed over (issue 23: 16 return codes were ignored, the
/// trailer and response submissions among them). What a failure means is decided in one place,
/// `check`; these drive it with nghttp2's own codes on live streams and sessions.
final class H2SubmissionFailureTests: XCTestCase {
    private func openStream(_ pair: ConnectionPair, _ recorder: StreamRecorder) throws -> H2Stream {
        let stream = try XCTUnwrap(pair.clientH2.openStream(headers: H2Headers([(":method", "POST"), (":scheme", "http"),
                                                                                (":path", "/x"), (":authority", "a")]),
                                                           endStream: false, delegate: recorder))
        try pair.pump()
        return stream
    }

    /// A submission on a stream that failed (before: the stream waited forever for frames that
    /// were never queued) resets it with INTERNAL_ERROR: its owner and its peer both hear of it,
    /// and the reset is not counted as the peer's error.
    func testAFailedSubmissionOnAStreamResetsIt() throws {
        let pair = try ConnectionPair()
        let recorder = StreamRecorder()
        let stream = try openStream(pair, recorder)
        XCTAssertFalse(pair.clientH2.check(NGHTTP2_ERR_INVALID_ARGUMENT.rawValue, "nghttp2_submit_trailer", stream: stream))
        try pair.pump()
        XCTAssertTrue(recorder.closed, "the stream's owner hears the stream ended")
        XCTAssertEqual(recorder.closeError, .resetLocally(H2ErrorCode.internalError))
        let peer = try XCTUnwrap(pair.serverRecorder.recorders.first)
        XCTAssertTrue(peer.closed, "the peer is told (RST_STREAM), not left waiting")
        XCTAssertEqual(peer.closeError, .resetByPeer(H2ErrorCode.internalError))
        XCTAssertEqual(pair.clientH2.peerStreamErrors, 0, "our own reset is not counted as the peer's error")
        XCTAssertTrue(pair.client.isActive, "a stream's failure leaves the connection up")
    }

    /// A fatal code (the session is unusable) ends the connection; its streams hear it lost.
    func testAFatalCodeEndsTheConnection() throws {
        let pair = try ConnectionPair()
        let recorder = StreamRecorder()
        _ = try openStream(pair, recorder)
        XCTAssertFalse(pair.clientH2.check(NGHTTP2_ERR_NOMEM.rawValue, "nghttp2_submit_request"))
        try pair.pump()
        XCTAssertFalse(pair.client.isActive)
        XCTAssertEqual(recorder.closeError, .connectionLost)
        XCTAssertTrue(pair.clientH2.failureReason?.contains("nghttp2_submit_request failed") ?? false,
                      pair.clientH2.failureReason ?? "no reason")
    }

    /// A failure that is a no-op for the connection (a second GOAWAY, data not deferred)
    /// changes nothing.
    func testANonFatalCodeForTheConnectionChangesNothing() throws {
        let pair = try ConnectionPair()
        let recorder = StreamRecorder()
        _ = try openStream(pair, recorder)
        XCTAssertFalse(pair.clientH2.check(NGHTTP2_ERR_INVALID_STATE.rawValue, "nghttp2_submit_goaway"))
        try pair.pump()
        XCTAssertTrue(pair.client.isActive)
        XCTAssertFalse(recorder.closed)
        XCTAssertTrue(pair.clientH2.check(0, "nghttp2_session_consume"))
    }
}

final class H2ConnectionFailureTests: XCTestCase {
    /// Metrics label protocol errors from the failure's case, not from its text.
    func testProtocolErrorKindsComeFromTheCase() {
        XCTAssertEqual(H2ConnectionFailure.sentGoAway(.enhanceYourCalm, detail: "more than 1000 empty DATA frames").protocolErrorKind,
                       "enhance_your_calm")
        XCTAssertEqual(H2ConnectionFailure.sentGoAway(.streamClosed, detail: "DATA on stream 1 after the peer ended it").protocolErrorKind,
                       "stream_closed")
        XCTAssertEqual(H2ConnectionFailure.peerProtocolError("Received bad client magic byte string").protocolErrorKind, "protocol_error")
        XCTAssertNil(H2ConnectionFailure.closedByUs(.settingsTimeout, reason: "no SETTINGS").protocolErrorKind)
        XCTAssertNil(H2ConnectionFailure.channelError("Connection reset by peer").protocolErrorKind)
        XCTAssertNil(H2ConnectionFailure.internalError("nghttp2_submit_settings failed").protocolErrorKind)
        XCTAssertEqual(H2ConnectionFailure.sentGoAway(.enhanceYourCalm, detail: "x").description, "sent GOAWAY ENHANCE_YOUR_CALM: x")
        XCTAssertEqual(H2ErrorCode(0x1234).name, "0x1234", "an unknown code passes through")
    }

    /// A bad preface is the peer's protocol error, as the connection records it.
    func testABadPrefaceIsRecordedAsThePeersProtocolError() throws {
        let server = EmbeddedChannel(handler: H2Connection(role: .server, settings: H2Settings()))
        defer { _ = try? server.finish(acceptAlreadyClosed: true) }
        try server.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        let h2 = try server.pipeline.syncOperations.handler(type: H2Connection.self)
        var junk = ByteBufferAllocator().buffer(capacity: 64)
        junk.writeString("GET / HTTP/1.1\r\nHost: example\r\n\r\n")
        try server.writeInbound(junk)
        guard case .peerProtocolError = h2.failure else { return XCTFail("\(String(describing: h2.failure))") }
        XCTAssertEqual(h2.failure?.protocolErrorKind, "protocol_error")
    }
}
