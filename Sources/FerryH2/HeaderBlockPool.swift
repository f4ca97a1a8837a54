/// Header blocks whose buffers can be filled again, shared by the connections of one event
/// loop and touched only on it.
///
/// A received block goes to whoever handles it, and the owner gives it back when it is done
/// with it: after its fields went to nghttp2 (which copies them when a frame is submitted), or
/// when a call no longer needs its request headers. Taking a block empties it. If a copy of it
/// is still held somewhere, emptying gives the taker new buffers (copy on write), so giving a
/// block back too early is never wrong, only no saving.
public final class HeaderBlockPool {
    /// Blocks kept at most; the rest are freed. One read can bring the requests of many
    /// streams at once (and one flush give back as many), so the pool must cover a batch: with
    /// 32 it was empty for a third of the takes at 100 streams in flight, with 128 it is not.
    /// At most 128 x (2 KiB + the field table) stay held per loop after a burst.
    public static let maxBlocks = 128
    /// A block grown beyond this (a large header list) is freed, not kept.
    public static let maxBlockCapacity = 2048
    /// Capacity of a new block: a gRPC request's headers fit.
    static let newBlockCapacity = 512

    private var blocks: [H2Headers] = []

    public init() {}

    public var count: Int { blocks.count }

    /// An empty block, with the buffers of one given back when there is one.
    func take() -> H2Headers {
        guard var block = blocks.popLast() else { return H2Headers(capacity: Self.newBlockCapacity) }
        block.removeAll()
        return block
    }

    /// The caller is done with `headers`; their buffers may be reused.
    public func give(_ headers: H2Headers) {
        guard blocks.count < Self.maxBlocks, headers.capacity <= Self.maxBlockCapacity else { return }
        if blocks.capacity == 0 { blocks.reserveCapacity(Self.maxBlocks) }
        blocks.append(headers)
    }
}
