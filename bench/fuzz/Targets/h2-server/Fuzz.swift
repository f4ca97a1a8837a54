import FerryH2
import FuzzSupport
import NIOCore
import NIOEmbedded

/// The server role of `H2Connection` (nghttp2 behind FrameGuard and Ferry's checks) fed a
/// client preface and then arbitrary bytes, in reads cut where the input's first byte says,
/// with an application behind it that answers every stream (headers, its body echoed,
/// trailers). It must never trap, and once the channel closes the session and every
/// connection object are gone (memory stays bounded whatever a peer sends).
@_cdecl("fuzz_h2_server_main")
func main(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv, fuzz)
}

private let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8) + [0, 0, 0, 4, 0, 0, 0, 0, 0]

@_cdecl("LLVMFuzzerTestOneInput")
func fuzz(_ input: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data = input, size > 0 else { return 0 }
    let step = Int(data[0]) * 4 + 1
    let bytes = UnsafeBufferPointer(start: data + 1, count: size - 1)
    let sessionsBefore = H2Connection.liveSessions
    let channel = EmbeddedChannel()
    do {
        let connection = H2Connection(role: .server, delegate: Answering())
        try channel.pipeline.syncOperations.addHandler(connection)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        var buffer = channel.allocator.buffer(bytes: preface)
        try channel.writeInbound(buffer)
        var offset = 0
        while offset < bytes.count && channel.isActive {
            let end = min(bytes.count, offset + step)
            buffer = channel.allocator.buffer(bytes: bytes[offset..<end])
            try channel.writeInbound(buffer)
            while (try channel.readOutbound(as: ByteBuffer.self)) != nil {}
            offset = end
        }
    } catch {
        // An error fired down the pipeline, or a closed channel refusing a write: the
        // connection ending, which is fine.
    }
    // Closed whatever happened (a channel left open keeps its handlers, as a socket would).
    _ = try? channel.finish(acceptAlreadyClosed: true)
    precondition(H2Connection.liveSessions == sessionsBefore, "a closed connection's nghttp2 session was not freed")
    return 0
}

private final class Answering: H2ConnectionDelegate {
    func connection(_ connection: H2Connection, didOpen stream: H2Stream) {
        stream.delegate = Echo()
    }
}

private final class Echo: H2StreamDelegate {
    func streamReceivedHeaders(_ stream: H2Stream, headers: H2Headers, endStream: Bool) {
        stream.connection.sendHeaders(stream, H2Headers([(":status", "200"), ("content-type", "application/grpc")]), endStream: false)
        if endStream { end(stream) }
    }

    func streamReceivedData(_ stream: H2Stream, data: ByteBuffer) { stream.sendData(data) }
    func streamReceivedEnd(_ stream: H2Stream) { end(stream) }
    func streamReceivedTrailers(_ stream: H2Stream, trailers: H2Headers) { end(stream) }
    func streamSentData(_ stream: H2Stream, byteCount: Int) { stream.consume(byteCount) }
    func streamClosed(_ stream: H2Stream, error: H2StreamError?) {}

    private func end(_ stream: H2Stream) {
        stream.sendTrailers(H2Headers([("grpc-status", "0")]))
    }
}
