@testable import FerryProxy
@testable import FerryUpstream
import FerryConfig
import FerryDiscovery
import FerryH2
import Foundation
import Logging
import NIOCore
import NIOEmbedded
import XCTest

/// The whole request path (listener routing -> balancer -> pools -> upstream HTTP/2 streams
/// -> the call's retries, hedges and deadlines) on one EmbeddedEventLoop, with nothing real:
/// the loop's virtual time is the proxy's clock, and the pools' connector joins each upstream
/// connection in memory to a scripted upstream. Tests move time with `advance(by:)`; no
/// socket is opened and nothing sleeps.
final class CallPathHarness: @unchecked Sendable {
    let loop = EmbeddedEventLoop()
    private(set) var links: [(proxy: EmbeddedChannel, peer: EmbeddedChannel)] = []
    private(set) var upstreams: [Int: ScriptedUpstream] = [:]
    /// Ports whose connects are held until `completeConnects(to:)` (a connection being set up).
    var heldConnectPorts: Set<Int> = []
    private var heldConnects: [Int: [(EventLoopPromise<Channel>, EmbeddedChannel)]] = [:]
    /// Ports that refuse connections.
    var refusedPorts: Set<Int> = []
    private(set) var connectAttempts: [Int: Int] = [:]
    /// The upstream side of every connection made to each port.
    private var upstreamLinks: [Int: [EmbeddedChannel]] = [:]
    private var services: [ServiceRuntime] = []

    init() {
        HarnessShutdown.register(self)
    }

    /// After each test: every connection closes, every service is retired and every timer
    /// runs out, then the loop shuts down, so nothing a test left open stays allocated
    /// (LeakSanitizer reported the channels, pools and calls of tests that ended mid-call).
    func shutDown() {
        for link in links {
            _ = link.proxy.close(mode: .all)
            _ = link.peer.close(mode: .all)
        }
        for (promise, _) in heldConnects.values.joined() { promise.fail(ChannelError.ioOnClosedChannel) }
        heldConnects = [:]
        pump()
        for service in services { service.retire() }
        for _ in 0..<120 {
            loop.advanceTime(by: .milliseconds(500))
            pump()
        }
        for link in links {
            _ = try? link.proxy.finish(acceptAlreadyClosed: true)
            _ = try? link.peer.finish(acceptAlreadyClosed: true)
        }
        links = []
        upstreamLinks = [:]
        upstreams = [:]
        services = []
        try? loop.syncShutdownGracefully()
    }

    /// Connections to `port` still open on the upstream's side.
    func openConnections(to port: Int) -> Int {
        (upstreamLinks[port] ?? []).filter(\.isActive).count
    }

