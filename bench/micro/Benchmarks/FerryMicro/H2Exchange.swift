import FerryH2
import NIOCore
import NIOEmbedded

/// A client and a server `H2Connection` joined in memory (EmbeddedChannel): one `exchange()`
/// is a unary gRPC call in HTTP/2 frames, each side's frames encoded by its nghttp2 session and
/// decoded by the other's. The server answers every request with headers, the request's
/// message back, and `grpc-status: 0` trailers. The bytes moved between the channels by
/// `pump` are part of what is measured.
final class H2Exchange {
    private let client: EmbeddedChannel
    private let server: EmbeddedChannel
    private let clientH2: H2Connection
    private let responder = Responder()
    private let caller = Caller()
    private let request: H2Headers
    private let message: ByteBuffer

    init() throws {
        clientH2 = H2Connection(role: .client)
        client = EmbeddedChannel(handler: clientH2)
        server = EmbeddedChannel(handler: H2Connection(role: .server, delegate: responder))
        let address = try SocketAddress(ipAddress: "127.0.0.1", port: 1)
        try client.connect(to: address).wait()
        try server.connect(to: address).wait()
        request = H2Headers([(":method", "POST"), (":scheme", "http"), (":path", "/helloworld.Greeter/SayHello"),
                             (":authority", "greeter.default.svc.cluster.local:8080"), ("content-type", "application/grpc"),
                             ("te", "trailers"), ("grpc-timeout", "100m"), ("user-agent", "grpc-swift/2.4")])
        var body = ByteBufferAllocator().buffer(capacity: 100)
        body.writeInteger(UInt8(0))
        body.writeInteger(UInt32(95))
        body.writeRepeatingByte(7, count: 95)
        message = body
        try pump()
    }

    /// One call; returns the number of response messages' bytes received (100 when it worked).
    func exchange() throws -> Int {
        caller.received = 0
        guard let stream = clientH2.openStream(headers: request, endStream: false, delegate: caller) else { return -1 }
        stream.sendData(message, endStream: true)
        try pump()
        return caller.ended ? caller.received : -1
    }

    private func pump() throws {
        while true {
            client.embeddedEventLoop.run()
            server.embeddedEventLoop.run()
            var moved = false
            while let bytes = try client.readOutbound(as: ByteBuffer.self) {
                moved = true
                try server.writeInbound(bytes)
            }
            while let bytes = try server.readOutbound(as: ByteBuffer.self) {
                moved = true
                try client.writeInbound(bytes)
            }
            if !moved { return }
        }
    }
}

private let responseHeaders = H2Headers([(":status", "200"), ("content-type", "application/grpc")])
private let okTrailers = H2Headers([("grpc-status", "0")])

private final class Responder: H2ConnectionDelegate, H2StreamDelegate {
    func connection(_ connection: H2Connection, didOpen stream: H2Stream) {
        stream.delegate = self
    }

    func streamReceivedHeaders(_ stream: H2Stream, headers: H2Headers, endStream: Bool) {
        stream.connection.recycle(headers)
        stream.connection.sendHeaders(stream, responseHeaders, endStream: false)
    }

    func streamReceivedData(_ stream: H2Stream, data: ByteBuffer) {
        stream.consume(data.readableBytes)
        stream.sendData(data)
    }

    func streamReceivedEnd(_ stream: H2Stream) { stream.sendTrailers(okTrailers) }
    func streamReceivedTrailers(_ stream: H2Stream, trailers: H2Headers) {}
    func streamSentData(_ stream: H2Stream, byteCount: Int) {}
    func streamClosed(_ stream: H2Stream, error: H2StreamError?) {}
}

private final class Caller: H2StreamDelegate {
    var received = 0
    var ended = false

    func streamReceivedHeaders(_ stream: H2Stream, headers: H2Headers, endStream: Bool) {
        ended = false
        stream.connection.recycle(headers)
    }

    func streamReceivedData(_ stream: H2Stream, data: ByteBuffer) {
        received += data.readableBytes
        stream.consume(data.readableBytes)
    }

    func streamReceivedEnd(_ stream: H2Stream) { ended = true }

    func streamReceivedTrailers(_ stream: H2Stream, trailers: H2Headers) {
        ended = true
        stream.connection.recycle(trailers)
    }

    func streamSentData(_ stream: H2Stream, byteCount: Int) {}
    func streamClosed(_ stream: H2Stream, error: H2StreamError?) {}
}
