import NIOCore

/// The request body already sent upstream, kept so the request can be sent again while that is
/// safe: until the response starts (the call commits) and only while the body fits `cap`.
/// Chunks are slices of the buffers they arrived in (no copy); a one-chunk body, the common
/// gRPC unary case, needs no allocation at all.
struct ReplayBuffer {
    static let defaultCap = 64 * 1024

    let cap: Int
    private var first: ByteBuffer?
    private var rest: [ByteBuffer] = []
    private(set) var byteCount = 0
    /// The body grew past `cap`: the request can no longer be replayed.
    private(set) var overflowed = false

    init(cap: Int = ReplayBuffer.defaultCap) {
        self.cap = cap
    }

    var canReplay: Bool { !overflowed }

    mutating func record(_ chunk: ByteBuffer) {
        guard !overflowed, chunk.readableBytes > 0 else { return }
        guard byteCount + chunk.readableBytes <= cap else {
            overflowed = true
            first = nil
            rest = []
            return
        }
        byteCount += chunk.readableBytes
        if first == nil { first = chunk } else { rest.append(chunk) }
    }

    /// The recorded chunks, in order.
    var chunks: [ByteBuffer] {
        guard let first else { return [] }
        return [first] + rest
    }
}