    /// The upstream on `port` crashes: its connections close (their streams are lost).
    func dropConnections(to port: Int) {
        for channel in upstreamLinks.removeValue(forKey: port) ?? [] where channel.isActive {
            _ = channel.close(mode: .all)
        }
        pump()
    }
    let logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })

    var clock: MonotonicClock { MonotonicClock { [unowned self] in Int64(self.loop.now.uptimeNanoseconds) } }

    var connector: UpstreamConnector {
        UpstreamConnector { [unowned self] address, _, _, makeHandler in self.connect(to: address.port, makeHandler) }
    }

    /// A scripted upstream listening on `port` (ports are names here: nothing listens).
    @discardableResult
    func upstream(_ port: Int, settings: H2Settings = H2Settings(),
                  _ behaviour: @escaping (String) -> ScriptedUpstream.Behaviour) -> ScriptedUpstream {
        let upstream = ScriptedUpstream(settings: settings, behaviour: behaviour)
        upstreams[port] = upstream
        return upstream
    }

    private func connect(to port: Int, _ makeHandler: () -> H2Connection) -> EventLoopFuture<Channel> {
        connectAttempts[port, default: 0] += 1
        guard !refusedPorts.contains(port), let upstream = upstreams[port] else {
            return loop.makeFailedFuture(ChannelError.connectTimeout(.seconds(1)))
        }
        let proxySide = EmbeddedChannel(handler: makeHandler(), loop: loop)
        let peer = EmbeddedChannel(handler: H2Connection(role: .server, settings: upstream.settings, delegate: upstream, clock: clock),
                                   loop: loop)
        upstreamLinks[port, default: []].append(peer)
        if heldConnectPorts.contains(port) {
            let promise = loop.makePromise(of: Channel.self)
            heldConnects[port, default: []].append((promise, proxySide))
            links.append((proxySide, peer))
            return promise.futureResult
        }
        join(proxySide, peer)
        links.append((proxySide, peer))
        return loop.makeSucceededFuture(proxySide)
    }

    private func join(_ proxySide: EmbeddedChannel, _ peer: EmbeddedChannel) {
        let address = try! SocketAddress(ipAddress: "127.0.0.1", port: 1)
        try! peer.connect(to: address).wait()
        try! proxySide.connect(to: address).wait()
    }

    /// The connects held for `port` go through now.
    func completeConnects(to port: Int) {
        heldConnectPorts.remove(port)
        for (promise, channel) in heldConnects.removeValue(forKey: port) ?? [] {
            let peer = links.first { $0.proxy === channel }!.peer
            join(channel, peer)
            promise.succeed(channel)
        }
        pump()
    }

    // MARK: - The proxy

    func service(_ ports: [Int], configure: (inout ServiceConfig) -> Void = { _ in }) -> ServiceRuntime {
        var config = ServiceConfig(name: "s", endpoints: [])
        configure(&config)
        let service = ServiceRuntime(config: config, health: ServiceHealth(service: config), sourceID: 1,
                                     endpoints: ports.map { Endpoint(host: "127.0.0.1", port: $0, weight: 1) },
                                     eventLoop: loop, loopIndex: 0, logger: logger, clock: clock, connector: connector)
        services.append(service)
        return service
    }

    /// A client connection to a listener routing everything to `service`.
    func client(to service: ServiceRuntime) -> TestClient {
        client(to: service, routes: [RouteConfig(match: RouteMatch(), service: "s")])
    }

    /// A client connection to a listener with these routes, every one to `service` ("s").
    func client(to service: ServiceRuntime, routes: [RouteConfig], order: RouteOrder = .mostSpecificFirst) -> TestClient {
        var config = ListenerConfig(name: "l", address: HostPort(host: "127.0.0.1", port: 1), routes: routes)
        config.routeOrder = order
        let listener = ListenerRuntime(config: config, services: ["s": service], metrics: nil)
        let environment = CallEnvironment(deadlines: CallDeadlines(eventLoop: loop, clock: clock), clock: clock)
        let acceptor = Acceptor(listener: listener, environment: environment)
        let proxySide = EmbeddedChannel(handler: H2Connection(role: .server, delegate: acceptor, clock: clock), loop: loop)
        let clientH2 = H2Connection(role: .client, clock: clock)
        let clientSide = EmbeddedChannel(handler: clientH2, loop: loop)
        join(clientSide, proxySide)
        links.append((clientSide, proxySide))
        pump()
        return TestClient(connection: clientH2, harness: self, acceptor: acceptor)
    }

    /// What a downstream connection does with each new stream: a call.
    final class Acceptor: H2ConnectionDelegate {
        let listener: ListenerRuntime
        let environment: CallEnvironment
        init(listener: ListenerRuntime, environment: CallEnvironment) {
            self.listener = listener
            self.environment = environment
        }

        func connection(_ connection: H2Connection, didOpen stream: H2Stream) {
            stream.delegate = ProxyCall(downstream: stream, listener: listener, environment: environment)
        }
    }

    // MARK: - Moving bytes and time

    /// Runs the loop and moves bytes both ways on every link until nothing moves.
    func pump() {
        for _ in 0..<10_000 {
            loop.run()
            var moved = false
            for link in links {
                moved = move(from: link.proxy, to: link.peer) || moved
                moved = move(from: link.peer, to: link.proxy) || moved
            }
            if !moved { return }
        }
        XCTFail("the links never went quiet")
    }

    private func move(from: EmbeddedChannel, to: EmbeddedChannel) -> Bool {
        var moved = false
        while let bytes = try? from.readOutbound(as: ByteBuffer.self) {
            moved = true
            if to.isActive { try? to.writeInbound(bytes) }
        }
        if !from.isActive && to.isActive {
            _ = to.close(mode: .all)      // one side closed: the other sees the connection end
            moved = true
        }
        return moved
    }

    /// Moves time on by `amount` in steps of 1 ms, moving bytes after each step: what a timer
    /// starts (a retry, a hedge, a reconnect) reaches its peer before the next timer is due.
    func advance(by amount: TimeAmount) {
        var left = amount.nanoseconds
        while left > 0 {
            let step = min(left, 1_000_000)
            loop.advanceTime(by: .nanoseconds(step))
            pump()
            left -= step
        }
    }
}

