import FerryH2
import NIOCore
import NIOPosix

/// One client-role HTTP/2 connection in an `UpstreamPool`: connecting, then lending streams
/// until it dies, is told to go away, or sits idle past the pool's idle timeout.
package final class UpstreamConnection {
    package enum State {
        case connecting
        /// TCP is up and our preface is sent; waiting for the peer's SETTINGS (its stream limit).
        case handshaking(H2Connection)
        case ready(H2Connection)
        /// No new streams (GOAWAY received, idle, or draining); open streams finish.
        case retiring(H2Connection)
        case closed
    }

    /// Strong, and let go when the connection closes (`finish()`): a connection keeps its pool
    /// alive until it is over. Not weak: a weak reference would move the pool's reference count
    /// to a side table, and every call retains its pool (a slow retain and release per call).
    private var pool: UpstreamPool?
    package private(set) var state = State.connecting
    /// The pool's idle timeout, counted from the last stream's close.
    private let idleTimeout: IdleTimeout
    private var closeWhenIdleRequested = false
    private var connectTimeout = TimeAmount.seconds(1)
    private var handshakeTimer: Scheduled<Void>?
    private var keepaliveTimer: Scheduled<Void>?
    /// When the outstanding keepalive PING was sent (0: none outstanding).
    private var pingSentAt: Int64 = 0

    package init(pool: UpstreamPool) {
        self.pool = pool
        self.idleTimeout = IdleTimeout(eventLoop: pool.eventLoop, timeout: pool.idleTimeout, clock: pool.clock)
        // Unowned: the timeout is this connection's own and is cancelled when it closes (a weak
        // reference would put this object's reference count in a side table, slowing every
        // retain and release of it).
        idleTimeout.expired = { [unowned self] in
            guard case .ready(let h2) = self.state, h2.openStreamCount == 0 else { return }
            self.retire(h2)
        }
    }

    deinit {
        idleTimeout.cancel()
    }

    package var h2: H2Connection? {
        if case .ready(let connection) = state { return connection }
        return nil
    }

    /// The HTTP/2 connection while it can still carry streams (ready or retiring).
    private var liveConnection: H2Connection? {
        switch state {
        case .ready(let h2), .retiring(let h2): return h2
        case .connecting, .handshaking, .closed: return nil
        }
    }

    package var openStreamCount: Int { liveConnection?.openStreamCount ?? 0 }

    package var isReady: Bool { if case .ready = state { return true } else { return false } }
    package var isConnecting: Bool {
        switch state {
        case .connecting, .handshaking: return true
        case .ready, .retiring, .closed: return false
        }
    }

    package func connect(settings: H2Settings, connectTimeout: TimeAmount) {
        guard let pool else { return }
        self.connectTimeout = connectTimeout
        let (headerBlocks, clock) = (pool.headerBlocks, pool.clock)
        pool.connector.connect(pool.address, pool.eventLoop, connectTimeout) {
            H2Connection(role: .client, settings: settings, headerBlocks: headerBlocks, clock: clock)
        }
            .assumeIsolatedUnsafeUnchecked()
            .whenComplete { result in
                switch result {
                case .success(let channel):
                    self.connected(channel)
                case .failure(let error):
                    self.finish()?.connectFailed(self, reason: ConnectErrorText.of(error))
                }
            }
    }

    private func connected(_ channel: Channel) {
        let h2 = try? channel.pipeline.syncOperations.handler(type: H2Connection.self)
        h2?.activateIfChannelActive()
        guard let h2, h2.isActive else {
            let pool = finish()
            channel.close(promise: nil)
            pool?.connectFailed(self, reason: "connection closed while starting")
            return
        }
        h2.delegate = self
        if pool?.isDraining ?? true {
            state = .retiring(h2)
            h2.beginGracefulShutdown()
            return
        }
        // Streams are lent only once the peer's SETTINGS state its MAX_CONCURRENT_STREAMS:
        // opening streams on a guess makes a strict peer refuse the excess.
        state = .handshaking(h2)
        if h2.receivedRemoteSettings {
            handshakeDone(h2)
            return
        }
        handshakeTimer = channel.eventLoop.assumeIsolatedUnsafeUnchecked().scheduleTask(in: connectTimeout) {
            guard case .handshaking(let h2) = self.state else { return }
            let pool = self.finish()
            h2.terminate(errorCode: H2ErrorCode.settingsTimeout, reason: "no SETTINGS from the upstream")
            pool?.connectFailed(self, reason: "no HTTP/2 SETTINGS received within the connect timeout")
        }
    }

    /// The connection is over: it lets go of its pool, returned for a last word to it.
    private func finish() -> UpstreamPool? {
        state = .closed
        return pool.take()
    }

    private func handshakeDone(_ h2: H2Connection) {
        handshakeTimer?.cancel()
        handshakeTimer = nil
        state = .ready(h2)
        idleTimeout.idle()
        armKeepalive()
        pool?.connectionReady(self)
    }

    /// A stream is about to be opened on this connection.
    package func streamWillOpen() {
        idleTimeout.busy()
    }

    /// No stream is open after all: the idle time counts from now.
    package func streamsMayBeIdle() {
        if case .ready(let h2) = state, h2.openStreamCount == 0 { idleTimeout.idle() }
    }

    package func closeWhenIdle() {
        closeWhenIdleRequested = true
        // A connection still being set up sees the pool draining when it connects.
        if case .ready(let h2) = state, h2.openStreamCount == 0 { retire(h2) }
    }

    private func retire(_ h2: H2Connection) {
        idleTimeout.cancel()
        state = .retiring(h2)
        pool?.connectionLeftPool(self)
        h2.beginGracefulShutdown()
    }

    /// A connection that received nothing for the keepalive interval gets a PING; one that
    /// received nothing within the timeout after a PING is closed, and its streams fail (the
    /// upstream may have processed them, so they are not retried transparently). The check
    /// runs an interval after the last read, so a connection gone silent is found within
    /// interval + timeout of its last byte (not up to twice the interval).
    private func armKeepalive() {
        guard let pool, let h2 = liveConnection else { return }
        let interval = pool.settings.keepaliveInterval.totalNanoseconds
        let timeout = pool.settings.keepaliveTimeout.totalNanoseconds
        let sinceRead = pool.clock.now() - h2.readStartedAt
        let delay = pingSentAt == 0 ? max(1_000_000, interval - max(0, sinceRead)) : timeout
        keepaliveTimer = pool.eventLoop.assumeIsolatedUnsafeUnchecked().scheduleTask(in: .nanoseconds(delay)) {
            self.keepaliveTimer = nil
            switch self.state {
            case .ready, .retiring: break          // a retiring connection's streams are still worth watching
            case .connecting, .handshaking, .closed: return
            }
            let now = h2.clock.now()          // the pool's clock: the connection was made with it
            if self.pingSentAt != 0 {
                if h2.readStartedAt < self.pingSentAt {
                    self.pool?.logger.warning("upstream connection closed: no answer to PING",
                                              metadata: ["endpoint": "\(self.pool?.endpointName ?? "?")",
                                                         "timeout": "\(self.pool?.settings.keepaliveTimeout ?? .zero)"])
                    h2.terminate(errorCode: H2ErrorCode.noError, reason: "no answer to PING within the keepalive timeout")
                    return
                }
                self.pingSentAt = 0
            } else if now - h2.readStartedAt >= interval {
                self.pingSentAt = now
                h2.sendPing()
            }
            self.armKeepalive()
        }
    }

}

