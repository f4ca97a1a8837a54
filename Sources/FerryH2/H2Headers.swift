import NIOCore

/// One HTTP/2 header block (request or response headers, or trailers), kept as bytes.
///
/// Names and values live back to back in one `ByteBuffer`; `fields` holds their offsets.
/// Forwarding a block never turns a header into a `String`: the proxy reads only the few
/// fields it needs (`:path`, `content-type`, `grpc-status`, ...) by comparing bytes.
public struct H2Headers: Sendable {
    @usableFromInline
    struct Field: Sendable {
        @usableFromInline var nameStart: UInt32
        @usableFromInline var nameLength: UInt32
        @usableFromInline var valueStart: UInt32
        @usableFromInline var valueLength: UInt32
        @usableFromInline var neverIndex: Bool
    }

    @usableFromInline var storage: ByteBuffer
    @usableFromInline var fields: [Field]

    public init(capacity: Int = 256) {
        self.storage = ByteBufferAllocator().buffer(capacity: capacity)
        self.fields = []
        self.fields.reserveCapacity(12)
    }

    public init(_ pairs: [(String, String)]) {
        self.init(capacity: pairs.reduce(0) { $0 + $1.0.utf8.count + $1.1.utf8.count })
        for (name, value) in pairs { append(name: name, value: value) }
    }

    /// Empties the block, keeping its buffers when nothing else shares them (copy on write
    /// gives a sharer's copy its own buffers).
    public mutating func removeAll() {
        storage.clear()
        fields.removeAll(keepingCapacity: true)
    }

    /// Bytes the block can hold before its buffer grows.
    var capacity: Int { storage.capacity }

    public var count: Int { fields.count }
    public var isEmpty: Bool { fields.isEmpty }

    /// Total bytes of names and values, the measure HTTP/2's header list size is close to.
    public var byteCount: Int { storage.readableBytes }

    public mutating func append(name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer, neverIndex: Bool = false) {
        let nameStart = storage.writerIndex
        let valueStart = nameStart + name.count
        storage.writeRaw(name, value)
        fields.append(Field(nameStart: UInt32(nameStart), nameLength: UInt32(name.count),
                            valueStart: UInt32(valueStart), valueLength: UInt32(value.count),
                            neverIndex: neverIndex))
    }

    public mutating func append(name: String, value: String, neverIndex: Bool = false) {
        let nameStart = storage.writerIndex
        let nameLength = storage.writeString(name)
        let valueStart = storage.writerIndex
        let valueLength = storage.writeString(value)
        fields.append(Field(nameStart: UInt32(nameStart), nameLength: UInt32(nameLength),
                            valueStart: UInt32(valueStart), valueLength: UInt32(valueLength),
                            neverIndex: neverIndex))
    }

    /// Appends every field of `other`, in order.
    public mutating func append(contentsOf other: H2Headers) {
        other.forEachRaw { name, value, neverIndex in
            append(name: name, value: value, neverIndex: neverIndex)
        }
    }

    public func name(at index: Int) -> String {
        let f = fields[index]
        return storage.getString(at: Int(f.nameStart), length: Int(f.nameLength)) ?? ""
    }

    public func value(at index: Int) -> String {
        let f = fields[index]
        return storage.getString(at: Int(f.valueStart), length: Int(f.valueLength)) ?? ""
    }

    /// The index of the first field named `name` (compared as bytes; HTTP/2 names are lower case).
    public func firstIndex(of name: String) -> Int? {
        // Names are short literals (":path", "grpc-status"): their UTF-8 is read in place,
        // without copying the String or retaining anything per call.
        if let index = name.utf8.withContiguousStorageIfAvailable({ firstIndex(ofBytes: UnsafeRawBufferPointer($0)) }) {
            return index
        }
        var copy = name
        return copy.withUTF8 { firstIndex(ofBytes: UnsafeRawBufferPointer($0)) }
    }

    private func firstIndex(ofBytes wanted: UnsafeRawBufferPointer) -> Int? {
        storage.withUnsafeReadableBytes { bytes in
            let base = bytes.baseAddress! - storage.readerIndex
            var i = 0
            while i < fields.count {
                let f = fields[i]
                if Int(f.nameLength) == wanted.count
                    && (wanted.isEmpty || memcmp(base + Int(f.nameStart), wanted.baseAddress!, wanted.count) == 0) {
                    return i
                }
                i += 1
            }
            return nil
        }
    }

