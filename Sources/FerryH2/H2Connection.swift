import Atomics
import CNghttp2
import CNghttp2Memory
import NIOCore

/// What the owner of a connection hears about the connection as a whole.
public protocol H2ConnectionDelegate: AnyObject {
    /// Server role: the peer opened `stream`; set `stream.delegate` to receive its headers.
    /// Leaving it nil refuses the stream (it is reset with REFUSED_STREAM).
    func connection(_ connection: H2Connection, didOpen stream: H2Stream)
    /// The peer's SETTINGS arrived (the connection is ready, its stream limit is known).
    func connectionReceivedSettings(_ connection: H2Connection)
    /// The peer sent GOAWAY: no new streams on this connection.
    func connectionReceivedGoAway(_ connection: H2Connection, errorCode: UInt32)
    /// A stream ended, so the number of open streams went down.
    func connectionStreamClosed(_ connection: H2Connection)
    /// The connection is gone; every open stream was closed with `.connectionLost` first.
    func connectionClosed(_ connection: H2Connection)
}

public extension H2ConnectionDelegate {
    func connectionReceivedSettings(_ connection: H2Connection) {}
    func connectionReceivedGoAway(_ connection: H2Connection, errorCode: UInt32) {}
    func connectionStreamClosed(_ connection: H2Connection) {}
    func connectionClosed(_ connection: H2Connection) {}
}

/// One HTTP/2 connection: a NIO channel handler that owns one nghttp2 session.
///
/// Everything happens on the channel's event loop. Bytes read are fed to
/// `nghttp2_session_mem_recv`; what nghttp2 wants to send is drained with
/// `nghttp2_session_mem_send` into one buffer per flush. Window updates are manual:
/// received DATA is returned to the peer only when the stream's owner calls `consume`.
public final class H2Connection: ChannelInboundHandler {
    public typealias InboundIn = ByteBuffer
    public typealias OutboundOut = ByteBuffer

    enum State {
        case idle
        case active
        /// A GOAWAY with a final last-stream-id was sent; open streams finish, then we close.
        case draining
        case closed
    }

    public let role: H2Role
    public let settings: H2Settings
    /// `settings.maxHeaderListSize`, and the decoded size past which a block is no longer decoded.
    let headerListLimit: Int
    let headerDecodeCutoff: Int
    public var delegate: H2ConnectionDelegate?

    var session: OpaquePointer?
    var context: ChannelHandlerContext?
    var state = State.idle
    /// The open streams. Changed only through `addStream` and `removeStream`, which keep
    /// `lastLookup` true.
    private(set) var streams: [StreamKey: H2Stream] = [:]
    /// The stream found last: nghttp2's callbacks for one frame (the frame, its data) name
    /// the same stream several times in a row.
    private var lastLookup: H2Stream?
    /// The header block being received. Blocks never interleave (a HEADERS frame and its
    /// CONTINUATIONs arrive back to back), so the connection holds it, not the stream: adding a
    /// field needs no stream lookup.
    var inboundBlock = InboundHeaderBlock()
    /// Where received header blocks come from and go back to (one per event loop when the
    /// owner shares it between its connections).
    public let headerBlocks: HeaderBlockPool

    /// The open stream with `id`, from the one-entry cache when it is the last one looked up.
    func lookupStream(_ id: Int32) -> H2Stream? {
        if let last = lastLookup, last.id == id { return last }
        let found = streams[StreamKey(id)]
        lastLookup = found
        return found
    }

    func addStream(_ stream: H2Stream) {
        streams[StreamKey(stream.id)] = stream
        lastLookup = stream
    }

    func removeStream(_ id: Int32) -> H2Stream? {
        if lastLookup?.id == id { lastLookup = nil }
        return streams.removeValue(forKey: StreamKey(id))
    }

    func removeAllStreams() -> [H2Stream] {
        lastLookup = nil
        defer { streams.removeAll() }
        return Array(streams.values)
    }
    var frameGuard: FrameGuard
    /// Streams the peer closed lately, to answer frames on them as RFC 9113 section 5.1 says.
    var recentlyClosed = RecentlyClosedStreams()
    /// Streams we asked to reset whose RST_STREAM may go out after the stream closed (so it
    /// is not taken for nghttp2's answer to a peer's error): the last few, bounded.
    var resetsAskedFor = RecentStreamIDs(capacity: 32)
    /// Frame headers read ahead of nghttp2, to catch DATA on closed streams.
    var inboundScanner: InboundFrameScanner
    /// Stream errors the peer may still cause before the connection is ended.
    var peerErrorBudget: PeerStreamErrorBudget
    /// Stream errors the peer caused on this connection (for logs and tests).
    public internal(set) var peerStreamErrors = 0
    /// The stream and wire size of the last header block received (HEADERS and CONTINUATIONs).
    var lastHeaderBlock: (streamID: Int32, bytes: Int) = (0, 0)

