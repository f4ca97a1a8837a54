import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// A transparent TCP tap between a real client and a real server (`ferry record`): every
/// accepted connection is joined to a new connection to the upstream, bytes are passed on
/// unchanged both ways, and when both sides have closed the conversation is written as a
/// fixture file `DIRECTORY/NAME.fixture` (`NAME-2.fixture`, ... for later connections).
public final class FixtureRecorder: Sendable {
    public struct Options: Sendable {
        public var listenHost: String
        public var listenPort: Int
        public var upstreamHost: String
        public var upstreamPort: Int
        public var directory: String
        public var name: String
        public var metadata: [(key: String, value: String)]
        /// Stop accepting after this many connections (nil: until stopped).
        public var maxConnections: Int?

        public init(listenHost: String, listenPort: Int, upstreamHost: String, upstreamPort: Int, directory: String,
                    name: String, metadata: [(key: String, value: String)] = [], maxConnections: Int? = nil) {
            self.listenHost = listenHost
            self.listenPort = listenPort
            self.upstreamHost = upstreamHost
            self.upstreamPort = upstreamPort
            self.directory = directory
            self.name = name
            self.metadata = metadata
            self.maxConnections = maxConnections
        }
    }

    private let channel: Channel
    private let state: NIOLockedValueBox<(accepted: Int, written: [String], failures: [String])>
    private let options: Options

    public var port: Int { channel.localAddress?.port ?? 0 }
    public var writtenFiles: [String] { state.withLockedValue { $0.written } }
    public var failures: [String] { state.withLockedValue { $0.failures } }

    private init(channel: Channel, state: NIOLockedValueBox<(accepted: Int, written: [String], failures: [String])>, options: Options) {
        self.channel = channel
        self.state = state
        self.options = options
    }

    public static func start(_ options: Options, group: EventLoopGroup) async throws -> FixtureRecorder {
        let state = NIOLockedValueBox((accepted: 0, written: [String](), failures: [String]()))
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                let index = state.withLockedValue { s -> Int in
                    s.accepted += 1
                    return s.accepted
                }
                if let max = options.maxConnections, index > max {
                    return channel.close()
                }
                let fileName = index == 1 ? "\(options.name).fixture" : "\(options.name)-\(index).fixture"
                let path = options.directory + "/" + fileName
                return channel.eventLoop.makeCompletedFuture {
                    let tap = TapSession(path: path, metadata: options.metadata + [("connection", String(index))]) { result in
                        state.withLockedValue {
                            switch result {
                            case .success(let path): $0.written.append(path)
                            case .failure(let error): $0.failures.append("\(path): \(error)")
                            }
                        }
                    }
                    try channel.pipeline.syncOperations.addHandler(ClientSide(tap: tap, options: options))
                }
            }
            .bind(host: options.listenHost, port: options.listenPort).get()
        return FixtureRecorder(channel: channel, state: state, options: options)
    }

    /// Waits until `count` fixtures are written (or `timeout` passes).
    public func waitForFiles(_ count: Int, timeout: Duration = .seconds(30)) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if state.withLockedValue({ $0.written.count + $0.failures.count }) >= count { return true }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return false
    }

    public func stop() async {
        try? await channel.close()
    }
}

/// One recorded connection: both channels live on the same event loop, so this is loop-confined.
private final class TapSession {
    let path: String
    let metadata: [(key: String, value: String)]
    let start = NIODeadline.now()
    var fixture = Fixture()
    var clientChannel: Channel?
    var upstreamChannel: Channel?
    var pendingToUpstream: [ByteBuffer] = []
    var openSides = 2
    private var finished = false
    let done: (Result<String, Error>) -> Void

    init(path: String, metadata: [(key: String, value: String)], done: @escaping (Result<String, Error>) -> Void) {
        self.path = path
        self.metadata = metadata
        self.done = done
    }

    func record(_ direction: Fixture.Direction, _ buffer: ByteBuffer) {
        let seconds = Double((NIODeadline.now() - start).nanoseconds) / 1e9
        fixture.records.append(Fixture.Record(direction: direction, seconds: seconds, bytes: Array(buffer.readableBytesView)))
    }

    func sideClosed() {
        openSides -= 1
        clientChannel?.close(promise: nil)
        upstreamChannel?.close(promise: nil)
        guard openSides <= 0, !finished else { return }
        finished = true
        fixture.metadata = metadata
        do {
            try writeFile(path, fixture.serialized())
            done(.success(path))
        } catch {
            done(.failure(error))
        }
    }
}

private final class ClientSide: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    let tap: TapSession
    let options: FixtureRecorder.Options

    init(tap: TapSession, options: FixtureRecorder.Options) {
        self.tap = tap
        self.options = options
    }

    func channelActive(context: ChannelHandlerContext) {
        tap.clientChannel = context.channel
        let tap = self.tap
        let loopBoundTap = NIOLoopBound(tap, eventLoop: context.eventLoop)
        ClientBootstrap(group: context.eventLoop)
            .channelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(UpstreamSide(tap: loopBoundTap.value))
                }
            }
            .connect(host: options.upstreamHost, port: options.upstreamPort)
            .assumeIsolated()
            .whenComplete { result in
                switch result {
                case .success(let upstream):
                    tap.upstreamChannel = upstream
                    for buffer in tap.pendingToUpstream { upstream.write(buffer, promise: nil) }
                    tap.pendingToUpstream = []
                    upstream.flush()
                case .failure:
                    tap.openSides -= 1   // the upstream side never opened
                    tap.clientChannel?.close(promise: nil)
                }
            }
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        tap.record(.clientToServer, buffer)
        if let upstream = tap.upstreamChannel {
            upstream.writeAndFlush(buffer, promise: nil)
        } else {
            tap.pendingToUpstream.append(buffer)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        tap.sideClosed()
    }
}

private final class UpstreamSide: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    let tap: TapSession

    init(tap: TapSession) {
        self.tap = tap
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        tap.record(.serverToClient, buffer)
        tap.clientChannel?.writeAndFlush(buffer, promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        tap.sideClosed()
    }
}

#if canImport(Glibc)
import Glibc
#endif

func writeFile(_ path: String, _ text: String) throws {
    guard let file = fopen(path, "w") else { throw FixtureIOError(path: path, operation: "open") }
    defer { fclose(file) }
    let bytes = Array(text.utf8)
    guard fwrite(bytes, 1, bytes.count, file) == bytes.count else { throw FixtureIOError(path: path, operation: "write") }
}

public func readFile(_ path: String) throws -> String {
    guard let file = fopen(path, "r") else { throw FixtureIOError(path: path, operation: "open") }
    defer { fclose(file) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = fread(&chunk, 1, chunk.count, file)
        if n <= 0 { break }
        bytes += chunk[0..<n]
    }
    return String(decoding: bytes, as: UTF8.self)
}

public struct FixtureIOError: Error, CustomStringConvertible {
    public let path: String
    public let operation: String
    public var description: String { "cannot \(operation) \(path)" }
}
