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
    public var maxConcurrentStreams: UInt32 = 1024
    /// SETTINGS_INITIAL_WINDOW_SIZE: how many bytes a peer may send on one stream before we consume.
    public var initialStreamWindow: UInt32 = 256 * 1024
    /// The connection-level receive window.
    public var connectionWindow: UInt32 = 1024 * 1024
    /// SETTINGS_MAX_FRAME_SIZE we accept.
    public var maxFrameSize: UInt32 = 16_384
    /// SETTINGS_MAX_HEADER_LIST_SIZE advertised and enforced on every inbound header block
    /// (names plus values plus 32 bytes per field, as RFC 9113 counts it).
    public var maxHeaderListSize: UInt32 = 64 * 1024
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
