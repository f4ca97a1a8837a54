/// Which end of a connection this process plays.
public enum H2Role: Sendable {
    /// Accepts streams opened by the peer (Ferry's downstream side).
    case server
    /// Opens streams to the peer (Ferry's upstream side).
    case client
}

/// Limits and windows for one HTTP/2 connection. Every value is explicit: nghttp2's own
/// defaults (unlimited concurrent streams, no header list limit) are not safe for a proxy.
public struct H2Settings: Sendable, Equatable {
    /// SETTINGS_MAX_CONCURRENT_STREAMS we advertise (server) or accept being opened by the peer.
    /// 100, as nghttpx and haproxy advertise: one client connection can then hold only a
    /// share of what the upstream pools can carry, however many streams it would like.
    public var maxConcurrentStreams: UInt32 = 100
    /// SETTINGS_INITIAL_WINDOW_SIZE: how many bytes a peer may send on one stream before we consume.
    public var initialStreamWindow: UInt32 = 256 * 1024
    /// The connection-level receive window.
    public var connectionWindow: UInt32 = 1024 * 1024
    /// SETTINGS_MAX_FRAME_SIZE we accept.
    public var maxFrameSize: UInt32 = 16_384
    /// SETTINGS_MAX_HEADER_LIST_SIZE advertised and enforced on every inbound header block
    /// (names plus values plus 32 bytes per field, as RFC 9113 counts it).
    public var maxHeaderListSize: UInt32 = 64 * 1024
    /// A header block over the limit is still decoded (HPACK needs it) and answered 431 while
    /// its decoded size stays within this many times the limit; past that the connection ends
    /// with GOAWAY ENHANCE_YOUR_CALM (an HPACK bomb decodes to megabytes).
    public var headerDecodeCutoffFactor: Int = 2
    /// Stream errors the peer may cause (resets for its protocol errors, 431s, frames on
    /// closed streams): a burst, then this many per second; past it the connection ends
    /// with GOAWAY ENHANCE_YOUR_CALM.
    public var peerStreamErrorBurst: Int = 100
    public var peerStreamErrorsPerSecond: Int = 10
    /// RST_STREAM frames a peer may send: a burst, then this many per second (rapid reset).
    public var resetBurst: UInt64 = 1000
    public var resetRatePerSecond: UInt64 = 33
    /// CONTINUATION frames allowed after one HEADERS frame.
    public var maxContinuations: Int = 8
    /// PING and SETTINGS ACKs we may have queued before the peer is cut off.
    public var maxOutboundAcks: Int = 1000
    /// Entries in one SETTINGS frame.
    public var maxSettingsEntries: Int = 32
    /// Empty DATA frames (no END_STREAM) and empty HEADERS/CONTINUATION a peer may send per
    /// connection before it is treated as a flood (nghttp2 1.52 does not count these).
    public var maxEmptyFrames: Int = 1000

    public init() {}
}