/// A test's gRPC client on an in-memory connection to the proxy.
final class TestClient {
    let connection: H2Connection
    let harness: CallPathHarness
    let acceptor: CallPathHarness.Acceptor

    init(connection: H2Connection, harness: CallPathHarness, acceptor: CallPathHarness.Acceptor) {
        self.connection = connection
        self.harness = harness
        self.acceptor = acceptor
    }

    /// Starts a unary gRPC call to `path` with `message` (length-prefixed), optionally with a
    /// grpc-timeout; its answer is in the returned response once the harness pumped it.
    @discardableResult
    func call(_ path: String, message: String = "hi", timeout: String? = nil) -> TestResponse {
        var fields = [(":method", "POST"), (":scheme", "http"), (":path", path), (":authority", "test"),
                      ("content-type", "application/grpc"), ("te", "trailers")]
        if let timeout { fields.append(("grpc-timeout", timeout)) }
        let response = TestResponse()
        let stream = connection.openStream(headers: H2Headers(fields), endStream: false, delegate: response)!
        var body = ByteBufferAllocator().buffer(capacity: 5 + message.utf8.count)
        body.writeInteger(UInt8(0))
        body.writeInteger(UInt32(message.utf8.count))
        body.writeString(message)
        stream.sendData(body, endStream: true)
        response.stream = stream
        harness.pump()
        return response
    }
}

/// What the client got: response headers, body, trailers, the final gRPC status.
final class TestResponse: H2StreamDelegate {
    var stream: H2Stream?
    var headers: H2Headers?
    var trailers: H2Headers?
    var body = ByteBuffer()
    var closed = false
    var closeError: H2StreamError?

    /// grpc-status from the trailers (or Trailers-Only headers); nil while unanswered.
    var grpcStatus: Int? {
        (trailers ?? headers)?.first("grpc-status").flatMap { Int($0) }
    }
    var grpcMessage: String? { (trailers ?? headers)?.first("grpc-message") }
    var answered: Bool { closed }

    func streamReceivedHeaders(_ stream: H2Stream, headers: H2Headers, endStream: Bool) {
        if self.headers == nil { self.headers = headers } else { trailers = headers }
    }
    func streamReceivedData(_ stream: H2Stream, data: ByteBuffer) {
        body.writeImmutableBuffer(data)
        stream.consume(data.readableBytes)
    }
    func streamReceivedEnd(_ stream: H2Stream) {}
    func streamReceivedTrailers(_ stream: H2Stream, trailers: H2Headers) { self.trailers = trailers }
    func streamSentData(_ stream: H2Stream, byteCount: Int) {}
    func streamClosed(_ stream: H2Stream, error: H2StreamError?) {
        closed = true
        closeError = error
    }
}

/// An in-memory HTTP/2 upstream (FerryH2's server role) that answers each request by its path.
final class ScriptedUpstream: H2ConnectionDelegate {
    enum Behaviour {
        /// 200, the request's body echoed, grpc-status 0.
        case echo
        /// Trailers-Only with this grpc-status (and grpc-retry-pushback-ms, if given).
        case status(Int, pushbackMilliseconds: Int? = nil)
        /// Never answers.
        case hang
        /// RST_STREAM REFUSED_STREAM at once (never processed).
        case refuse
        /// 200, this body (a framed gRPC message), grpc-status 0, once the request ends.
        case reply(ByteBuffer)
        /// 200 once the request ends, then what the test sends with `push` and `endStreams`.
        case stream
        /// 200 at once, the request still open: both sides stream (what the test sends with
        /// `push` and `endStreams`; what the client sent is in `bodies`).
        case bidi
    }

    /// What each request sent so far, in the order the requests came.
    var bodies: [ByteBuffer] { handlers.map(\.body) }

    /// The streams answering `.stream` that are still open.
    private var streaming: [H2Stream] = []

    /// Sends `message` on every open `.stream` answer.
    func push(_ message: ByteBuffer) {
        for stream in streaming { stream.sendData(message) }
    }

    /// Ends every open `.stream` answer with this grpc-status.
    func endStreams(grpcStatus: Int) {
        let open = streaming
        streaming = []
        for stream in open { stream.sendTrailers(H2Headers([("grpc-status", String(grpcStatus))])) }
    }

    /// Resets every open `.stream` answer.
    func resetStreams() {
        let open = streaming
        streaming = []
        for stream in open { stream.reset(.internalError) }
    }

