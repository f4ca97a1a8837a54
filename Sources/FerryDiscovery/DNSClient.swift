import NIOCore
import NIOPosix

/// Sends single DNS queries over UDP from a fresh socket (a random source port per query) on
/// a control event loop, never on the loops that serve traffic.
public struct DNSClient: Sendable {
    public enum QueryError: Error, CustomStringConvertible {
        case timedOut(server: SocketAddress)
        case malformed(String)

        public var description: String {
            switch self {
            case .timedOut(let server): return "no answer from \(DNSClient.describe(server))"
            case .malformed(let why): return "malformed answer: \(why)"
            }
        }
    }

    let group: EventLoopGroup

    /// `127.0.0.1:53`, `[::1]:53`: an address as configuration writes it.
    static func describe(_ address: SocketAddress) -> String {
        guard let ip = address.ipAddress, let port = address.port else { return "\(address)" }
        return address.protocol == .inet6 ? "[\(ip)]:\(port)" : "\(ip):\(port)"
    }

    public init(group: EventLoopGroup) {
        self.group = group
    }

    public func query(name: String, type: DNSRecordType, server: SocketAddress, timeout: TimeAmount) async throws -> DNSResponse {
        let id = UInt16.random(in: 0...UInt16.max)
        let loop = group.next()
        let promise = loop.makePromise(of: DNSResponse.self)
        let channel = try await DatagramBootstrap(group: loop)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(DNSAnswerHandler(id: id, server: server, promise: promise))
                }
            }
            .bind(host: server.protocol == .inet6 ? "::" : "0.0.0.0", port: 0)
            .get()
        let timer = loop.scheduleTask(in: timeout) { promise.fail(QueryError.timedOut(server: server)) }
        let bytes = DNSMessage.query(id: id, name: name, type: type)
        let envelope = AddressedEnvelope(remoteAddress: server, data: channel.allocator.buffer(bytes: bytes))
        channel.writeAndFlush(envelope).whenFailure { promise.fail($0) }
        defer {
            timer.cancel()
            channel.close(promise: nil)
        }
        return try await promise.futureResult.get()
    }
}

/// Takes the first datagram from the server that answers our query id.
private final class DNSAnswerHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>

    let id: UInt16
    let server: SocketAddress
    let promise: EventLoopPromise<DNSResponse>

    init(id: UInt16, server: SocketAddress, promise: EventLoopPromise<DNSResponse>) {
        self.id = id
        self.server = server
        self.promise = promise
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = unwrapInboundIn(data)
        guard envelope.remoteAddress == server else { return }
        let bytes = Array(envelope.data.readableBytesView)
        do {
            let response = try DNSMessage.decode(bytes)
            guard response.id == id else { return }
            promise.succeed(response)
        } catch {
            promise.fail(DNSClient.QueryError.malformed("\(error)"))
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        promise.fail(error)
    }
}
