import NIOCore

/// A FIFO of buffers that keeps its first buffer inline: most streams queue zero or one chunk at
/// a time, and then the queue never allocates (a `CircularBuffer` reserves storage up front).
public struct ByteBufferQueue: Sendable {
    private var first: ByteBuffer?
    private var rest: [ByteBuffer] = []
    private var restStart = 0

    public init() {}

    public var isEmpty: Bool { first == nil }

    public mutating func append(_ buffer: ByteBuffer) {
        if first == nil {
            first = buffer
        } else {
            rest.append(buffer)
        }
    }

    /// Removes and returns the first buffer.
    public mutating func popFirst() -> ByteBuffer? {
        guard let head = first else { return nil }
        if restStart < rest.count {
            first = rest[restStart]
            restStart += 1
            if restStart == rest.count {
                rest.removeAll(keepingCapacity: true)
                restStart = 0
            }
        } else {
            first = nil
        }
        return head
    }

    /// Gives `body` the first buffer to read from or shorten in place.
    public mutating func withFirst<R>(_ body: (inout ByteBuffer) -> R) -> R? {
        guard first != nil else { return nil }
        return body(&first!)
    }

    public mutating func removeAll() {
        first = nil
        rest.removeAll()
        restStart = 0
    }
}
