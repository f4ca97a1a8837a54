/// The bytes and the field table of one header block, shared by copies of an `H2Headers`
/// until one of them changes: `H2Headers` checks that it holds the only reference before it
/// writes, and copies otherwise (copy on write, as `Array` does).
///
/// Its own two buffers rather than a `ByteBuffer` and an `Array`: nghttp2 hands a block over
/// one field at a time, and each append through `ByteBuffer.writeWithUnsafeMutableBytes` and
/// `Array.append` paid two uniqueness checks, a slice and a capacity check: 230 instructions a
/// field, 16 fields a proxied call. Here an append is one check and two copies (120).
@usableFromInline
final class HeaderBlockStorage: @unchecked Sendable {
    /// Names and values back to back; `byteCount` of `byteCapacity` are in use.
    @usableFromInline var bytes: UnsafeMutableRawPointer
    @usableFromInline var byteCount = 0
    @usableFromInline var byteCapacity: Int
    /// Where each field's name and value are in `bytes`; `fieldCount` of `fieldCapacity` in use.
    @usableFromInline var fields: UnsafeMutablePointer<H2Headers.Field>
    @usableFromInline var fieldCount = 0
    @usableFromInline var fieldCapacity: Int

    init(byteCapacity: Int, fieldCapacity: Int) {
        self.byteCapacity = Swift.max(byteCapacity, 16)
        self.fieldCapacity = Swift.max(fieldCapacity, 4)
        bytes = .allocate(byteCount: self.byteCapacity, alignment: 1)
        fields = .allocate(capacity: self.fieldCapacity)
    }

    deinit {
        bytes.deallocate()
        fields.deallocate()
    }

    /// A copy of the block in buffers of its own, as large as these.
    func copy() -> HeaderBlockStorage {
        let copy = HeaderBlockStorage(byteCapacity: byteCapacity, fieldCapacity: fieldCapacity)
        copy.bytes.copyMemory(from: bytes, byteCount: byteCount)
        copy.fields.initialize(from: fields, count: fieldCount)
        copy.byteCount = byteCount
        copy.fieldCount = fieldCount
        return copy
    }

    func removeAll() {
        byteCount = 0
        fieldCount = 0
    }

    /// Appends one field. The caller made sure this storage is not shared.
    @inline(__always)
    func append(name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer, neverIndex: Bool) {
        let nameStart = byteCount
        let valueStart = nameStart + name.count
        let end = valueStart + value.count
        if end > byteCapacity { growBytes(toHold: end) }
        if fieldCount == fieldCapacity { growFields() }
        if let source = name.baseAddress { (bytes + nameStart).copyMemory(from: source, byteCount: name.count) }
        if let source = value.baseAddress { (bytes + valueStart).copyMemory(from: source, byteCount: value.count) }
        (fields + fieldCount).initialize(to: H2Headers.Field(nameStart: UInt32(truncatingIfNeeded: nameStart),
                                                             nameLength: UInt32(truncatingIfNeeded: name.count),
                                                             valueStart: UInt32(truncatingIfNeeded: valueStart),
                                                             valueLength: UInt32(truncatingIfNeeded: value.count),
                                                             neverIndex: neverIndex))
        byteCount = end
        fieldCount += 1
    }

    private func growBytes(toHold needed: Int) {
        let capacity = Swift.max(needed, byteCapacity * 2)
        let grown = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 1)
        grown.copyMemory(from: bytes, byteCount: byteCount)
        bytes.deallocate()
        bytes = grown
        byteCapacity = capacity
    }

    private func growFields() {
        let capacity = fieldCapacity * 2
        let grown = UnsafeMutablePointer<H2Headers.Field>.allocate(capacity: capacity)
        grown.moveInitialize(from: fields, count: fieldCount)
        fields.deallocate()
        fields = grown
        fieldCapacity = capacity
    }
}
