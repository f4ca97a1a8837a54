/// A queue that serves its keys in turn: each key's elements leave in the order they came, and
/// the keys with something waiting take turns, one element each. Upstream pools queue their
/// waiting calls by downstream connection in one, so a client that queued a thousand calls
/// delays another client's call by one turn, not by a thousand.
public struct FairQueue<Key: Hashable, Element> {
    /// One key's elements, oldest first (`head` is the oldest still waiting).
    private struct Lane {
        var elements: [Element] = []
        var head = 0
        var isEmpty: Bool { head == elements.count }

        mutating func popFirst() -> Element {
            let element = elements[head]
            head += 1
            if head == elements.count {
                elements.removeAll(keepingCapacity: true)
                head = 0
            } else if head >= 32 && head * 2 >= elements.count {
                elements.removeFirst(head)
                head = 0
            }
            return element
        }
    }

    private var lanes: [Key: Lane] = [:]
    /// The keys with elements waiting, in turn order; `turn` is the index of the next to serve.
    private var order: [Key] = []
    private var turn = 0
    public private(set) var count = 0

    public init() {}

    public var isEmpty: Bool { count == 0 }

    public mutating func append(_ element: Element, key: Key) {
        if lanes[key, default: Lane()].isEmpty { order.append(key) }
        lanes[key, default: Lane()].elements.append(element)
        count += 1
    }

    /// The next element: the oldest of the key whose turn it is.
    public mutating func popFirst() -> Element? {
        guard count > 0 else { return nil }
        if turn >= order.count { turn = 0 }
        let key = order[turn]
        let element = lanes[key]!.popFirst()
        count -= 1
        if lanes[key]!.isEmpty {
            lanes[key] = nil
            order.remove(at: turn)      // the next key moves into this turn
        } else {
            turn += 1
        }
        return element
    }

    /// Removes the first element of `key` that `matches`; true if one was there.
    @discardableResult
    public mutating func remove(key: Key, where matches: (Element) -> Bool) -> Bool {
        guard var lane = lanes[key], let index = lane.elements[lane.head...].firstIndex(where: matches) else { return false }
        lane.elements.remove(at: index)
        count -= 1
        if lane.isEmpty {
            lanes[key] = nil
            if let position = order.firstIndex(of: key) {
                order.remove(at: position)
                if position < turn { turn -= 1 }
            }
        } else {
            lanes[key] = lane
        }
        return true
    }

    /// Empties the queue; the elements in the order they would have been served.
    public mutating func removeAll() -> [Element] {
        var all: [Element] = []
        all.reserveCapacity(count)
        while let element = popFirst() { all.append(element) }
        return all
    }
}
