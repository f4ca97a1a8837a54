import FerryConfig
import FerryH2
import FerryTLS
import NIOCore
import NIOPosix
import NIOSSL

/// A service's TLS towards its endpoints, shared by every loop's pools (a context is safe to
/// share; each connection gets its own session from it).
package struct UpstreamTLSClient: Sendable {
    package let context: NIOSSLContext
    package let serverName: String?
    package let identities: [IdentityPattern]

    package init(context: NIOSSLContext, config: UpstreamTLSConfig) {
        self.context = context
        self.serverName = config.serverName
        self.identities = config.identities
    }

    /// SNI: the configured server name, else the endpoint's host when it is a name (an IP
    /// address is never sent as SNI; hostname verification then checks the address).
    func serverHostname(for address: HostPort) -> String? {
        if let serverName { return serverName }
        return (try? SocketAddress(ipAddress: address.host, port: 0)) == nil ? address.host : nil
    }
}

extension UpstreamConnector {
    /// TCP, then TLS with ALPN h2: the channel is handed to the pool once the handshake has
    /// verified the endpoint (its chain, its name or identity, h2). A failed verification is a
    /// connect failure with the reason (`UpstreamTLSError`).
    package static func tls(_ client: UpstreamTLSClient) -> UpstreamConnector {
        UpstreamConnector { address, eventLoop, timeout, makeHandler in
            let make = NIOLoopBound(makeHandler, eventLoop: eventLoop)
            let gate = NIOLoopBoundBox<ClientHandshakeGate?>(nil, eventLoop: eventLoop)
            return ClientBootstrap(group: eventLoop)
                .connectTimeout(timeout)
                .channelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let serverHostname = client.serverHostname(for: address)
                        let handshake = ClientHandshakeGate(identities: client.identities, expectedName: serverHostname,
                                                            timeout: timeout, eventLoop: channel.eventLoop)
                        gate.value = handshake
                        let tls = try NIOSSLClientHandler(context: client.context, serverHostname: serverHostname)
                        try channel.pipeline.syncOperations.addHandlers([tls, handshake, make.value()])
                    }
                }
                .connect(host: address.host, port: address.port)
                .flatMap { channel in
                    guard let verified = gate.value?.verified else { return channel.eventLoop.makeSucceededFuture(channel) }
                    return verified.map { _ in channel }.flatMapErrorThrowing { error in
                        channel.close(promise: nil)
                        throw error
                    }
                }
        }
    }
}
