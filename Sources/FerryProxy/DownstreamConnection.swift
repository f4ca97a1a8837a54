import FerryConfig
import FerryH2

/// One accepted client connection: gives each stream the client opens a `ProxyCall`.
final class DownstreamConnection: H2ConnectionDelegate {
    let listener: ListenerConfig
    let service: ServiceRuntime
    unowned let loop: LoopContext

    private let listenerMaxDeadline: Int64?

    init(listener: ListenerConfig, service: ServiceRuntime, loop: LoopContext) {
        self.listener = listener
        self.listenerMaxDeadline = listener.maxDeadline?.totalNanoseconds
        self.service = service
        self.loop = loop
    }

    func connection(_ connection: H2Connection, didOpen stream: H2Stream) {
        stream.delegate = ProxyCall(downstream: stream, service: service, listenerMaxDeadline: listenerMaxDeadline)
    }

    func connectionClosed(_ connection: H2Connection) {
        loop.unregister(connection)
        if let reason = connection.failureReason, reason != "connection closed" {
            loop.logger.debug("downstream connection ended", metadata: ["listener": "\(listener.name)", "reason": "\(reason)"])
        }
    }
}
