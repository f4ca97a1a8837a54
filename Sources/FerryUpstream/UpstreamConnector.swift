import FerryConfig
import FerryH2
import NIOCore
import NIOPosix

/// How a pool reaches its endpoint: a channel whose pipeline holds the HTTP/2 handler
/// `makeHandler` builds (called on the event loop). Production connects over TCP; tests pass
/// one that joins the handler to an in-memory upstream on an EmbeddedEventLoop.
package struct UpstreamConnector: Sendable {
    package let connect: @Sendable (_ address: HostPort, _ eventLoop: EventLoop, _ timeout: TimeAmount,
                  _ makeHandler: @escaping () -> H2Connection) -> EventLoopFuture<Channel>

    /// TCP with TCP_NODELAY, within the pool's connect timeout.
    package static let tcp = UpstreamConnector { address, eventLoop, timeout, makeHandler in
        let make = NIOLoopBound(makeHandler, eventLoop: eventLoop)
        return ClientBootstrap(group: eventLoop)
            .connectTimeout(timeout)
            .channelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(make.value()) }
            }
            .connect(host: address.host, port: address.port)
    }
}
