import FerryConfig
import FerryDiscovery
import FerryH2
@testable import FerryProxy
@testable import FerryUpstream
import FuzzSupport
import Logging
import NIOCore
import NIOEmbedded

/// The proxy's whole call path behind a server-role connection fed arbitrary bytes: routing,
/// the balancer over two endpoints, pooled upstream connections, retries, per-try timeouts,
/// hedges and deadlines, on an EmbeddedEventLoop whose virtual time moves 5 ms after every
/// read. The upstreams are in memory (FerryH2's server role) and answer each request as the
/// input's second byte says: echo, Trailers-Only UNAVAILABLE, never, RST_STREAM, or a
/// streamed answer, the same for every request or changing from one to the next. After the
/// input the client goes away; once the service is retired and its connections closed,
/// no nghttp2 session and no call may be left (LeakSanitizer sees the rest).
@_cdecl("fuzz_h2_proxy_main")
func main(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv, fuzz)
}

private let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8) + [0, 0, 0, 4, 0, 0, 0, 0, 0]
private let logger = Logger(label: "fuzz", factory: { _ in SwiftLogNoOpLogHandler() })

@_cdecl("LLVMFuzzerTestOneInput")
func fuzz(_ input: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data = input, size > 2 else { return 0 }
    let step = Int(data[0]) * 4 + 1
    let script = data[1]
    let bytes = UnsafeBufferPointer(start: data + 2, count: size - 2)
    let sessionsBefore = H2Connection.liveSessions
    do {
        let net = Network(script: script)
        net.run(bytes, step: step)
        net.tearDown()
    }
    precondition(H2Connection.liveSessions == sessionsBefore, "an nghttp2 session outlived its connection")
    return 0
}

/// A client connection into the proxy, the proxy's upstream connections and the upstreams'
/// ends, all on one virtual-time loop, bytes moved between them until nothing moves.
private final class Network: @unchecked Sendable {
    let loop = EmbeddedEventLoop()
    let script: UInt8
    var links: [(EmbeddedChannel, EmbeddedChannel)] = []
    var upstreams: [Upstream] = []
    var client: EmbeddedChannel!
    var service: ServiceRuntime!

    init(script: UInt8) { self.script = script }

    var clock: MonotonicClock { MonotonicClock { [unowned self] in Int64(self.loop.now.uptimeNanoseconds) } }

    func run(_ bytes: UnsafeBufferPointer<UInt8>, step: Int) {
        var config = ServiceConfig(name: "s", endpoints: [])
        config.policy.retry.perTryTimeout = .milliseconds(100)
        if script & 0x10 != 0 {
            var hedge = HedgePolicy()
            hedge.delay = .fixed(.milliseconds(20))
            config.policy.hedge = hedge
        }
        let connector = UpstreamConnector { [unowned self] _, _, _, makeHandler in self.connect(makeHandler) }
        service = ServiceRuntime(config: config, health: ServiceHealth(service: config), sourceID: 1,
                                 endpoints: [Endpoint(host: "127.0.0.1", port: 1, weight: 1), Endpoint(host: "127.0.0.1", port: 2, weight: 1)],
                                 eventLoop: loop, loopIndex: 0, logger: logger, clock: clock, connector: connector)
        var listenerConfig = ListenerConfig(name: "l", address: HostPort(host: "127.0.0.1", port: 1), service: "s")
        listenerConfig.maxDeadline = .seconds(1)
        let listener = ListenerRuntime(config: listenerConfig, services: ["s": service], metrics: nil)
        let environment = CallEnvironment(deadlines: CallDeadlines(eventLoop: loop, clock: clock), clock: clock)
        client = EmbeddedChannel(handler: H2Connection(role: .server, delegate: Acceptor(listener, environment), clock: clock), loop: loop)
        try? client.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        send(preface)
        var offset = 0
        while offset < bytes.count && client.isActive {
            let end = min(bytes.count, offset + step)
            send(bytes[offset..<end])
            loop.advanceTime(by: .milliseconds(5))
            pump()
            offset = end
        }
    }

    /// The client goes away, the service leaves the configuration, every connection closes,
    /// and time runs on until every timer has fired.
    func tearDown() {
        _ = client.close(mode: .all)
        pump()
        service.retire()
        for (proxySide, upstreamSide) in links {
            _ = proxySide.close(mode: .all)
            _ = upstreamSide.close(mode: .all)
        }
        for _ in 0..<40 {
            loop.advanceTime(by: .milliseconds(50))
            pump()
        }
        _ = try? client.finish(acceptAlreadyClosed: true)
        for (proxySide, upstreamSide) in links {
            _ = try? proxySide.finish(acceptAlreadyClosed: true)
            _ = try? upstreamSide.finish(acceptAlreadyClosed: true)
        }
        links = []
        service = nil
        try? loop.syncShutdownGracefully()
    }

