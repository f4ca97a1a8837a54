import CNghttp2

/// The C entry points nghttp2 calls. Each one turns `user_data` back into the `H2Connection`
/// (passed unretained: the connection owns the session and outlives it) and forwards.
enum Nghttp2Callbacks {
    /// One callbacks table for every session; nghttp2 copies it at session creation.
    nonisolated(unsafe) static let table: OpaquePointer = {
        var callbacks: OpaquePointer?
        precondition(nghttp2_session_callbacks_new(&callbacks) == 0, "nghttp2_session_callbacks_new failed")
        nghttp2_session_callbacks_set_on_begin_frame_callback(callbacks, onBeginFrame)
        nghttp2_session_callbacks_set_on_begin_headers_callback(callbacks, onBeginHeaders)
        nghttp2_session_callbacks_set_on_header_callback(callbacks, onHeader)
        nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, onFrameRecv)
        nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, onDataChunkRecv)
        nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, onStreamClose)
        nghttp2_session_callbacks_set_on_frame_not_send_callback(callbacks, onFrameNotSend)
        nghttp2_session_callbacks_set_error_callback2(callbacks, onError)
        nghttp2_session_callbacks_set_on_frame_send_callback(callbacks, onFrameSend)
        return callbacks!
    }()

    /// The read callback of every data provider Ferry submits.
    static let dataSourceRead: nghttp2_data_source_read_callback = { _, streamID, buf, length, flags, _, userData in
        H2Connection.with(userData) { $0.readOutbound(streamID: streamID, into: buf!, length: length, flags: flags!) }
    }

    private static let onBeginFrame: nghttp2_on_begin_frame_callback = { _, hd, userData in
        let hd = hd!.pointee
        return H2Connection.with(userData) { $0.onBeginFrame(type: hd.type, flags: hd.flags, streamID: hd.stream_id, length: hd.length) }
    }

    private static let onBeginHeaders: nghttp2_on_begin_headers_callback = { _, frame, userData in
        let frame = frame!
        return H2Connection.with(userData) { $0.onBeginHeaders(streamID: frame.pointee.hd.stream_id, category: frame.pointee.headers.cat) }
    }

    private static let onHeader: nghttp2_on_header_callback = { _, frame, name, nameLength, value, valueLength, flags, userData in
        H2Connection.with(userData) { $0.onHeader(
            streamID: frame!.pointee.hd.stream_id,
            name: UnsafeRawBufferPointer(start: name, count: nameLength),
            value: UnsafeRawBufferPointer(start: value, count: valueLength),
            neverIndex: flags & UInt8(NGHTTP2_NV_FLAG_NO_INDEX.rawValue) != 0) }
    }

    private static let onFrameRecv: nghttp2_on_frame_recv_callback = { _, frame, userData in
        H2Connection.with(userData) { $0.onFrameRecv(frame!) }
    }

    private static let onDataChunkRecv: nghttp2_on_data_chunk_recv_callback = { _, _, streamID, data, length, userData in
        H2Connection.with(userData) { $0.onDataChunk(streamID: streamID, bytes: UnsafeRawBufferPointer(start: data, count: length)) }
    }

    private static let onStreamClose: nghttp2_on_stream_close_callback = { _, streamID, errorCode, userData in
        H2Connection.with(userData) { $0.onStreamClose(streamID: streamID, errorCode: H2ErrorCode(errorCode)) }
    }

    /// nghttp2's own account of what went wrong (e.g. "DATA: flow control window exceeded"),
    /// kept as the connection's failure reason when nghttp2 ends the connection by itself.
    private static let onError: nghttp2_error_callback2 = { _, _, message, length, userData in
        let text = message.map { String(decoding: UnsafeRawBufferPointer(start: $0, count: length), as: UTF8.self) } ?? ""
        H2Connection.with(userData) { $0.noteProtocolError(text) }
        return 0
    }

    private static let onFrameSend: nghttp2_on_frame_send_callback = { _, frame, userData in
        guard let frame else { return 0 }
        if frame.pointee.hd.type == NG.typeRstStream {
            H2Connection.with(userData) { $0.sentReset(streamID: frame.pointee.hd.stream_id, errorCode: H2ErrorCode(frame.pointee.rst_stream.error_code)) }
            return 0
        }
        guard frame.pointee.hd.type == NG.typeGoAway else { return 0 }
        let goaway = frame.pointee.goaway
        let debug = goaway.opaque_data.map { String(decoding: UnsafeRawBufferPointer(start: $0, count: goaway.opaque_data_len), as: UTF8.self) } ?? ""
        H2Connection.with(userData) { $0.sentGoAway(errorCode: H2ErrorCode(goaway.error_code), debug: debug) }
        return 0
    }

    private static let onFrameNotSend: nghttp2_on_frame_not_send_callback = { _, frame, _, userData in
        H2Connection.with(userData) { $0.onFrameNotSend(frame!) }
    }
}

extension H2Connection {
    /// Calls `body` with the connection behind `userData`, without retaining it: nghttp2 calls
    /// back only from inside the connection's own calls into the session, so it is alive.
    @inline(__always)
    static func with<R>(_ userData: UnsafeMutableRawPointer?, _ body: (H2Connection) -> R) -> R {
        Unmanaged<H2Connection>.fromOpaque(userData!)._withUnsafeGuaranteedRef(body)
    }
}

/// nghttp2's integer constants, typed the way the callbacks need them.
enum NG {
    static let ok: Int32 = 0
    static let callbackFailure: Int32 = NGHTTP2_ERR_CALLBACK_FAILURE.rawValue
    static let temporalCallbackFailure: Int32 = NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE.rawValue
    static let deferred = Int(NGHTTP2_ERR_DEFERRED.rawValue)
    static let flagEndStream = UInt8(NGHTTP2_FLAG_END_STREAM.rawValue)
    static let flagAck = UInt8(NGHTTP2_FLAG_ACK.rawValue)
    static let dataFlagEOF = UInt32(NGHTTP2_DATA_FLAG_EOF.rawValue)
    static let dataFlagNoEndStream = UInt32(NGHTTP2_DATA_FLAG_NO_END_STREAM.rawValue)
    static let typeData = UInt8(NGHTTP2_DATA.rawValue)
    static let typeHeaders = UInt8(NGHTTP2_HEADERS.rawValue)
    static let typeContinuation = UInt8(NGHTTP2_CONTINUATION.rawValue)
    static let typeRstStream = UInt8(NGHTTP2_RST_STREAM.rawValue)
    static let typeSettings = UInt8(NGHTTP2_SETTINGS.rawValue)
    static let typeGoAway = UInt8(NGHTTP2_GOAWAY.rawValue)
    static let typePing = UInt8(NGHTTP2_PING.rawValue)
}
