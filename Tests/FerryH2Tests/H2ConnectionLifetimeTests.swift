@testable import FerryH2
import NIOCore
import NIOEmbedded
import XCTest

/// A closed connection lets go of everything it held: its nghttp2 session is deleted when it
/// closes, and the connection, its streams and their delegates are deallocated once nobody
/// else holds them. (The channel handler context holds the handler; a handler that kept its
/// context after removal kept both alive for good, one per connection ever accepted.)
final class H2ConnectionLifetimeTests: XCTestCase {
    private struct Watched {
        weak var clientH2: H2Connection?
        weak var serverH2: H2Connection?
        weak var serverStream: H2Stream?
        weak var serverStreamDelegate: StreamRecorder?
        weak var clientStream: H2Stream?
    }

    /// Opens a pair, runs `scenario` on it, closes both channels and returns weak references
    /// to what the pair made. Nothing of the pair outlives this function but those.
    private func runAndClose(_ scenario: (ConnectionPair) throws -> Void) throws -> Watched {
        let pair = try ConnectionPair()
        try scenario(pair)
        var watched = Watched(clientH2: pair.clientH2, serverH2: pair.serverH2)
        watched.serverStream = pair.serverRecorder.streams.first
        watched.serverStreamDelegate = pair.serverRecorder.recorders.first
        pair.serverRecorder.streams.removeAll()
        pair.serverRecorder.recorders.removeAll()
        _ = try? pair.client.finish(acceptAlreadyClosed: true)
        _ = try? pair.server.finish(acceptAlreadyClosed: true)
        return watched
    }

    private func assertReleased(_ watched: Watched, sessionsBefore: Int, objectsBefore: Int,
                                file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertNil(watched.clientH2, "client connection still alive", file: file, line: line)
        XCTAssertNil(watched.serverH2, "server connection still alive", file: file, line: line)
        XCTAssertNil(watched.serverStream, "server stream still alive", file: file, line: line)
        XCTAssertNil(watched.serverStreamDelegate, "server stream's delegate still alive", file: file, line: line)
        XCTAssertEqual(H2Connection.liveSessions, sessionsBefore, "nghttp2 sessions not deleted", file: file, line: line)
        XCTAssertEqual(H2Connection.liveObjects, objectsBefore, "connection objects not deallocated", file: file, line: line)
    }

    func testACompletedCallsConnectionsAreDeallocatedWhenClosed() throws {
        let sessions = H2Connection.liveSessions, objects = H2Connection.liveObjects
        let watched = try runAndClose { pair in
            let client = StreamRecorder()
            let stream = try XCTUnwrap(pair.clientH2.openStream(headers: ConnectionPair.requestHeaders, endStream: true, delegate: client))
            try pair.pump()
            let serverStream = try XCTUnwrap(pair.serverRecorder.streams.first)
            pair.serverH2.sendHeaders(serverStream, H2Headers([(":status", "200")]), endStream: true)
            try pair.pump()
            XCTAssertTrue(client.closed)
            XCTAssertTrue(stream.isClosed)
            XCTAssertEqual(H2Connection.liveSessions, sessions + 2)
        }
        assertReleased(watched, sessionsBefore: sessions, objectsBefore: objects)
    }

    /// A stream someone still holds after its connection closed and was deallocated (a call
    /// whose caller went away while its upstream attempt ran on) is inert: every method returns
    /// without reaching the connection, which is gone. (Before, each reached it through an
    /// unowned reference and trapped.)
    func testAStreamThatOutlivesItsConnectionTouchesNothing() throws {
        weak var weakConnection: H2Connection?
        var held: H2Stream?
        let recorder = StreamRecorder()
        do {
            let pair = try ConnectionPair()
            held = try XCTUnwrap(pair.clientH2.openStream(headers: ConnectionPair.requestHeaders, endStream: false, delegate: recorder))
            try pair.pump()
            weakConnection = pair.clientH2
            _ = try? pair.client.finish(acceptAlreadyClosed: true)
            _ = try? pair.server.finish(acceptAlreadyClosed: true)
        }
        XCTAssertNil(weakConnection, "the connection is gone")
        let stream = try XCTUnwrap(held)
        XCTAssertTrue(stream.isClosed)
        XCTAssertEqual(recorder.closeError, .connectionLost)
        var body = ByteBufferAllocator().buffer(capacity: 4)
        body.writeString("late")
        stream.sendData(body)
        stream.sendTrailers(H2Headers([("grpc-status", "0")]))
        stream.sendEnd()
        stream.reset(.cancel)
        stream.consume(stream.unconsumedInboundBytes + 10)
        XCTAssertEqual(stream.unconsumedInboundBytes, 0)
        XCTAssertEqual(stream.queuedOutboundBytes, 0)
    }

    func testConnectionsClosedWithStreamsOpenAreDeallocated() throws {
        let sessions = H2Connection.liveSessions, objects = H2Connection.liveObjects
        var clientRecorder: StreamRecorder? = StreamRecorder()
        weak let weakClientRecorder = clientRecorder
        let watched = try runAndClose { pair in
            _ = try XCTUnwrap(pair.clientH2.openStream(headers: ConnectionPair.requestHeaders, endStream: false, delegate: clientRecorder!))
            try pair.pump()
            XCTAssertEqual(pair.serverH2.openStreamCount, 1)
        }
        // The open stream heard the connection go, and let go of its delegate.
        XCTAssertEqual(clientRecorder?.closeError, .connectionLost)
        clientRecorder = nil
        XCTAssertNil(weakClientRecorder)
        assertReleased(watched, sessionsBefore: sessions, objectsBefore: objects)
    }

    func testAConnectionThatDiesInsideAHeaderBlockIsDeallocated() throws {
        let sessions = H2Connection.liveSessions, objects = H2Connection.liveObjects
        weak var weakServer: H2Connection?
        do {
            let server = H2Connection(role: .server, delegate: ServerRecorder())
            weakServer = server
            let channel = EmbeddedChannel(handler: server)
            try channel.connect(to: try SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
            // The preface, an empty SETTINGS, then a HEADERS frame without END_HEADERS carrying
            // one literal field: the block stays open when the peer goes away.
            var bytes = ByteBuffer(string: "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
            bytes.writeBytes([0, 0, 0, 4, 0, 0, 0, 0, 0])
            let field: [UInt8] = [0x00, 3] + Array("foo".utf8) + [3] + Array("bar".utf8)
            bytes.writeBytes([0, 0, UInt8(field.count), 1, 0, 0, 0, 0, 1] + field)
            try channel.writeInbound(bytes)
            XCTAssertEqual(server.openStreamCount, 1)
            XCTAssertEqual(H2Connection.liveSessions, sessions + 1)
            _ = try? channel.finish(acceptAlreadyClosed: true)
            XCTAssertEqual(H2Connection.liveSessions, sessions, "the session is deleted when the channel closes")
        }
        XCTAssertNil(weakServer)
        XCTAssertEqual(H2Connection.liveObjects, objects)
    }
}
