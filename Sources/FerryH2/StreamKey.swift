/// A stream id as a dictionary key with a cheap hash. A connection holds at most
/// MAX_CONCURRENT_STREAMS ids, chosen in increasing order, so SipHash's resistance to
/// flooding buys nothing here, and the dozen stream lookups of a proxied call spent more
/// time hashing than looking. The hash still mixes in the dictionary's per-instance seed.
struct StreamKey: Hashable {
    let id: Int32

    init(_ id: Int32) { self.id = id }

    func hash(into hasher: inout Hasher) { hasher.combine(id) }

    func _rawHashValue(seed: Int) -> Int {
        var x = UInt64(UInt32(bitPattern: id)) ^ UInt64(UInt(bitPattern: seed))
        x &*= 0x9E37_79B9_7F4A_7C15
        return Int(truncatingIfNeeded: x ^ (x >> 29))
    }
}