extension UpstreamConnection: H2ConnectionDelegate {
    package func connection(_ connection: H2Connection, didOpen stream: H2Stream) {
        // A client never accepts streams (server push is disabled in our SETTINGS).
    }

    package func connectionReceivedSettings(_ connection: H2Connection) {
        switch state {
        case .handshaking(let h2): handshakeDone(h2)
        case .ready: pool?.connectionHasRoom(self)
        case .connecting, .retiring, .closed: break
        }
    }

    package func connectionReceivedGoAway(_ connection: H2Connection, errorCode: UInt32) {
        guard case .ready(let h2) = state else { return }
        idleTimeout.cancel()
        state = .retiring(h2)
        pool?.connectionLeftPool(self)
    }

    package func connectionStreamClosed(_ connection: H2Connection) {
        guard case .ready(let h2) = state else { return }
        if h2.openStreamCount == 0 {
            if closeWhenIdleRequested {
                retire(h2)
                return
            }
            idleTimeout.idle()
        }
        pool?.connectionHasRoom(self)
    }

    package func connectionClosed(_ connection: H2Connection) {
        idleTimeout.cancel()
        keepaliveTimer?.cancel()
        keepaliveTimer = nil
        let previous = state
        let pool = finish()
        switch previous {
        case .ready:
            pool?.connectionLeftPool(self)
        case .handshaking:
            handshakeTimer?.cancel()
            handshakeTimer = nil
            pool?.connectFailed(self, reason: connection.failureReason ?? "connection closed during the HTTP/2 handshake")
        case .connecting, .retiring, .closed:
            break
        }
    }
}
