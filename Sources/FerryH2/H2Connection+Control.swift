import Atomics
import CNghttp2
import CNghttp2Memory
import NIOCore

/// Connection control: PING, the two-step graceful shutdown, termination on our side or after a
/// fatal error, and the teardown that deletes the session once no nghttp2 call is running.
extension H2Connection {
    // MARK: - Connection control

    /// Sends a PING; any bytes the peer sends afterwards (its ACK included) advance
    /// `readStartedAt`, which is how a keepalive sees the connection is alive.
    public func sendPing() {
        guard let session, state == .active || state == .draining else { return }
        guard nghttp2_submit_ping(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), nil) == 0 else { return }
        scheduleFlush()
    }

    /// Graceful shutdown, two steps (RFC 9113 section 6.8): a GOAWAY announcing shutdown (server
    /// role), then after `gracePeriod` a GOAWAY naming the last stream processed. Streams in
    /// flight finish; the connection closes when none are left.
    public func beginGracefulShutdown(gracePeriod: TimeAmount = .milliseconds(500)) {
        guard let session, let context, state == .active else { return }
        if role == .server {
            check(nghttp2_submit_shutdown_notice(session), "nghttp2_submit_shutdown_notice")
            flushNow()
            context.eventLoop.assumeIsolatedUnsafeUnchecked().scheduleTask(in: gracePeriod) { self.sendFinalGoAway() }
        } else {
            sendFinalGoAway()
        }
    }

    func sendFinalGoAway() {
        guard let session, state == .active else { return }
        state = .draining
        check(nghttp2_submit_goaway(session, UInt8(NGHTTP2_FLAG_NONE.rawValue),
                                    nghttp2_session_get_last_proc_stream_id(session), H2ErrorCode.noError.rawValue, nil, 0),
              "nghttp2_submit_goaway")
        flushNow()
    }

    /// Closes at once: GOAWAY with `errorCode`, then the socket; open streams get `.connectionLost`.
    public func terminate(errorCode: H2ErrorCode = .noError, reason: String) {
        guard let session, state != .closed else { return }
        noteFailure(.closedByUs(errorCode, reason: reason))
        check(nghttp2_session_terminate_session(session, errorCode.rawValue), "nghttp2_session_terminate_session")
        flushNow()
        closeChannel()
    }

    func failConnection(libError: Int32) {
        let message = String(cString: nghttp2_strerror(libError))
        noteFailure(libError == NGHTTP2_ERR_FLOODED.rawValue ? .sentGoAway(.enhanceYourCalm, detail: "nghttp2: \(message)")
                                                             : .peerProtocolError(message))
        if let session, state != .closed {
            let code = libError == NGHTTP2_ERR_FLOODED.rawValue ? H2ErrorCode.enhanceYourCalm : H2ErrorCode.protocolError
            _ = nghttp2_session_terminate_session(session, code.rawValue)     // ending already: nothing more to do if it fails
            // Send what is queued (our SETTINGS and the GOAWAY) before closing, writable or not.
            var out: ByteBuffer?
            nghttp2Depth += 1
            _ = drain(session, into: &out, upTo: .max)
            nghttp2Depth -= 1
            if let out, let context { context.writeAndFlush(wrapOutboundOut(out), promise: nil) }
        }
        closeChannel()
        finishTeardownIfPending()
    }

    /// nghttp2 failed fatally (its session is unusable): close without calling into it again.
    func endAfterFatalError() {
        closeChannel()
        finishTeardownIfPending()
    }

    func closeChannel() {
        guard let context, state != .closed else { return }
        context.close(promise: nil)
    }

    /// The channel is gone: every open stream and the delegate hear it once, and the session
    /// is freed. Inside a call into nghttp2 (a callback closed the channel) this waits until
    /// the call returns; whoever decrements `nghttp2Depth` finishes it.
    func teardown() {
        guard state != .closed else { return }
        state = .closed
        if nghttp2Depth > 0 {
            teardownPending = true
            return
        }
        finishTeardown()
    }

    /// Finishes a teardown deferred by `teardown()`, if one is and no nghttp2 call is under
    /// way. Returns true when the connection is closed (nothing more to do with it).
    @discardableResult
    func finishTeardownIfPending() -> Bool {
        if teardownPending && nghttp2Depth == 0 { finishTeardown() }
        return state == .closed
    }

    func finishTeardown() {
        teardownPending = false
        inboundBlock.end().map { headerBlocks.give($0.headers) }
        let open = removeAllStreams().sorted { $0.id < $1.id }
        for stream in open {
            stream.isClosed = true
            let delegate = stream.delegate.take()
            delegate?.streamClosed(stream, error: .connectionLost)
        }
        let delegate = self.delegate
        self.delegate = nil
        delegate?.connectionClosed(self)
        deleteSession()
    }
}
