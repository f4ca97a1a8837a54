/// A min-heap of deadlines for one event loop: O(log n) to add and to take the earliest, O(1)
/// to cancel. Cancelling only counts; a cancelled entry stays until it reaches the top (where
/// the owner recognises it as stale) or until a compaction drops it, which runs when more than
/// half the entries are stale, so memory stays within twice the live deadlines, and when all
/// are, so nothing is kept once no deadline is live.
///
/// Each entry carries an id; the owner keeps the id of its live entry and treats any other id
/// as cancelled. (NIO's own scheduler cancels by a linear search of its heap, which at a few
/// thousand calls in flight with deadlines costs more than the rest of the call.)
public struct DeadlineQueue<Item> {
    public struct Entry {
        public let expiresAt: Int64
        public let id: UInt64
        public let item: Item

        @inlinable
        init(expiresAt: Int64, id: UInt64, item: Item) {
            self.expiresAt = expiresAt
            self.id = id
            self.item = item
        }
    }

    // Inlinable so that the event loop's use (Item = ProxyCall) is specialized: unspecialized
    // generic heap operations cost several times more.
    @usableFromInline var heap: [Entry] = []
    @usableFromInline var nextID: UInt64 = 1
    @usableFromInline var stale = 0

    @inlinable
    public init() {}

    @inlinable
    public var count: Int { heap.count }
    @inlinable
    public var staleCount: Int { stale }
    @inlinable
    public var earliest: Int64? { heap.first?.expiresAt }

    /// Adds a deadline; returns its id (never 0, so 0 can mean "none").
    @inlinable
    public mutating func add(_ item: Item, expiresAt: Int64) -> UInt64 {
        let id = nextID
        nextID &+= 1
        heap.append(Entry(expiresAt: expiresAt, id: id, item: item))
        siftUp(heap.count - 1)
        return id
    }

    /// Notes that one entry is no longer wanted; `compactIfWorthIt` may then drop it.
    @inlinable
    public mutating func cancelOne() {
        stale += 1
    }

    /// Removes and returns the earliest entry if it expires at or before `now`.
    @inlinable
    public mutating func popExpired(now: Int64) -> Entry? {
        guard let first = heap.first, first.expiresAt <= now else { return nil }
        let last = heap.removeLast()
        if !heap.isEmpty {
            heap[0] = last
            siftDown(0)
        }
        return first
    }

    /// The owner saw a stale entry (popped, or left behind): one fewer to count.
    @inlinable
    public mutating func staleEntryRemoved() {
        if stale > 0 { stale -= 1 }
    }

    /// Drops every entry `isLive` rejects when stale entries outnumber live ones, or when none
    /// is live any more (however few), so that an idle loop holds no owner that is done.
    @inlinable
    public mutating func compactIfWorthIt(isLive: (Entry) -> Bool) {
        guard stale >= heap.count || (stale > 64 && stale * 2 > heap.count) else { return }
        heap.removeAll { !isLive($0) }
        stale = 0
        guard heap.count > 1 else { return }
        for index in stride(from: heap.count / 2 - 1, through: 0, by: -1) { siftDown(index) }
    }

    @inlinable
    mutating func siftUp(_ start: Int) {
        var child = start
        while child > 0 {
            let parent = (child - 1) / 2
            guard heap[child].expiresAt < heap[parent].expiresAt else { return }
            heap.swapAt(child, parent)
            child = parent
        }
    }

    @inlinable
    mutating func siftDown(_ start: Int) {
        var parent = start
        let count = heap.count
        while true {
            let left = 2 * parent + 1
            guard left < count else { return }
            let right = left + 1
            let smaller = right < count && heap[right].expiresAt < heap[left].expiresAt ? right : left
            guard heap[smaller].expiresAt < heap[parent].expiresAt else { return }
            heap.swapAt(smaller, parent)
            parent = smaller
        }
    }
}
