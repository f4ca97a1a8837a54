import NIOCore

/// In front of a plaintext listener's HTTP/2 connection until the client's first bytes say
/// what it speaks. The HTTP/2 client preface (`PRI * HTTP/2.0...`): the handler steps aside
/// and everything goes on as if it had never been there (what the connection wrote meanwhile,
/// its SETTINGS, is passed on then). An HTTP/1.x request line instead: the client gets a plain
/// HTTP/1.1 `505 HTTP Version Not Supported` saying the listener speaks HTTP/2 and gRPC, not
/// the HTTP/2 frames it could not read, and the connection closes. Anything else is left to
/// the HTTP/2 connection, which answers a bad preface with GOAWAY as before.
final class HTTP1Refusal: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    static let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)
    /// Bytes enough to tell the preface from a request line (no HTTP/1 method starts "PRI ").
    static let decidingBytes = 4

    enum Verdict: Equatable {
        case http2
        /// An HTTP/1.x request; its request line (at most 200 bytes), for the log.
        case http1(requestLine: String)
        /// Neither: the HTTP/2 connection reports the bad preface.
        case other
    }

    /// What the first bytes are, or nil while too few have come to tell.
    static func verdict(_ bytes: ByteBufferView) -> Verdict? {
        let prefix = Array(bytes.prefix(preface.count))
        if prefix.elementsEqual(preface.prefix(prefix.count)) {
            return prefix.count >= decidingBytes ? .http2 : nil
        }
        // An HTTP/1 request line: a method token (letters), a space, the target, " HTTP/1.".
        guard let space = prefix.firstIndex(of: UInt8(ascii: " ")), space > 0,
              prefix[..<space].allSatisfy({ (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains($0) }) else {
            return prefix.count >= decidingBytes ? .other : nil
        }
        let head = Array(bytes.prefix(200))
        let lineEnd = head.firstIndex(of: UInt8(ascii: "\r")) ?? head.firstIndex(of: UInt8(ascii: "\n"))
        let line = String(decoding: head[..<(lineEnd ?? head.endIndex)], as: UTF8.self)
        return .http1(requestLine: line)
    }

    static let body = "This listener speaks HTTP/2 (and gRPC over it) only; this client sent HTTP/1.x. "
        + "Use an HTTP/2 client (prior knowledge, e.g. curl --http2-prior-knowledge) or a gRPC client.\n"

    static var response: ByteBuffer {
        var buffer = ByteBuffer()
        buffer.writeString("HTTP/1.1 505 HTTP Version Not Supported\r\nContent-Type: text/plain; charset=utf-8\r\n"
                           + "Content-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n" + body)
        return buffer
    }

    private var received = ByteBuffer()
    private var held: [(ByteBuffer, EventLoopPromise<Void>?)] = []
    private var flushHeld = false
    private var decided = false
    private let refused: (String) -> Void

    /// `refused`: told the request line of an HTTP/1 client it answered.
    init(refused: @escaping (String) -> Void) {
        self.refused = refused
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !decided else { return context.fireChannelRead(data) }
        var bytes = unwrapInboundIn(data)
        received.writeBuffer(&bytes)
        guard let verdict = Self.verdict(received.readableBytesView) else { return }
        decided = true
        switch verdict {
        case .http1(let line):
            for (_, promise) in held { promise?.fail(ChannelError.outputClosed) }
            held = []
            refused(line)
            context.writeAndFlush(wrapOutboundOut(Self.response)).whenComplete { _ in context.close(promise: nil) }
        case .http2, .other:
            passOn(context: context)
        }
    }

    /// Steps aside: the held writes go out, the bytes read go in, and the handler leaves.
    private func passOn(context: ChannelHandlerContext) {
        for (buffer, promise) in held { context.write(wrapOutboundOut(buffer), promise: promise) }
        held = []
        if flushHeld { context.flush() }
        let bytes = received
        received = ByteBuffer()
        context.fireChannelRead(wrapInboundOut(bytes))
        context.fireChannelReadComplete()
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard !decided else { return context.write(data, promise: promise) }
        held.append((unwrapOutboundIn(data), promise))
    }

    func flush(context: ChannelHandlerContext) {
        guard !decided else { return context.flush() }
        flushHeld = true
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if decided { context.fireChannelReadComplete() }
    }

    func channelInactive(context: ChannelHandlerContext) {
        for (_, promise) in held { promise?.fail(ChannelError.ioOnClosedChannel) }
        held = []
        context.fireChannelInactive()
    }
}