    private var flushScheduled = false
    private var flushWhenWritable = false
    /// Depth of calls into nghttp2 (mem_recv, mem_send). The session is never deleted inside one.
    var nghttp2Depth = 0
    var teardownPending = false
    /// The buffer currently being fed to mem_recv, so DATA can be sliced out of it without a copy.
    private var currentInput: ByteBuffer?
    private var currentInputBase: UnsafeRawPointer?

    public private(set) var receivedGoAway = false
    public private(set) var receivedRemoteSettings = false
    /// Why the connection failed, if it did (for logs).
    public internal(set) var failure: H2ConnectionFailure?
    /// `failure` as text, for logs and error messages.
    public var failureReason: String? { failure?.description }

    /// Keeps the first reason the connection failed (later ones are consequences).
    func noteFailure(_ failure: H2ConnectionFailure) {
        if self.failure == nil { self.failure = failure }
    }

    public init(role: H2Role, settings: H2Settings = H2Settings(), delegate: H2ConnectionDelegate? = nil,
                headerBlocks: HeaderBlockPool? = nil, clock: MonotonicClock = .system) {
        self.role = role
        self.clock = clock
        self.settings = settings
        self.delegate = delegate
        self.headerBlocks = headerBlocks ?? HeaderBlockPool()
        self.frameGuard = FrameGuard(maxEmptyFrames: settings.maxEmptyFrames, peerOpensOddStreams: role == .server)
        self.headerListLimit = Int(settings.maxHeaderListSize)
        self.headerDecodeCutoff = Int(settings.maxHeaderListSize) * settings.headerDecodeCutoffFactor
        self.inboundScanner = InboundFrameScanner(skipPreface: role == .server)
        self.peerErrorBudget = PeerStreamErrorBudget(burst: settings.peerStreamErrorBurst, perSecond: settings.peerStreamErrorsPerSecond)
        Self.liveObjectCount.wrappingIncrement(ordering: .relaxed)
    }

    deinit {
        deleteSession()
        Self.liveObjectCount.wrappingDecrement(ordering: .relaxed)
    }

    /// nghttp2 sessions created and not yet deleted, in this process (every role, every loop).
    /// A closed connection deletes its session at once, so this follows the open connections.
    public static var liveSessions: Int { liveSessionCount.load(ordering: .relaxed) }
    /// Connection objects not yet deinitialized: above `liveSessions` only while something
    /// still holds a closed connection (it should be let go within a tick of closing).
    public static var liveObjects: Int { liveObjectCount.load(ordering: .relaxed) }
    private static let liveSessionCount = ManagedAtomic<Int>(0)
    private static let liveObjectCount = ManagedAtomic<Int>(0)

    func deleteSession() {
        guard let session = session.take() else { return }
        nghttp2_session_del(session)
        Self.liveSessionCount.wrappingDecrement(ordering: .relaxed)
    }

    // MARK: - Public state

    public var eventLoop: EventLoop? { context?.eventLoop }
    /// When the bytes being processed were read from the socket (monotonic nanoseconds): the
    /// moment a request "arrived", however long the frames before it in the same read took.
    public private(set) var readStartedAt: Int64 = 0
    /// Where `readStartedAt` and the error budget's time come from.
    public let clock: MonotonicClock
    public var isActive: Bool { state == .active }
    public var openStreamCount: Int { streams.count }

    /// How many streams we may have open at once to this peer (its MAX_CONCURRENT_STREAMS;
    /// 100 until its SETTINGS arrive, the value RFC 9113 recommends as a floor).
    public var peerMaxConcurrentStreams: Int {
        guard let session, receivedRemoteSettings else { return 100 }
        return Int(nghttp2_session_get_remote_settings(session, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS))
    }

    /// True when a new stream may be opened now without waiting.
    public var canOpenStream: Bool {
        state == .active && !receivedGoAway && streams.count < peerMaxConcurrentStreams
            && (session.map { nghttp2_session_check_request_allowed($0) != 0 } ?? false)
    }

    // MARK: - Channel events

