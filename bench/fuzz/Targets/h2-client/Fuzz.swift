import FerryH2
import FuzzSupport
import NIOCore
import NIOEmbedded

/// The client role of `H2Connection` (how Ferry talks to upstreams) with streams open, fed a
/// server's SETTINGS and then arbitrary bytes as the upstream's answer, in reads cut where the
/// input's first byte says. The second byte says how many requests are open before the
/// answer starts (1 to 8) and whether they send a body; whenever fewer than two are open,
/// another starts, as a pool does. Nothing may trap, and once the channel closes the
/// nghttp2 session and every stream are gone.
@_cdecl("fuzz_h2_client_main")
func main(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv, fuzz)
}

/// An empty SETTINGS frame: the server's preface.
private let serverPreface: [UInt8] = [0, 0, 0, 4, 0, 0, 0, 0, 0]

private let request = H2Headers([(":method", "POST"), (":scheme", "http"), (":path", "/pkg.Service/Method"),
                                 (":authority", "upstream"), ("content-type", "application/grpc"), ("te", "trailers")])

@_cdecl("LLVMFuzzerTestOneInput")
func fuzz(_ input: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data = input, size > 1 else { return 0 }
    let step = Int(data[0]) * 4 + 1
    let opening = Int(data[1] & 0x07) + 1
    let withBody = data[1] & 0x08 != 0
    let bytes = UnsafeBufferPointer(start: data + 2, count: size - 2)
    let sessionsBefore = H2Connection.liveSessions
    let channel = EmbeddedChannel()
    let calls = Calls()
    do {
        let connection = H2Connection(role: .client)
        try channel.pipeline.syncOperations.addHandler(connection)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        for _ in 0..<opening { calls.start(on: connection, withBody: withBody) }
        while (try channel.readOutbound(as: ByteBuffer.self)) != nil {}
        try channel.writeInbound(channel.allocator.buffer(bytes: serverPreface))
        var offset = 0
        while offset < bytes.count && channel.isActive {
            let end = min(bytes.count, offset + step)
            try channel.writeInbound(channel.allocator.buffer(bytes: bytes[offset..<end]))
            while (try channel.readOutbound(as: ByteBuffer.self)) != nil {}
            if channel.isActive && connection.openStreamCount < 2 { calls.start(on: connection, withBody: withBody) }
            offset = end
        }
    } catch {
        // The connection failing (an error down the pipeline, or a write refused once closed).
    }
    _ = try? channel.finish(acceptAlreadyClosed: true)
    precondition(H2Connection.liveSessions == sessionsBefore, "a closed connection's nghttp2 session was not freed")
    precondition(calls.open == 0, "a stream outlived its connection without hearing streamClosed")
    return 0
}

/// The requests this input started, as an upstream pool's calls would.
private final class Calls {
    var open = 0

    func start(on connection: H2Connection, withBody: Bool) {
        guard let stream = connection.openStream(headers: request, endStream: !withBody, delegate: Response(self)) else { return }
        open += 1
        if withBody {
            stream.sendData(ByteBuffer(bytes: [0, 0, 0, 0, 5] + Array("hello".utf8)), endStream: true)
        }
    }
}

private final class Response: H2StreamDelegate {
    let calls: Calls
    init(_ calls: Calls) { self.calls = calls }

    func streamReceivedHeaders(_ stream: H2Stream, headers: H2Headers, endStream: Bool) {}
    func streamReceivedData(_ stream: H2Stream, data: ByteBuffer) { stream.consume(data.readableBytes) }
    func streamReceivedEnd(_ stream: H2Stream) {}
    func streamReceivedTrailers(_ stream: H2Stream, trailers: H2Headers) {}
    func streamSentData(_ stream: H2Stream, byteCount: Int) {}
    func streamClosed(_ stream: H2Stream, error: H2StreamError?) { calls.open -= 1 }
}
