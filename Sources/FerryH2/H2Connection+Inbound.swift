import CNghttp2
import NIOCore

/// nghttp2's callbacks, turned into stream and connection events. Called only from inside
/// `nghttp2_session_mem_recv` / `mem_send`, on the connection's event loop.
extension H2Connection {
    /// Hands `bytes` to nghttp2, split only before DATA frames whose stream may have closed
    /// (see `InboundFrameScanner`), which get RFC 9113's STREAM_CLOSED answer. Returns
    /// nghttp2's error, or 0.
    func feed(_ session: OpaquePointer, _ bytes: UnsafeRawBufferPointer) -> Int {
        guard let base = bytes.baseAddress?.assumingMemoryBound(to: UInt8.self) else { return 0 }
        guard role == .server else {
            // An upstream's DATA on a closed stream is left to nghttp2 (ignored): the check is
            // for the streams clients open, where RFC 9113's answer is owed to strangers.
            let rv = nghttp2_session_mem_recv(session, base, bytes.count)
            return rv < 0 ? rv : 0
        }
        let highestAtStart = frameGuard.highestPeerStreamID
        var fed = 0
        var scanFrom = 0
        inboundScanner.beginBuffer()
        while let split = inboundScanner.nextSplit(in: bytes, from: scanFrom, needsCheck: { id in
            id <= highestAtStart && lookupStream(id) == nil
        }) {
            if split.offset > fed {
                let rv = nghttp2_session_mem_recv(session, base + fed, split.offset - fed)
                if rv < 0 { return rv }
                fed = split.offset
            }
            scanFrom = split.resume
            if !dataFrameMayProceed(streamID: split.streamID) {
                return 0       // a connection error was submitted: nothing more is read
            }
        }
        guard fed < bytes.count else { return 0 }
        let rv = nghttp2_session_mem_recv(session, base + fed, bytes.count - fed)
        return rv < 0 ? rv : 0
    }

    func onBeginFrame(type: UInt8, flags: UInt8, streamID: Int32, length: Int) -> Int32 {
        // A stream the peer opened before this frame (a new one has a higher id) that is no
        // longer open may be one it closed.
        let mayBeClosed = type == NG.typeHeaders && streamID > 0 && streamID <= frameGuard.highestPeerStreamID
        if type == NG.typeHeaders {
            lastHeaderBlock = (streamID, length)
        } else if type == NG.typeContinuation {
            lastHeaderBlock.bytes += length
        }
        switch frameGuard.check(type: type, flags: flags, streamID: streamID, length: length) {
        case .accept:
            break
        case .protocolError(let why):
            return reject(why, code: H2ErrorCode.protocolError)
        case .flood(let why):
            return reject(why, code: H2ErrorCode.enhanceYourCalm)
        }
        if mayBeClosed && lookupStream(streamID) == nil {
            return onFrameForUnknownStream(type: type, streamID: streamID)
        }
        return NG.ok
    }

    /// A DATA frame is about to be read for a stream not known to be open (nghttp2 would drop
    /// it silently). False when the connection is ended for it.
    func dataFrameMayProceed(streamID: Int32) -> Bool {
        guard lookupStream(streamID) == nil else { return true }
        return onFrameForUnknownStream(type: NG.typeData, streamID: streamID) == NG.ok
    }

