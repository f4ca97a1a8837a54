/// protobuf's wire format, written field by field. Ferry writes only a few small xDS messages
/// (DiscoveryRequest, its Node, a NACK's Status); proto3's defaults (0, "", empty) are left out
/// as protobuf writes them.
struct ProtoWriter {
    private(set) var bytes: [UInt8] = []

    init() {}

    mutating func varint(_ field: Int, _ value: UInt64) {
        guard value != 0 else { return }
        key(field, wireType: 0)
        rawVarint(value)
    }

    mutating func string(_ field: Int, _ value: String) {
        guard !value.isEmpty else { return }
        lengthDelimited(field, value.utf8)
    }

    mutating func strings(_ field: Int, _ values: [String]) {
        // Repeated strings are written even when empty: each element is there on purpose.
        for value in values { lengthDelimited(field, value.utf8) }
    }

    /// An embedded message, written even when empty (its presence can mean something, as
    /// `ConfigSource.ads` does).
    mutating func message(_ field: Int, _ build: (inout ProtoWriter) -> Void) {
        var inner = ProtoWriter()
        build(&inner)
        lengthDelimited(field, inner.bytes)
    }

    /// Bytes (or an already encoded message) as a length-delimited field.
    mutating func bytesField(_ field: Int, _ value: [UInt8]) {
        lengthDelimited(field, value)
    }

    private mutating func lengthDelimited<C: Collection>(_ field: Int, _ content: C) where C.Element == UInt8 {
        key(field, wireType: 2)
        rawVarint(UInt64(content.count))
        bytes.append(contentsOf: content)
    }

    private mutating func key(_ field: Int, wireType: UInt64) {
        rawVarint(UInt64(field) << 3 | wireType)
    }

    private mutating func rawVarint(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }
}