    private func send<C: Collection>(_ bytes: C) where C.Element == UInt8 {
        guard client.isActive else { return }
        do {
            try client.writeInbound(client.allocator.buffer(bytes: bytes))
        } catch {
            _ = client.close(mode: .all)
        }
        pump()
    }

    private func connect(_ makeHandler: () -> H2Connection) -> EventLoopFuture<Channel> {
        let upstream = Upstream(script: script)
        upstreams.append(upstream)
        let proxySide = EmbeddedChannel(handler: makeHandler(), loop: loop)
        let upstreamSide = EmbeddedChannel(handler: H2Connection(role: .server, delegate: upstream, clock: clock), loop: loop)
        let address = try! SocketAddress(ipAddress: "127.0.0.1", port: 1)
        try! upstreamSide.connect(to: address).wait()
        try! proxySide.connect(to: address).wait()
        links.append((proxySide, upstreamSide))
        return loop.makeSucceededFuture(proxySide)
    }

    /// Runs the loop and moves bytes both ways until nothing moves (bounded: a loop that
    /// never goes quiet is a finding).
    func pump() {
        for _ in 0..<100_000 {
            loop.run()
            var moved = false
            for (proxySide, upstreamSide) in links {
                moved = move(proxySide, upstreamSide) || moved
                moved = move(upstreamSide, proxySide) || moved
            }
            // What the proxy answers the client is read and dropped, as a client would read it.
            while let _ = try? client.readOutbound(as: ByteBuffer.self) { moved = true }
            if !moved { return }
        }
        preconditionFailure("the connections never went quiet")
    }

    private func move(_ from: EmbeddedChannel, _ to: EmbeddedChannel) -> Bool {
        var moved = false
        while let bytes = try? from.readOutbound(as: ByteBuffer.self) {
            moved = true
            if to.isActive { try? to.writeInbound(bytes) }
        }
        if !from.isActive && to.isActive {
            _ = to.close(mode: .all)
            moved = true
        }
        return moved
    }
}

/// Each stream the client opens is a call, as on a listener's connection.
private final class Acceptor: H2ConnectionDelegate {
    let listener: ListenerRuntime
    let environment: CallEnvironment
    init(_ listener: ListenerRuntime, _ environment: CallEnvironment) {
        self.listener = listener
        self.environment = environment
    }

    func connection(_ connection: H2Connection, didOpen stream: H2Stream) {
        stream.delegate = ProxyCall(downstream: stream, listener: listener, environment: environment)
    }
}

/// An upstream answering each request as the script says: its low three bits pick the first
/// answer, and with bit 3 set each next request gets the next kind.
private final class Upstream: H2ConnectionDelegate {
    enum Answer: Int, CaseIterable { case echo, unavailable, never, reset, streamed }
    var next: Int
    let rotates: Bool

    init(script: UInt8) {
        next = Int(script & 0x07)
        rotates = script & 0x08 != 0
    }

    func connection(_ connection: H2Connection, didOpen stream: H2Stream) {
        let answer = Answer(rawValue: next % Answer.allCases.count)!
        if rotates { next += 1 }
        stream.delegate = Request(answer)
    }

    final class Request: H2StreamDelegate {
        let answer: Answer
        var body = ByteBuffer()
        init(_ answer: Answer) { self.answer = answer }

        func streamReceivedHeaders(_ stream: H2Stream, headers: H2Headers, endStream: Bool) {
            switch answer {
            case .unavailable:
                stream.connection.sendHeaders(stream, H2Headers([(":status", "200"), ("content-type", "application/grpc"), ("grpc-status", "14")]), endStream: true)
            case .reset:
                stream.reset(.refusedStream)
            case .streamed:
                stream.connection.sendHeaders(stream, H2Headers([(":status", "200"), ("content-type", "application/grpc")]), endStream: false)
            case .echo, .never:
                break
            }
            if endStream { streamReceivedEnd(stream) }
        }
        func streamReceivedData(_ stream: H2Stream, data: ByteBuffer) {
            if answer == .streamed { stream.sendData(data) } else { body.writeImmutableBuffer(data) }
            stream.consume(data.readableBytes)
        }
        func streamReceivedEnd(_ stream: H2Stream) {
            switch answer {
            case .echo:
                stream.connection.sendHeaders(stream, H2Headers([(":status", "200"), ("content-type", "application/grpc")]), endStream: false)
                stream.sendData(body)
                stream.sendTrailers(H2Headers([("grpc-status", "0")]))
            case .streamed:
                stream.sendTrailers(H2Headers([("grpc-status", "0")]))
            case .unavailable, .never, .reset:
                break
            }
        }
        func streamReceivedTrailers(_ stream: H2Stream, trailers: H2Headers) { streamReceivedEnd(stream) }
        func streamSentData(_ stream: H2Stream, byteCount: Int) {}
        func streamClosed(_ stream: H2Stream, error: H2StreamError?) {}
    }
}
