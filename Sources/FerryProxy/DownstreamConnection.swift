import FerryConfig
import FerryH2

/// One accepted client connection: gives each stream the client opens a `ProxyCall`, routed
/// by its listener's current table when its headers arrive.
final class DownstreamConnection: H2ConnectionDelegate {
    let listener: ListenerRuntime
    unowned let loop: LoopContext

    init(listener: ListenerRuntime, loop: LoopContext) {
        self.listener = listener
        self.loop = loop
    }

    func connection(_ connection: H2Connection, didOpen stream: H2Stream) {
        stream.delegate = ProxyCall(downstream: stream, listener: listener, environment: loop.callEnvironment)
    }

    func connectionClosed(_ connection: H2Connection) {
        loop.unregister(connection)
        if let kind = LoopMetrics.protocolErrorKind(connection.failureReason) {
            loop.metrics.countProtocolError(listener: listener.name, kind: kind)
        }
        if let reason = connection.failureReason, reason != "connection closed" {
            loop.logger.debug("downstream connection ended", metadata: ["listener": "\(listener.name)", "reason": "\(reason)"])
        }
    }
}