    var openStreamCount: Int { streaming.count }
    fileprivate func startedStream(_ stream: H2Stream) { streaming.append(stream) }
    fileprivate func streamGone(_ stream: H2Stream) { streaming.removeAll { $0 === stream } }

    let behaviour: (String) -> Behaviour
    let settings: H2Settings
    /// Every request's path, in arrival order.
    private(set) var requests: [String] = []
    /// Requests answered, and resets the proxy sent (a cancelled attempt).
    private(set) var answered = 0
    private(set) var resetsReceived: [H2ErrorCode] = []
    /// The last request's headers (to see what the proxy sent).
    fileprivate(set) var lastHeaders: H2Headers?
    private var handlers: [RequestHandler] = []

    init(settings: H2Settings = H2Settings(), behaviour: @escaping (String) -> Behaviour) {
        self.settings = settings
        self.behaviour = behaviour
    }

    func connection(_ connection: H2Connection, didOpen stream: H2Stream) {
        let handler = RequestHandler(upstream: self)
        handlers.append(handler)
        stream.delegate = handler
    }

    fileprivate func received(_ path: String) { requests.append(path) }
    fileprivate func didAnswer() { answered += 1 }
    fileprivate func wasReset(_ code: H2ErrorCode) { resetsReceived.append(code) }

    final class RequestHandler: H2StreamDelegate {
        unowned let upstream: ScriptedUpstream
        var behaviour = Behaviour.echo
        var body = ByteBuffer()

        init(upstream: ScriptedUpstream) { self.upstream = upstream }

        func streamReceivedHeaders(_ stream: H2Stream, headers: H2Headers, endStream: Bool) {
            let path = headers.first(":path") ?? "/"
            upstream.received(path)
            upstream.lastHeaders = headers
            behaviour = upstream.behaviour(path)
            switch behaviour {
            case .echo, .hang, .reply, .stream: break
            case .bidi:
                stream.connection.sendHeaders(stream, H2Headers([(":status", "200"), ("content-type", "application/grpc")]), endStream: false)
                upstream.startedStream(stream)
            case .status(let code, let pushback):
                var fields = [(":status", "200"), ("content-type", "application/grpc"), ("grpc-status", String(code))]
                if let pushback { fields.append(("grpc-retry-pushback-ms", String(pushback))) }
                stream.connection.sendHeaders(stream, H2Headers(fields), endStream: true)
                upstream.didAnswer()
            case .refuse:
                stream.reset(.refusedStream)
            }
        }
        func streamReceivedData(_ stream: H2Stream, data: ByteBuffer) {
            body.writeImmutableBuffer(data)
            stream.consume(data.readableBytes)
        }
        func streamReceivedEnd(_ stream: H2Stream) {
            let answer: ByteBuffer
            switch behaviour {
            case .echo: answer = body
            case .reply(let reply): answer = reply
            case .stream:
                stream.connection.sendHeaders(stream, H2Headers([(":status", "200"), ("content-type", "application/grpc")]), endStream: false)
                upstream.startedStream(stream)
                return
            default: return
            }
            stream.connection.sendHeaders(stream, H2Headers([(":status", "200"), ("content-type", "application/grpc")]), endStream: false)
            stream.sendData(answer)
            stream.sendTrailers(H2Headers([("grpc-status", "0")]))
            upstream.didAnswer()
        }
        func streamReceivedTrailers(_ stream: H2Stream, trailers: H2Headers) {}
        func streamSentData(_ stream: H2Stream, byteCount: Int) {}
        func streamClosed(_ stream: H2Stream, error: H2StreamError?) {
            upstream.streamGone(stream)
            if case .resetByPeer(let code) = error { upstream.wasReset(code) }
        }
    }
}

/// Shuts down every harness a test made when the test finishes (an XCTest observer, so no
/// test has to remember to).
final class HarnessShutdown: NSObject, XCTestObservation, @unchecked Sendable {
    nonisolated(unsafe) private static var shared: HarnessShutdown?
    private var harnesses: [CallPathHarness] = []

    static func register(_ harness: CallPathHarness) {
        if shared == nil {
            let observer = HarnessShutdown()
            shared = observer
            XCTestObservationCenter.shared.addTestObserver(observer)
        }
        shared!.harnesses.append(harness)
    }

    func testCaseDidFinish(_ testCase: XCTestCase) {
        let finished = harnesses
        harnesses = []
        for harness in finished { harness.shutDown() }
    }
}
