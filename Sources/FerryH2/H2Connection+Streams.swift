import Atomics
import CNghttp2
import CNghttp2Memory
import NIOCore

/// The streams' side of the connection: opening one (client) or answering one (server), its
/// body, trailers, reset and flow control. Every submission's return code goes through `check`.
extension H2Connection {
    // MARK: - Streams: opening and responding

    /// Client role: opens a stream with request `headers`. With `endStream` the request has no body.
    /// Returns nil when the connection cannot take a new stream.
    public func openStream(headers: H2Headers, endStream: Bool, delegate: H2StreamDelegate) -> H2Stream? {
        guard role == .client, let session, state == .active, !receivedGoAway else { return nil }
        var provider = nghttp2_data_provider(source: nghttp2_data_source(ptr: nil), read_callback: Nghttp2Callbacks.dataSourceRead)
        let id: Int32 = headers.withNghttp2Headers { nva, count in
            endStream
                ? nghttp2_submit_request(session, nil, nva, count, nil, nil)
                : nghttp2_submit_request(session, nil, nva, count, &provider, nil)
        }
        guard id > 0 else {
            check(id, "nghttp2_submit_request")         // a fatal code ends the connection; any other: no stream
            return nil
        }
        let stream = H2Stream(id: id, connection: self, delegate: delegate)
        stream.sentHeaders = true
        stream.hasDataProvider = !endStream
        if endStream { stream.outboundEnd = .endStream }
        addStream(stream)
        scheduleFlush()
        return stream
    }

    /// Server role: sends response headers on `stream`. With `endStream` there is no body
    /// (for gRPC, a Trailers-Only response).
    public func sendHeaders(_ stream: H2Stream, _ headers: H2Headers, endStream: Bool) {
        guard let session, !stream.isClosed, !stream.sentHeaders else { return }
        var provider = nghttp2_data_provider(source: nghttp2_data_source(ptr: nil), read_callback: Nghttp2Callbacks.dataSourceRead)
        let rv: Int32 = headers.withNghttp2Headers { nva, count in
            endStream
                ? nghttp2_submit_response(session, stream.id, nva, count, nil)
                : nghttp2_submit_response(session, stream.id, nva, count, &provider)
        }
        guard check(rv, "nghttp2_submit_response", stream: stream) else { return }
        stream.sentHeaders = true
        stream.hasDataProvider = !endStream
        if endStream { stream.outboundEnd = .endStream }
        scheduleFlush()
    }

    // MARK: - Streams: body, trailers, reset, flow control

    func sendData(_ stream: H2Stream, _ data: ByteBuffer, endStream: Bool) {
        guard !stream.isClosed, stream.hasDataProvider, case .open = stream.outboundEnd else { return }
        if data.readableBytes > 0 {
            stream.outbound.append(data)
            stream.outboundBytes += data.readableBytes
        }
        if endStream { stream.outboundEnd = .endStream }
        resume(stream)
    }

    func sendEnd(_ stream: H2Stream) {
        guard !stream.isClosed, stream.hasDataProvider, case .open = stream.outboundEnd else { return }
        stream.outboundEnd = .endStream
        resume(stream)
    }

    /// The caller is done with `headers` (a block it received, or whose fields were sent):
    /// its buffers may receive another block.
    public func recycle(_ headers: H2Headers) {
        headerBlocks.give(headers)
    }

    func sendTrailers(_ stream: H2Stream, _ trailers: H2Headers) {
        guard !stream.isClosed, stream.hasDataProvider, case .open = stream.outboundEnd else { return }
        stream.outboundEnd = .trailers(trailers)
        resume(stream)
    }

    func resume(_ stream: H2Stream) {
        guard let session else { return }
        if stream.deferred {
            stream.deferred = false
            check(nghttp2_session_resume_data(session, stream.id), "nghttp2_session_resume_data")
        }
        scheduleFlush()
    }

    func reset(_ stream: H2Stream, code: H2ErrorCode) {
        guard let session, !stream.isClosed else { return }
        // Both sides ended (the peer's END_STREAM is being delivered and ours went out): the
        // stream closes by itself as this callback returns, and a reset would only follow it.
        if stream.inboundPhase == .ended && nghttp2_session_get_stream_local_close(session, stream.id) == 1 { return }
        stream.localResetCode = code
        resetsAskedFor.insert(stream.id)
        check(nghttp2_submit_rst_stream(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), stream.id, code.rawValue), "nghttp2_submit_rst_stream")
        scheduleFlush()
    }

    /// Returns `byteCount` received DATA bytes of `stream` to the peer's stream window. (The
    /// connection window was returned when the bytes arrived: a stream whose reader is slow
    /// holds back only its own window, never the connection's, which other streams share.)
    func consume(_ stream: H2Stream, byteCount: Int) {
        guard let session, byteCount > 0 else { return }
        let n = Swift.min(byteCount, stream.unconsumedInbound)
        guard n > 0 else { return }
        stream.unconsumedInbound -= n
        if !stream.isClosed {
            check(nghttp2_session_consume_stream(session, stream.id, n), "nghttp2_session_consume_stream")
            flushIfWanted()
        }
    }
}
