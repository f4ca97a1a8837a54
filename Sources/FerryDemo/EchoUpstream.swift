import FerryGRPC
import FerryH2
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// A small HTTP/2 echo server on Ferry's own server-role layer, used by `ferry demo` and tests.
/// Every request gets `:status 200`, its body echoed back as it arrives (with flow control:
/// bytes are consumed only once echoed), and for gRPC requests trailers with `grpc-status`.
/// Every `failEvery`-th call instead answers Trailers-Only UNAVAILABLE, to show errors passing through.
/// `behaviour` can make it slow, fail every call, stall a share of calls, or slow one method,
/// while it runs (the demo's phases); it records the last `grpc-timeout` it was sent.
public final class EchoUpstream: Sendable {
    public let name: String
    public let failEvery: Int
    private let channel: Channel
    private let connections: ConnectionCounter
    public let behaviour: EchoBehaviour

    public var localAddress: SocketAddress? { channel.localAddress }
    public var port: Int { channel.localAddress?.port ?? 0 }
    /// HTTP/2 connections open to this upstream now, and the most ever open at once.
    public var openConnections: Int { connections.open }
    public var peakConnections: Int { connections.peak }
    /// HTTP/2 connections accepted since the upstream started.
    public var acceptedConnections: Int { connections.accepted }

    private init(name: String, failEvery: Int, channel: Channel, connections: ConnectionCounter, behaviour: EchoBehaviour) {
        self.name = name
        self.failEvery = failEvery
        self.channel = channel
        self.connections = connections
        self.behaviour = behaviour
    }

    public static func start(name: String, host: String = "127.0.0.1", port: Int = 0, failEvery: Int = 0,
                             settings: H2Settings = H2Settings(), group: EventLoopGroup) async throws -> EchoUpstream {
        let counter = ConnectionCounter()
        let behaviour = EchoBehaviour()
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let handler = EchoConnection(name: name, failEvery: failEvery, counter: counter, behaviour: behaviour)
                    try channel.pipeline.syncOperations.addHandler(H2Connection(role: .server, settings: settings, delegate: handler))
                }
            }
            .bind(host: host, port: port).get()
        return EchoUpstream(name: name, failEvery: failEvery, channel: channel, connections: counter, behaviour: behaviour)
    }

    public func stop() async {
        try? await channel.close()
    }
}

private final class ConnectionCounter: Sendable {
    private let counts = NIOLockedValueBox((open: 0, peak: 0, accepted: 0))

    var open: Int { counts.withLockedValue { $0.open } }
    var peak: Int { counts.withLockedValue { $0.peak } }
    var accepted: Int { counts.withLockedValue { $0.accepted } }

    func opened() {
        counts.withLockedValue { $0.open += 1; $0.accepted += 1; $0.peak = max($0.peak, $0.open) }
    }

    func closed() {
        counts.withLockedValue { $0.open -= 1 }
    }
}

/// What an `EchoUpstream` does to the calls it gets, changed while it runs.
public final class EchoBehaviour: Sendable {
    public struct Settings: Sendable {
        /// Added to every answer.
        public var delay = TimeAmount.zero
        /// Every gRPC call answers Trailers-Only UNAVAILABLE.
        public var failAll = false
        /// Calls whose path contains `stallPaths` stall `stall` with probability `stallShare`.
        public var stallPaths = ""
        public var stallShare = 0.0
        public var stall = TimeAmount.zero
        /// Calls to this path take `pathDelay` more.
        public var slowPath = ""
        public var pathDelay = TimeAmount.zero
        public init() {}
    }

    private let state = NIOLockedValueBox((settings: Settings(), calls: 0, lastTimeout: String?.none))

    public init() {}

    public var settings: Settings {
        get { state.withLockedValue { $0.settings } }
        set { state.withLockedValue { $0.settings = newValue } }
    }

    /// Calls (streams) received since the upstream started.
    public var calls: Int { state.withLockedValue { $0.calls } }
    /// The `grpc-timeout` of the last call that carried one.
    public var lastGRPCTimeout: String? { state.withLockedValue { $0.lastTimeout } }

