/// How many stream errors a peer may cause on one connection: a token bucket, `burst` at
/// first, refilled at `perSecond`. A stream error costs us work (a reset, often a decoded
/// header block) and costs the peer nothing, so a peer that keeps causing them is cut off
/// with GOAWAY ENHANCE_YOUR_CALM instead of holding an event loop (each error is counted:
/// resets nghttp2 sends for the peer's protocol errors, 431 answers, frames on closed streams).
/// An error whose header block was large costs more: one token, plus one per 256 bytes of the
/// block (HPACK must decode all of a malformed block, so its size is the work it caused).
struct PeerStreamErrorBudget {
    let burst: Int
    let perSecond: Int
    private var tokens: Int
    private var refilledAt: Int64 = 0

    init(burst: Int, perSecond: Int) {
        self.burst = burst
        self.perSecond = perSecond
        self.tokens = burst
    }

    /// Spends `cost` tokens at `now` (monotonic nanoseconds); false once the budget is spent.
    mutating func spend(_ cost: Int = 1, at now: Int64) -> Bool {
        if perSecond > 0 {
            let interval = 1_000_000_000 / Int64(perSecond)
            if refilledAt == 0 { refilledAt = now }
            let earned = (now - refilledAt) / interval
            if earned > 0 {
                tokens = Swift.min(burst, tokens + Int(Swift.min(earned, Int64(burst))))
                refilledAt += earned * interval
            }
        }
        guard tokens >= cost else {
            tokens = 0
            return false
        }
        tokens -= cost
        return true
    }
}

/// The streams a peer closed lately, remembered so that a frame arriving on one of them gets
/// the answer RFC 9113 section 5.1 requires. nghttp2 forgets closed streams (Ferry turns its
/// closed-stream memory off) and would ignore such frames; a closed id and an idle one look
/// alike to it. Bounded: the oldest entries are forgotten first.
struct RecentlyClosedStreams {
    enum HowClosed: Equatable {
        /// The peer ended its side (END_STREAM): anything more from it is a connection error.
        case peerEnded
        /// The peer reset the stream: DATA or HEADERS after it are a stream error STREAM_CLOSED.
        case peerReset
    }

    static let capacity = 64
    private var ids = [Int32](repeating: 0, count: capacity)
    private var hows = [HowClosed](repeating: .peerEnded, count: capacity)
    private var next = 0

    mutating func record(_ id: Int32, _ how: HowClosed) {
        ids[next] = id
        hows[next] = how
        next = (next + 1) % Self.capacity
    }

    func howClosed(_ id: Int32) -> HowClosed? {
        guard id > 0 else { return nil }
        for i in 0..<Self.capacity where ids[i] == id { return hows[i] }
        return nil
    }
}

/// The last few stream ids of some kind, in a fixed ring (no allocation after the first):
/// membership is a short scan, and the oldest id is forgotten when the ring is full.
struct RecentStreamIDs {
    private var ids: [Int32] = []
    private var next = 0
    let capacity: Int

    init(capacity: Int) { self.capacity = capacity }

    mutating func insert(_ id: Int32) {
        if ids.count < capacity {
            ids.append(id)
        } else {
            ids[next] = id
            next = (next + 1) % capacity
        }
    }

    /// Forgets `id`; true if it was there.
    mutating func remove(_ id: Int32) -> Bool {
        guard let index = ids.firstIndex(of: id) else { return false }
        ids[index] = 0
        return true
    }
}
