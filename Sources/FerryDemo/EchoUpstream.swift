import FerryGRPC
import FerryH2
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// A small HTTP/2 echo server on Ferry's own server-role layer, used by `ferry demo` and tests.
/// Every request gets `:status 200`, its body echoed back as it arrives (with flow control:
/// bytes are consumed only once echoed), and for gRPC requests trailers with `grpc-status`.
/// Every `failEvery`-th call instead answers Trailers-Only UNAVAILABLE, to show errors passing through.
public final class EchoUpstream: Sendable {
    public let name: String
    public let failEvery: Int
    private let channel: Channel
    private let connections: ConnectionCounter

    public var localAddress: SocketAddress? { channel.localAddress }
    public var port: Int { channel.localAddress?.port ?? 0 }
    /// HTTP/2 connections open to this upstream now, and the most ever open at once.
    public var openConnections: Int { connections.open }
    public var peakConnections: Int { connections.peak }
    /// HTTP/2 connections accepted since the upstream started.
    public var acceptedConnections: Int { connections.accepted }

    private init(name: String, failEvery: Int, channel: Channel, connections: ConnectionCounter) {
        self.name = name
        self.failEvery = failEvery
        self.channel = channel
        self.connections = connections
    }

    public static func start(name: String, host: String = "127.0.0.1", port: Int = 0, failEvery: Int = 0,
                             settings: H2Settings = H2Settings(), group: EventLoopGroup) async throws -> EchoUpstream {
        let counter = ConnectionCounter()
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let handler = EchoConnection(name: name, failEvery: failEvery, counter: counter)
                    try channel.pipeline.syncOperations.addHandler(H2Connection(role: .server, settings: settings, delegate: handler))
                }
            }
            .bind(host: host, port: port).get()
        return EchoUpstream(name: name, failEvery: failEvery, channel: channel, connections: counter)
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

private final class EchoConnection: H2ConnectionDelegate {
    let name: String
    let failEvery: Int
    let counter: ConnectionCounter
    private var calls = 0

    init(name: String, failEvery: Int, counter: ConnectionCounter) {
        self.name = name
        self.failEvery = failEvery
        self.counter = counter
        counter.opened()
    }

    func connectionClosed(_ connection: H2Connection) {
        counter.closed()
    }

    func connection(_ connection: H2Connection, didOpen stream: H2Stream) {
        calls += 1
        stream.delegate = EchoStream(upstreamName: name, fail: failEvery > 0 && calls % failEvery == 0)
    }
}

private final class EchoStream: H2StreamDelegate {
    let upstreamName: String
    let fail: Bool
    private var isGRPC = false

    init(upstreamName: String, fail: Bool) {
        self.upstreamName = upstreamName
        self.fail = fail
    }

    func streamReceivedHeaders(_ stream: H2Stream, headers: H2Headers, endStream: Bool) {
        isGRPC = headers.withValue(of: "content-type") { $0.map(GRPCHeaderValues.isGRPCContentType) ?? false }
        if fail && isGRPC {
            var response = H2Headers(GRPCResponses.trailersOnly(.unavailable, message: "demo: \(upstreamName) is shedding load"))
            response.append(name: "ferry-upstream", value: upstreamName)
            stream.connection.sendHeaders(stream, response, endStream: true)
            return
        }
        var response = H2Headers([(":status", "200")])
        response.append(name: "content-type", value: isGRPC ? GRPCResponses.contentType : "application/octet-stream")
        response.append(name: "ferry-upstream", value: upstreamName)
        stream.connection.sendHeaders(stream, response, endStream: false)
        if endStream { finish(stream) }
    }

    func streamReceivedData(_ stream: H2Stream, data: ByteBuffer) {
        guard !fail || !isGRPC else { return stream.consume(data.readableBytes) }
        stream.sendData(data)
    }

    func streamReceivedEnd(_ stream: H2Stream) { finish(stream) }

    func streamReceivedTrailers(_ stream: H2Stream, trailers: H2Headers) { finish(stream) }

    func streamSentData(_ stream: H2Stream, byteCount: Int) { stream.consume(byteCount) }

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
