/// Round-robin over a set of endpoints, skipping those that cannot take a call right now.
/// Pure state: one instance per event loop, no locks. Weighted variants and P2C come with
/// the balancing work; this is the picker the core forwards with.
public struct RoundRobin: Sendable {
    private var cursor: Int

    /// `start` spreads event loops over different first picks.
    public init(start: Int = 0) {
        self.cursor = start
    }

    /// Picks an index in `0..<count` for which `isAvailable` holds, trying each once from the
    /// cursor on. Returns nil when `count` is zero or none is available.
    public mutating func pick(count: Int, isAvailable: (Int) -> Bool = { _ in true }) -> Int? {
        guard count > 0 else { return nil }
        for step in 0..<count {
            let index = (cursor &+ step) % count
            if isAvailable(index) {
                cursor = (index &+ 1) % count
                return index
            }
        }
        return nil
    }
}