    public func first(_ name: String) -> String? {
        firstIndex(of: name).map { value(at: $0) }
    }

    public func contains(_ name: String) -> Bool { firstIndex(of: name) != nil }

    /// True when the first field named `name` has a value that starts with `prefix` (bytes).
    public func value(of name: String, hasPrefix prefix: String) -> Bool {
        guard let i = firstIndex(of: name) else { return false }
        let f = fields[i]
        var prefix = prefix
        return prefix.withUTF8 { p in
            guard p.count <= Int(f.valueLength) else { return false }
            return storage.withUnsafeReadableBytes { bytes in
                p.isEmpty || memcmp(bytes.baseAddress! + Int(f.valueStart) - storage.readerIndex, p.baseAddress!, p.count) == 0
            }
        }
    }

    /// Calls `body` with the raw value of the first field named `name` (nil if absent), valid
    /// only inside the call: a way to look at a value without making a `String`.
    /// Inlinable, so the closure is specialized into the caller (the request path reads several
    /// values per call; a generic call through a thunk cost about 90 instructions each).
    @inlinable
    public func withValue<R>(of name: String, _ body: (UnsafeRawBufferPointer?) -> R) -> R {
        guard let span = valueSpan(of: name) else { return body(nil) }
        return storage.withUnsafeReadableBytes { bytes in
            body(UnsafeRawBufferPointer(start: bytes.baseAddress! + span.offset, count: span.count))
        }
    }

    /// Where the first value named `name` is in the readable bytes of `storage`.
    @usableFromInline
    func valueSpan(of name: String) -> (offset: Int, count: Int)? {
        guard let i = firstIndex(of: name) else { return nil }
        let f = fields[i]
        return (Int(f.valueStart) - storage.readerIndex, Int(f.valueLength))
    }

    public var pairs: [(name: String, value: String)] {
        (0..<fields.count).map { (name(at: $0), value(at: $0)) }
    }

    /// Whether any field's raw name satisfies `test` (the bytes valid only inside the call);
    /// stops at the first. Inlined where it is used, so a test that rules most names out by
    /// their length costs a compare per field.
    @inlinable
    public func containsName(where test: (UnsafeRawBufferPointer) -> Bool) -> Bool {
        storage.withUnsafeReadableBytes { bytes in
            guard let base = bytes.baseAddress else { return false }
            let offset = storage.readerIndex
            for f in fields where test(UnsafeRawBufferPointer(start: base + Int(f.nameStart) - offset, count: Int(f.nameLength))) {
                return true
            }
            return false
        }
    }

    /// Calls `body` with each field's raw name and value bytes, valid only inside the call.
    public func forEachRaw(_ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer, Bool) -> Void) {
        storage.withUnsafeReadableBytes { bytes in
            let base = bytes.baseAddress!
            for f in fields {
                let name = UnsafeRawBufferPointer(start: base + Int(f.nameStart) - storage.readerIndex, count: Int(f.nameLength))
                let value = UnsafeRawBufferPointer(start: base + Int(f.valueStart) - storage.readerIndex, count: Int(f.valueLength))
                body(name, value, f.neverIndex)
            }
        }
    }

    /// A copy with the first field named `name` given `value` in place (appended if absent).
    public func replacingValue(of name: String, with value: String) -> H2Headers {
        var out = H2Headers(capacity: storage.readableBytes + value.utf8.count)
        var replaced = false
        var value = value
        forEachRaw { fieldName, fieldValue, neverIndex in
            if !replaced && fieldName.elementsEqual(name.utf8) {
                replaced = true
                value.withUTF8 { out.append(name: fieldName, value: UnsafeRawBufferPointer($0), neverIndex: neverIndex) }
            } else {
                out.append(name: fieldName, value: fieldValue, neverIndex: neverIndex)
            }
        }
        if !replaced { out.append(name: name, value: value) }
        return out
    }

    /// A copy without the fields for which `shouldRemove(name)` is true.
    public func removing(where shouldRemove: (UnsafeRawBufferPointer) -> Bool) -> H2Headers {
        var out = H2Headers(capacity: storage.readableBytes)
        forEachRaw { name, value, neverIndex in
            if !shouldRemove(name) { out.append(name: name, value: value, neverIndex: neverIndex) }
        }
        return out
    }
}

extension H2Headers: CustomStringConvertible {
    public var description: String {
        pairs.map { "\($0.name): \($0.value)" }.joined(separator: "\n")
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
