import FerryConfig
import FerryH2
import FerryTLS
import FerryUpstream
import NIOCore

/// One accepted client connection: gives each stream the client opens a `ProxyCall`, routed
/// by its listener's current table when its headers arrive. It holds the connection to its
/// listener's limits: the handshake must finish within `handshake_timeout`, a connection with
/// no open stream for `idle_timeout` is sent GOAWAY, and its place under `max_connections` is
/// given back when it closes.
final class DownstreamConnection: H2ConnectionDelegate {
    let listener: ListenerRuntime
    unowned let loop: LoopContext
    /// The place this connection holds under the listener's connection limit.
    private let admission: ListenerAdmission
    private var handshakeTimer: Scheduled<Void>?
    private let idleTimeout: IdleTimeout?
    /// Why the proxy ended the connection, if it did (for the metrics).
    private var closedFor: String?
    /// The client's identity from its verified certificate (TLS listeners asking for one),
    /// with the connection's rate-limit buckets for it.
    private(set) var caller: CallerLimiterCache?
    /// The client's address (`127.0.0.1:50312`, `[::1]:50312`), for log lines and the access log.
    var peer = "?"

    init(listener: ListenerRuntime, loop: LoopContext, admission: ListenerAdmission) {
        self.listener = listener
        self.loop = loop
        self.admission = admission
        self.idleTimeout = listener.config.idleTimeout.map {
            IdleTimeout(eventLoop: loop.eventLoop, timeout: .nanoseconds($0.totalNanoseconds))
        }
    }

    deinit {
        handshakeTimer?.cancel()
        idleTimeout?.cancel()
    }

    /// The connection was accepted and its handler added: the handshake clock starts.
    func started(_ connection: H2Connection) {
        let timeout = TimeAmount.nanoseconds(listener.config.handshakeTimeout.totalNanoseconds)
        // Unowned, not weak: a weak reference would move the connection's reference count to a
        // side table, and every retain and release of it on the request path would take the
        // slow path (+1.7k instructions per call, callgrind). Both timers end in
        // `connectionClosed`, before either object can go.
        handshakeTimer = loop.eventLoop.assumeIsolatedUnsafeUnchecked().scheduleTask(in: timeout) { [unowned self, unowned connection] in
            guard !connection.receivedRemoteSettings else { return }
            self.closedFor = "handshake_timeout"
            connection.terminate(errorCode: H2ErrorCode.settingsTimeout, reason: "no HTTP/2 preface and SETTINGS within \(timeout)")
        }
        idleTimeout?.expired = { [unowned self, unowned connection] in
            guard connection.openStreamCount == 0 else { return }
            self.closedFor = "idle_timeout"
            connection.beginGracefulShutdown()
        }
    }

    /// The TLS handshake is over: the caller's identity is known before its first request, or
    /// the connection fails with the reason logged.
    func tlsHandshakeEnded(_ outcome: ServerHandshakeOutcome) {
        switch outcome {
        case .verified(let identity):
            caller = identity.map(CallerLimiterCache.init)
        case .failed(let reason, let closedEarly):
            closedFor = "tls_handshake"
            loop.tlsHandshakeFailed(listener, reason: reason, peer: peer, closedEarly: closedEarly)
        }
    }

    func connectionReceivedSettings(_ connection: H2Connection) {
        guard let timer = handshakeTimer.take() else { return }
        timer.cancel()
        idleTimeout?.idle()
    }

    func connection(_ connection: H2Connection, didOpen stream: H2Stream) {
        idleTimeout?.busy()
        stream.delegate = ProxyCall(downstream: stream, listener: listener, environment: loop.callEnvironment,
                                    caller: caller)
    }

    func connectionStreamClosed(_ connection: H2Connection) {
        if connection.openStreamCount == 0 { idleTimeout?.idle() }
    }

    func connectionClosed(_ connection: H2Connection) {
        handshakeTimer.take()?.cancel()
        idleTimeout?.cancel()
        idleTimeout?.expired = {}
        admission.release()
        loop.unregister(connection)
        if let reason = closedFor {
            loop.metrics.countConnectionClosed(listener: listener.name, reason: reason)
        } else if let kind = connection.failure?.protocolErrorKind {
            loop.metrics.countProtocolError(listener: listener.name, kind: kind)
        }
        if let reason = connection.failureReason, reason != "connection closed" {
            loop.logger.debug("downstream connection ended", metadata: ["listener": "\(listener.name)", "reason": "\(reason)"])
        }
    }
}