    func received(path: String, timeout: String?) -> (fail: Bool, delay: TimeAmount) {
        state.withLockedValue { state in
            state.calls += 1
            if let timeout { state.lastTimeout = timeout }
            let s = state.settings
            var delay = s.delay
            if !s.slowPath.isEmpty && path == s.slowPath { delay = delay + s.pathDelay }
            if !s.stallPaths.isEmpty && path.contains(s.stallPaths) && Double.random(in: 0..<1) < s.stallShare { delay = delay + s.stall }
            return (s.failAll, delay)
        }
    }
}

private final class EchoConnection: H2ConnectionDelegate {
    let name: String
    let failEvery: Int
    let counter: ConnectionCounter
    let behaviour: EchoBehaviour
    private var calls = 0

    init(name: String, failEvery: Int, counter: ConnectionCounter, behaviour: EchoBehaviour) {
        self.name = name
        self.failEvery = failEvery
        self.counter = counter
        self.behaviour = behaviour
        counter.opened()
    }

    func connectionClosed(_ connection: H2Connection) {
        counter.closed()
    }

    func connection(_ connection: H2Connection, didOpen stream: H2Stream) {
        calls += 1
        stream.delegate = EchoStream(upstreamName: name, fail: failEvery > 0 && calls % failEvery == 0, behaviour: behaviour)
    }
}

private final class EchoStream: H2StreamDelegate {
    let upstreamName: String
    var fail: Bool
    let behaviour: EchoBehaviour
    private var isGRPC = false
    /// A delayed answer: the request's body waits here until the delay is over.
    private var delayed = false
    private var held = ByteBuffer()
    private var requestEnded = false
    private var delayOver = false

    init(upstreamName: String, fail: Bool, behaviour: EchoBehaviour) {
        self.upstreamName = upstreamName
        self.fail = fail
        self.behaviour = behaviour
    }

    func streamReceivedHeaders(_ stream: H2Stream, headers: H2Headers, endStream: Bool) {
        isGRPC = headers.withValue(of: "content-type") { $0.map(GRPCHeaderValues.isGRPCContentType) ?? false }
        let (failAll, delay) = behaviour.received(path: headers.first(":path") ?? "", timeout: headers.first("grpc-timeout"))
        if failAll { fail = true }
        if fail && isGRPC {
            var response = H2Headers(GRPCResponses.trailersOnly(.unavailable, message: "demo: \(upstreamName) is shedding load"))
            response.append(name: "ferry-upstream", value: upstreamName)
            stream.connection.sendHeaders(stream, response, endStream: true)
            return
        }
        requestEnded = endStream
        if delay > .zero, let loop = stream.connection.eventLoop {
            delayed = true
            loop.assumeIsolatedUnsafeUnchecked().scheduleTask(in: delay) { [self] in
                delayOver = true
                guard !stream.isClosed else { return }
                sendHeaders(stream)
                if held.readableBytes > 0 { stream.sendData(held) }
                if requestEnded { finish(stream) }
            }
            return
        }
        sendHeaders(stream)
        if endStream { finish(stream) }
    }

    private func sendHeaders(_ stream: H2Stream) {
        var response = H2Headers([(":status", "200")])
        response.append(name: "content-type", value: isGRPC ? GRPCResponses.contentType : "application/octet-stream")
        response.append(name: "ferry-upstream", value: upstreamName)
        stream.connection.sendHeaders(stream, response, endStream: false)
    }

    func streamReceivedData(_ stream: H2Stream, data: ByteBuffer) {
        guard !fail || !isGRPC else { return stream.consume(data.readableBytes) }
        if delayed && !delayOver {
            let count = data.readableBytes
            held.writeImmutableBuffer(data)
            stream.consume(count)
            return
        }
        stream.sendData(data)
    }

    func streamReceivedEnd(_ stream: H2Stream) {
        requestEnded = true
        if !delayed || delayOver { finish(stream) }
    }

    func streamReceivedTrailers(_ stream: H2Stream, trailers: H2Headers) { streamReceivedEnd(stream) }

    func streamSentData(_ stream: H2Stream, byteCount: Int) {
        if !delayed { stream.consume(byteCount) }
    }

    func streamClosed(_ stream: H2Stream, error: H2StreamError?) {}

    private func finish(_ stream: H2Stream) {
        guard !fail || !isGRPC else { return }
        if isGRPC {
            stream.sendTrailers(H2Headers(GRPCResponses.trailers(.ok, message: "")))
        } else {
            stream.sendEnd()
        }
    }
}