    /// DATA or HEADERS for a stream that is not open: a new stream (HEADERS), or one that has
    /// closed. RFC 9113 section 5.1: after the peer's END_STREAM that is a connection error
    /// STREAM_CLOSED, after the peer's RST_STREAM a stream error STREAM_CLOSED. A stream we
    /// reset ourselves may still see the peer's frames in flight: those are ignored.
    private func onFrameForUnknownStream(type: UInt8, streamID: Int32) -> Int32 {
        switch recentlyClosed.howClosed(streamID) {
        case nil:
            return NG.ok
        case .peerEnded:
            let kind = type == NG.typeData ? "DATA" : "HEADERS"
            return reject("\(kind) on stream \(streamID) after the peer ended it", code: H2ErrorCode.streamClosed)
        case .peerReset:
            // nghttp2 ignores the frame (and counts ignored DATA as consumed); the reset is ours.
            if let session {
                check(nghttp2_submit_rst_stream(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), streamID, H2ErrorCode.streamClosed.rawValue),
                      "nghttp2_submit_rst_stream")
            }
            return NG.ok
        }
    }

    /// The peer caused a stream error on `streamID` (counted when its reset or 431 is sent).
    /// It costs one token, plus, for a reset, one per 256 bytes of the stream's header block when
    /// that block was the last received (the work it took: HPACK decodes all of a malformed
    /// block). A 431's block was decoded only up to the cutoff, so it costs one. Past the budget the connection ends with GOAWAY
    /// ENHANCE_YOUR_CALM.
    func peerCausedStreamError(_ what: String, streamID: Int32, weighByHeaderBlock: Bool = true) {
        peerStreamErrors += 1
        guard state == .active || state == .draining, let session else { return }
        let cost = 1 + (weighByHeaderBlock && lastHeaderBlock.streamID == streamID ? lastHeaderBlock.bytes / 256 : 0)
        if !peerErrorBudget.spend(cost, at: clock.now()) {
            noteFailure(.sentGoAway(.enhanceYourCalm,
                                    detail: "too many stream errors caused by the peer (\(peerStreamErrors), the last: \(what))"))
            check(nghttp2_session_terminate_session(session, H2ErrorCode.enhanceYourCalm.rawValue), "nghttp2_session_terminate_session")
            scheduleFlush()
        }
    }

    private func reject(_ why: String, code: H2ErrorCode) -> Int32 {
        noteFailure(.sentGoAway(code, detail: why))
        if let session { check(nghttp2_session_terminate_session(session, code.rawValue), "nghttp2_session_terminate_session") }
        return NG.callbackFailure
    }

    func onBeginHeaders(streamID: Int32, category: nghttp2_headers_category) -> Int32 {
        if role == .server && category == NGHTTP2_HCAT_REQUEST {
            let stream = H2Stream(id: streamID, connection: self, delegate: nil)
            addStream(stream)
            delegate?.connection(self, didOpen: stream)
            if stream.delegate == nil, let session {
                stream.localResetCode = H2ErrorCode.refusedStream
                check(nghttp2_submit_rst_stream(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), streamID, H2ErrorCode.refusedStream.rawValue),
                      "nghttp2_submit_rst_stream")
            }
        }
        if let abandoned = inboundBlock.end() { headerBlocks.give(abandoned.headers) }
        guard lookupStream(streamID) != nil else { return NG.ok }
        inboundBlock.begin(streamID: streamID, headers: headerBlocks.take())
        return NG.ok
    }

    func onHeader(streamID: Int32, name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer, neverIndex: Bool) -> Int32 {
        guard inboundBlock.streamID == streamID else { return NG.ok }
        if !inboundBlock.add(name: name, value: value, neverIndex: neverIndex, limit: headerListLimit,
                             cutoff: headerDecodeCutoff) {
            // Far over the limit we advertised: no client that honours SETTINGS sends this, and
            // the rest of the block would still have to be decoded (an HPACK bomb decodes to
            // megabytes). The connection ends here, as haproxy ends it.
            if let abandoned = inboundBlock.end() { headerBlocks.give(abandoned.headers) }
            return reject("a header block over \(headerDecodeCutoff) bytes decoded on stream \(streamID)",
                          code: H2ErrorCode.enhanceYourCalm)
        }
        return NG.ok
    }

    func onFrameRecv(_ frame: UnsafePointer<nghttp2_frame>) -> Int32 {
        let hd = frame.pointee.hd
        switch hd.type {
        case NG.typeData:
            if hd.flags & NG.flagEndStream != 0, let stream = lookupStream(hd.stream_id) {
                stream.inboundPhase = .ended
                stream.delegate?.streamReceivedEnd(stream)
            }
        case NG.typeHeaders:
            if let stream = lookupStream(hd.stream_id) {
                headerBlockComplete(stream, endStream: hd.flags & NG.flagEndStream != 0)
            }
        case NG.typeRstStream:
            lookupStream(hd.stream_id)?.peerResetCode = H2ErrorCode(frame.pointee.rst_stream.error_code)
        case NG.typeSettings:
            if hd.flags & NG.flagAck == 0 {
                receivedRemoteSettingsNow()
            }
        case NG.typeGoAway:
            let last = frame.pointee.goaway.last_stream_id
            for (key, stream) in streams where key.id > last && (key.id % 2 == 1) == (role == .client) {
                stream.refusedByGoAway = true
            }
            receivedGoAwayNow(errorCode: frame.pointee.goaway.error_code)
        default:
            break
        }
        return NG.ok
    }

    /// Hands the completed block to the stream's delegate, which owns it from then on (and
    /// gives it back to `headerBlocks` when done); a block nobody receives goes back at once.
    private func headerBlockComplete(_ stream: H2Stream, endStream: Bool) {
        guard inboundBlock.streamID == stream.id, let (headers, tooLarge) = inboundBlock.end() else { return }
        if tooLarge {
            headerBlocks.give(headers)
            rejectOversizedHeaders(stream)
            return
        }
        switch stream.inboundPhase {
        case .awaitingHeaders:
            if role == .client && headers.value(of: ":status", hasPrefix: "1") {
                headerBlocks.give(headers)
                return // informational (1xx); the final response follows
            }
            stream.inboundPhase = endStream ? .ended : .body
            stream.delegate?.streamReceivedHeaders(stream, headers: headers, endStream: endStream)
        case .body:
            stream.inboundPhase = .ended
            stream.delegate?.streamReceivedTrailers(stream, trailers: headers)
        case .ended:
            headerBlocks.give(headers)
        }
    }

    /// A header list over SETTINGS_MAX_HEADER_LIST_SIZE: a server answers 431 (RFC 9113
    /// section 10.5.1); a client resets the stream. Nothing of the block was kept.
    private func rejectOversizedHeaders(_ stream: H2Stream) {
        let delegate = stream.delegate.take()
        peerCausedStreamError("header list over \(settings.maxHeaderListSize) bytes", streamID: stream.id, weighByHeaderBlock: false)
        if role == .server && stream.inboundPhase == .awaitingHeaders {
            stream.inboundPhase = .ended
            sendHeaders(stream, H2Headers([(":status", "431"), ("content-length", "0")]), endStream: true)
            delegate?.streamClosed(stream, error: .resetLocally(H2ErrorCode.refusedStream))
        } else {
            reset(stream, code: H2ErrorCode.protocolError)
            delegate?.streamClosed(stream, error: .resetLocally(H2ErrorCode.protocolError))
        }
    }

    func onDataChunk(streamID: Int32, bytes: UnsafeRawBufferPointer) -> Int32 {
        guard let stream = lookupStream(streamID), let delegate = stream.delegate else {
            // Nobody will take these bytes: hand the window back at once.
            if let session { check(nghttp2_session_consume(session, streamID, bytes.count), "nghttp2_session_consume") }
            return NG.ok
        }
        // The connection window goes back at once; the stream's when the bytes are taken.
        if let session { check(nghttp2_session_consume_connection(session, bytes.count), "nghttp2_session_consume_connection") }
        stream.unconsumedInbound += bytes.count
        delegate.streamReceivedData(stream, data: sliceOfCurrentInput(bytes))
        return NG.ok
    }

    func onStreamClose(streamID: Int32, errorCode: H2ErrorCode) -> Int32 {
        guard let stream = removeStream(streamID) else { return NG.ok }
        stream.isClosed = true
        stream.unconsumedInbound = 0          // the connection window had them back on arrival
        if role == .server {
            if stream.inboundPhase == .ended {
                recentlyClosed.record(streamID, .peerEnded)
            } else if stream.peerResetCode != nil {
                recentlyClosed.record(streamID, .peerReset)
            }
        }
        stream.outbound.removeAll()
        stream.outboundBytes = 0
        let error: H2StreamError?
        if stream.refusedByGoAway {
            error = .refusedByGoAway
        } else if let code = stream.peerResetCode {
            error = .resetByPeer(code)
        } else if let code = stream.localResetCode {
            error = .resetLocally(code)
        } else if errorCode != H2ErrorCode.noError {
            error = .resetLocally(errorCode)
        } else {
            error = nil
        }
        let delegate = stream.delegate.take()
        delegate?.streamClosed(stream, error: error)
        self.delegate?.connectionStreamClosed(self)
        return NG.ok
    }

    /// We sent RST_STREAM. One the stream's owner did not ask for was nghttp2's answer to a
    /// protocol error of the peer's on that stream (or ours to a frame on a closed stream).
    func sentReset(streamID: Int32, errorCode: H2ErrorCode) {
        if let stream = lookupStream(streamID), stream.localResetCode != nil { return }
        if resetsAskedFor.remove(streamID) { return }      // ours, sent after the stream closed
        peerCausedStreamError("RST_STREAM \(errorCode.name) on stream \(streamID)", streamID: streamID)
    }

    /// A GOAWAY with an error code left: nghttp2's debug data says why (it may end a
    /// connection by itself, inside mem_recv, without returning an error).
    func sentGoAway(errorCode: H2ErrorCode, debug: String) {
        guard errorCode != H2ErrorCode.noError else { return }
        noteFailure(.sentGoAway(errorCode, detail: debug))
    }

    func noteProtocolError(_ message: String) {
        noteFailure(.peerProtocolError(message))
    }

    func onFrameNotSend(_ frame: UnsafePointer<nghttp2_frame>) -> Int32 {
        // A request HEADERS that never left (GOAWAY arrived first): nghttp2 closes the stream
        // next; it was never seen by the peer, so it is safe to send again elsewhere.
        if frame.pointee.hd.type == NG.typeHeaders, let stream = lookupStream(frame.pointee.hd.stream_id) {
            stream.refusedByGoAway = true
        }
        return NG.ok
    }

    /// Fills one DATA frame's payload from the stream's queue; defers when the queue is empty.
    func readOutbound(streamID: Int32, into buffer: UnsafeMutablePointer<UInt8>, length: Int,
                      flags: UnsafeMutablePointer<UInt32>) -> Int {
        guard let stream = lookupStream(streamID) else { return Int(NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE.rawValue) }
        var written = 0
        while written < length, !stream.outbound.isEmpty {
            let room = length - written
            let emptied = stream.outbound.withFirst { first -> Bool in
                let n = Swift.min(first.readableBytes, room)
                first.withUnsafeReadableBytes { bytes in
                    (buffer + written).update(from: bytes.baseAddress!.assumingMemoryBound(to: UInt8.self), count: n)
                }
                first.moveReaderIndex(forwardBy: n)
                written += n
                return first.readableBytes == 0
            } ?? false
            if emptied { _ = stream.outbound.popFirst() }
        }
        stream.outboundBytes -= written
        if stream.outbound.isEmpty {
            switch stream.outboundEnd {
            case .open:
                if written == 0 {
                    stream.deferred = true
                    return NG.deferred
                }
            case .endStream:
                flags.pointee |= NG.dataFlagEOF
            case .trailers(let trailers):
                flags.pointee |= NG.dataFlagEOF | NG.dataFlagNoEndStream
                let rv = session.map { session in
                    trailers.withNghttp2Headers { nva, count in nghttp2_submit_trailer(session, streamID, nva, count) }
                } ?? NG.callbackFailure
                stream.outboundEnd = .endStream        // nghttp2 copied the fields: the block is free
                headerBlocks.give(trailers)
                if rv != 0 {
                    // The trailers cannot follow: nghttp2 resets the stream (INTERNAL_ERROR)
                    // when this callback fails, so the peer does not wait for them.
                    stream.localResetCode = H2ErrorCode.internalError
                    resetsAskedFor.insert(streamID)
                    if nghttp2_is_fatal(rv) != 0 { check(rv, "nghttp2_submit_trailer") }
                    return Int(NG.temporalCallbackFailure)
                }
            }
        }
        if written > 0 { stream.delegate?.streamSentData(stream, byteCount: written) }
        return written
    }
}