    public func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        var options: OpaquePointer?
        precondition(nghttp2_option_new(&options) == 0, "nghttp2 options: out of memory")
        defer { nghttp2_option_del(options) }
        nghttp2_option_set_no_auto_window_update(options, 1)
        nghttp2_option_set_no_closed_streams(options, 1)
        nghttp2_option_set_max_continuations(options, settings.maxContinuations)
        nghttp2_option_set_max_outbound_ack(options, settings.maxOutboundAcks)
        nghttp2_option_set_max_settings(options, settings.maxSettingsEntries)
        nghttp2_option_set_stream_reset_rate_limit(options, settings.resetBurst, settings.resetRatePerSecond)
        nghttp2_option_set_peer_max_concurrent_streams(options, 100)
        let userData = Unmanaged.passUnretained(self).toOpaque()
        let rv: Int32
        switch role {
        case .server: rv = nghttp2_session_server_new3(&session, Nghttp2Callbacks.table, userData, options, ferry_nghttp2_memory())
        case .client: rv = nghttp2_session_client_new3(&session, Nghttp2Callbacks.table, userData, options, ferry_nghttp2_memory())
        }
        precondition(rv == 0, "nghttp2 session creation failed: \(rv)")
        Self.liveSessionCount.wrappingIncrement(ordering: .relaxed)
        submitInitialSettings()
        if context.channel.isActive { becomeActive() }
    }

    /// The pipeline let go of this handler (the channel closed, or the handler was removed):
    /// the connection ends if it had not, its session is freed, and the context it held is
    /// released. The context holds the handler, so keeping it would keep both alive for good.
    public func handlerRemoved(context: ChannelHandlerContext) {
        teardown()
        self.context = nil
    }

    public func channelActive(context: ChannelHandlerContext) {
        becomeActive()
        context.fireChannelActive()
    }

    /// Starts the session if the channel is already active. NIO completes a connect future
    /// before it fires `channelActive`, so a client that opens streams from that future calls this.
    public func activateIfChannelActive() {
        if let context, context.channel.isActive { becomeActive() }
    }

    private func becomeActive() {
        guard state == .idle else { return }
        state = .active
        flushNow()
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        guard let session, state == .active || state == .draining else { return }
        readStartedAt = clock.now()
        nghttp2Depth += 1
        let rv = buffer.withUnsafeReadableBytes { bytes -> Int in
            currentInput = buffer
            currentInputBase = bytes.baseAddress
            defer { currentInput = nil; currentInputBase = nil }
            return feed(session, bytes)
        }
        nghttp2Depth -= 1
        if rv < 0 {
            failConnection(libError: Int32(rv))
            return
        }
        if finishTeardownIfPending() { return }
        flushNow()
    }

    public func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable && flushWhenWritable {
            flushWhenWritable = false
            flushNow()
        }
        context.fireChannelWritabilityChanged()
    }

    public func channelInactive(context: ChannelHandlerContext) {
        teardown()
        context.fireChannelInactive()
    }

    public func errorCaught(context: ChannelHandlerContext, error: Error) {
        noteFailure(.channelError("\(error)"))
        context.close(promise: nil)
    }

    // MARK: - Output

    /// Asks for a flush at the end of the current event loop tick (batches many small changes).
    func scheduleFlush() {
        guard !flushScheduled, let context, state != .closed else { return }
        flushScheduled = true
        context.eventLoop.assumeIsolatedUnsafeUnchecked().execute { self.flushNow() }
    }

    /// Asks for a flush only if nghttp2 has something to send.
    func flushIfWanted() {
        if let session, nghttp2_session_want_write(session) != 0 { scheduleFlush() }
    }

    /// Output is written in batches of about this size; between batches the channel's
    /// writability is checked, so a slow reader leaves bytes in nghttp2's queues, not ours.
    static let writeBatchBytes = 256 * 1024

    /// Pulls what nghttp2 wants to send into `out` until it has nothing more or `out` holds
    /// `limit` bytes. Returns nghttp2's error code if it failed.
    func drain(_ session: OpaquePointer, into out: inout ByteBuffer?, upTo limit: Int) -> Int32? {
        while out.map({ $0.readableBytes < limit }) ?? true {
            var chunk: UnsafePointer<UInt8>?
            let n = nghttp2_session_mem_send(session, &chunk)
            if n < 0 { return Int32(n) }
            if n == 0 { return nil }
            if out == nil {
                out = (context?.channel.allocator ?? ByteBufferAllocator()).buffer(capacity: Swift.max(n, 16 * 1024))
            }
            out!.writeRaw(UnsafeRawBufferPointer(start: chunk, count: n))
        }
        return nil
    }

    /// Drains what nghttp2 wants to send and writes it, in batches while the channel is writable.
    public func flushNow() {
        flushScheduled = false
        guard let session, let context, state != .idle, state != .closed else { return }
        guard context.channel.isWritable else {
            flushWhenWritable = true
            return
        }
        nghttp2Depth += 1
        var failed: Int32?
        while failed == nil {
            var out: ByteBuffer?
            failed = drain(session, into: &out, upTo: Self.writeBatchBytes)
            guard let batch = out else { break }
            context.write(wrapOutboundOut(batch), promise: nil)
            if batch.readableBytes < Self.writeBatchBytes { break }   // nghttp2 has nothing more
            if !context.channel.isWritable { flushWhenWritable = true; break }
        }
        nghttp2Depth -= 1
        context.flush()
        if let failed {
            failConnection(libError: failed)
            return
        }
        if finishTeardownIfPending() { return }
        if nghttp2_session_want_read(session) == 0 && nghttp2_session_want_write(session) == 0 {
            closeChannel()
        }
    }

    // MARK: - Settings

    private func submitInitialSettings() {
        var entries: [nghttp2_settings_entry] = [
            nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS.rawValue), value: settings.maxConcurrentStreams),
            nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE.rawValue), value: settings.initialStreamWindow),
            nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_MAX_FRAME_SIZE.rawValue), value: settings.maxFrameSize),
            nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE.rawValue), value: settings.maxHeaderListSize),
        ]
        if role == .client {
            entries.append(nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_ENABLE_PUSH.rawValue), value: 0))
        }
        // Our SETTINGS and window are what the peer is told: without them the connection cannot start.
        guard check(nghttp2_submit_settings(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), &entries, entries.count),
                    "nghttp2_submit_settings"),
              check(nghttp2_session_set_local_window_size(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), 0,
                                                          Int32(settings.connectionWindow)), "nghttp2_session_set_local_window_size")
        else {
            endAfterFatalError()
            return
        }
    }

    // MARK: - Helpers for the inbound side

    /// DATA bytes as a slice of the buffer being parsed (no copy) when they lie inside it.
    func sliceOfCurrentInput(_ bytes: UnsafeRawBufferPointer) -> ByteBuffer {
        if let base = currentInputBase, let input = currentInput, let start = bytes.baseAddress,
           start >= base, start + bytes.count <= base + input.readableBytes,
           let slice = input.getSlice(at: input.readerIndex + (start - base), length: bytes.count) {
            return slice
        }
        var copy = context?.channel.allocator.buffer(capacity: bytes.count) ?? ByteBufferAllocator().buffer(capacity: bytes.count)
        copy.writeRaw(bytes)
        return copy
    }

    /// Client role: the id the next `openStream` uses (replaying a recorded client's ids).
    func setNextStreamID(_ id: Int32) -> Bool {
        guard let session else { return false }
        return nghttp2_session_set_next_stream_id(session, id) == 0
    }

    func receivedRemoteSettingsNow() {
        receivedRemoteSettings = true
        delegate?.connectionReceivedSettings(self)
    }

    func receivedGoAwayNow(errorCode: UInt32) {
        receivedGoAway = true
        delegate?.connectionReceivedGoAway(self, errorCode: errorCode)
    }
}

extension H2Headers {
    /// Calls `body` with an `nghttp2_nv` array pointing into this block (valid only during the call).
    func withNghttp2Headers<R>(_ body: (UnsafePointer<nghttp2_nv>, Int) -> R) -> R {
        withUnsafeTemporaryAllocation(of: nghttp2_nv.self, capacity: Swift.max(count, 1)) { nva in
            withExtendedLifetime(storage) {
                // nghttp2 reads name and value bytes only.
                let base = storage.bytes.assumingMemoryBound(to: UInt8.self)
                let fields = storage.fields
                for i in 0..<storage.fieldCount {
                    let f = fields[i]
                    nva[i] = nghttp2_nv(name: base + Int(f.nameStart), value: base + Int(f.valueStart),
                                        namelen: Int(f.nameLength), valuelen: Int(f.valueLength),
                                        flags: f.neverIndex ? UInt8(NGHTTP2_NV_FLAG_NO_INDEX.rawValue) : 0)
                }
                return body(UnsafePointer(nva.baseAddress!), storage.fieldCount)
            }
        }
    }
}
