import FerryConfig
import FerryH2
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// The running proxy: listeners bound on every event loop of a group, each loop with its own
/// upstream pools. Start it, point clients at it, and drain it on shutdown.
public final class FerryServer: Sendable {
    public let config: FerryConfig
    private let group: EventLoopGroup
    private let logger: Logger
    private let contexts: [ObjectIdentifier: LoopContextBox]
    private let listeningChannels = NIOLockedValueBox<[Channel]>([])

    public init(config: FerryConfig, group: EventLoopGroup, logger: Logger) {
        self.config = config
        self.group = group
        self.logger = logger
        var contexts: [ObjectIdentifier: LoopContextBox] = [:]
        for (index, loop) in group.makeIterator().enumerated() {
            contexts[ObjectIdentifier(loop)] = LoopContextBox(LoopContext(eventLoop: loop, loopIndex: index, config: config, logger: logger))
        }
        self.contexts = contexts
    }

    /// Binds every listener; returns their bound addresses in configuration order.
    @discardableResult
    public func start() async throws -> [SocketAddress] {
        var addresses: [SocketAddress] = []
        for listener in config.listeners {
            let channel = try await bind(listener).get()
            listeningChannels.withLockedValue { $0.append(channel) }
            if let address = channel.localAddress { addresses.append(address) }
            logger.info("listening", metadata: ["listener": "\(listener.name)", "address": "\(channel.localAddress.map { "\($0)" } ?? "?")",
                                                "service": "\(listener.service)"])
        }
        return addresses
    }

    private func bind(_ listener: ListenerConfig) -> EventLoopFuture<Channel> {
        var settings = H2Settings()
        settings.maxConcurrentStreams = listener.http2.maxConcurrentStreams
        settings.initialStreamWindow = listener.http2.initialStreamWindow
        settings.connectionWindow = listener.http2.connectionWindow
        settings.maxHeaderListSize = listener.http2.maxHeaderListSize
        settings.maxFrameSize = listener.http2.maxFrameSize
        let contexts = self.contexts
        return ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.backlog, value: 1024)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    guard let loop = contexts[ObjectIdentifier(channel.eventLoop)]?.value,
                          let service = loop.services[listener.service] else {
                        throw ChannelError.ioOnClosedChannel
                    }
                    let downstream = DownstreamConnection(listener: listener, service: service, loop: loop)
                    let connection = H2Connection(role: .server, settings: settings, delegate: downstream)
                    try channel.pipeline.syncOperations.addHandler(connection)
                    loop.register(connection)
                }
            }
            .bind(host: listener.address.host, port: listener.address.port)
    }

    /// Graceful shutdown: stop accepting, send every client the two-step GOAWAY, let calls in
    /// flight finish for up to `drainTimeout`, then close what is left.
    public func shutdown(drainTimeout: TimeAmount) async {
        let channels = listeningChannels.withLockedValue { channels in
            defer { channels.removeAll() }
            return channels
        }
        for channel in channels { try? await channel.close() }
        for box in contexts.values {
            try? await box.eventLoop.submit { box.value.beginDrain() }.get()
        }
        let deadline = NIODeadline.now() + drainTimeout
        while NIODeadline.now() < deadline {
            var open = 0
            for box in contexts.values {
                open += (try? await box.eventLoop.submit { box.value.downstreamConnectionCount }.get()) ?? 0
            }
            if open == 0 { break }
            try? await Task.sleep(for: .milliseconds(50))
        }
        for box in contexts.values {
            try? await box.eventLoop.submit { box.value.finishDrain() }.get()
        }
        logger.info("drained")
    }
}