/// The header block being received, with its size counted as RFC 9113 counts a header list.
/// Over the limit, the fields are dropped (the block is then refused as a whole).
///
/// It lives in place on the connection (not as an optional that each field would copy out
/// and back, retaining and releasing its buffers): the stream id says whether a block is open.
struct InboundHeaderBlock {
    /// The stream whose block is being received; 0 when none is.
    private(set) var streamID: Int32 = 0
    private var headers: H2Headers?
    /// The block's size so far as RFC 9113 counts it (names, values, 32 bytes per field).
    private var listSize = 0
    private var tooLarge = false

    mutating func begin(streamID: Int32, headers: H2Headers) {
        self.streamID = streamID
        self.headers = headers
        listSize = 0
        tooLarge = false
    }

    /// The completed block, and whether it was over the limit; nil when no block was open.
    mutating func end() -> (headers: H2Headers, tooLarge: Bool)? {
        streamID = 0
        guard let headers = headers.take() else { return nil }
        return (headers, tooLarge)
    }

    /// Adds a field; past `limit` the block is only counted. False once it is past `cutoff`
    /// (decoding should stop).
    mutating func add(name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer, neverIndex: Bool,
                      limit: Int, cutoff: Int) -> Bool {
        listSize += name.count + value.count + 32
        if listSize > limit {
            if !tooLarge {
                tooLarge = true
                headers?.removeAll()
            }
            return listSize <= cutoff
        }
        headers?.append(name: name, value: value, neverIndex: neverIndex)
        return true
    }
}
