import NIOCore

/// One HTTP/2 header block (request or response headers, or trailers), kept as bytes.
///
/// Names and values live back to back in one buffer; a field table holds their offsets (both
/// in `HeaderBlockStorage`, shared by copies until one changes). Forwarding a block never turns
/// a header into a `String`: the proxy reads only the few fields it needs (`:path`,
/// `content-type`, `grpc-status`, ...) by comparing bytes.
public struct H2Headers: Sendable {
    @usableFromInline
    struct Field: Sendable {
        @usableFromInline var nameStart: UInt32
        @usableFromInline var nameLength: UInt32
        @usableFromInline var valueStart: UInt32
        @usableFromInline var valueLength: UInt32
        @usableFromInline var neverIndex: Bool
    }

    @usableFromInline var storage: HeaderBlockStorage

    public init(capacity: Int = 256) {
        storage = HeaderBlockStorage(byteCapacity: capacity, fieldCapacity: 12)
    }

    public init(_ pairs: [(String, String)]) {
        self.init(capacity: pairs.reduce(0) { $0 + $1.0.utf8.count + $1.1.utf8.count })
        for (name, value) in pairs { append(name: name, value: value) }
    }

    /// Empties the block, keeping its buffers when nothing else shares them (a block still
    /// shared gets buffers of its own, as large).
    public mutating func removeAll() {
        if isKnownUniquelyReferenced(&storage) {
            storage.removeAll()
        } else {
            storage = HeaderBlockStorage(byteCapacity: storage.byteCapacity, fieldCapacity: storage.fieldCapacity)
        }
    }

    /// Bytes the block can hold before its buffer grows.
    var capacity: Int { storage.byteCapacity }

    public var count: Int { storage.fieldCount }
    public var isEmpty: Bool { storage.fieldCount == 0 }

    @usableFromInline
    func field(_ index: Int) -> Field {
        precondition(index >= 0 && index < storage.fieldCount, "header field index out of range")
        return storage.fields[index]
    }

    /// The bytes at `start` for `count`, valid while this block is alive and unchanged.
    @usableFromInline
    func raw(_ start: UInt32, _ count: UInt32) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: storage.bytes + Int(start), count: Int(count))
    }

    /// Total bytes of names and values, the measure HTTP/2's header list size is close to.
    public var byteCount: Int { storage.byteCount }

    public mutating func append(name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer, neverIndex: Bool = false) {
        if !isKnownUniquelyReferenced(&storage) { storage = storage.copy() }
        storage.append(name: name, value: value, neverIndex: neverIndex)
    }

    public mutating func append(name: String, value: String, neverIndex: Bool = false) {
        var name = name
        var value = value
        name.withUTF8 { name in
            value.withUTF8 { value in
                append(name: UnsafeRawBufferPointer(name), value: UnsafeRawBufferPointer(value), neverIndex: neverIndex)
            }
        }
    }

    /// Appends every field of `other`, in order.
    public mutating func append(contentsOf other: H2Headers) {
        other.forEachRaw { name, value, neverIndex in
            append(name: name, value: value, neverIndex: neverIndex)
        }
    }

    public func name(at index: Int) -> String {
        let f = field(index)
        return String(decoding: raw(f.nameStart, f.nameLength), as: UTF8.self)
    }

    public func value(at index: Int) -> String {
        let f = field(index)
        return String(decoding: raw(f.valueStart, f.valueLength), as: UTF8.self)
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
        let base = storage.bytes
        let fields = storage.fields
        for i in 0..<storage.fieldCount {
            let f = fields[i]
            if Int(f.nameLength) == wanted.count
                && (wanted.isEmpty || memcmp(base + Int(f.nameStart), wanted.baseAddress!, wanted.count) == 0) {
                return i
            }
        }
        return nil
    }

    public func first(_ name: String) -> String? {
        firstIndex(of: name).map { value(at: $0) }
    }

    public func contains(_ name: String) -> Bool { firstIndex(of: name) != nil }

    /// True when the first field named `name` has a value that starts with `prefix` (bytes).
    public func value(of name: String, hasPrefix prefix: String) -> Bool {
        guard let i = firstIndex(of: name) else { return false }
        let f = field(i)
        var prefix = prefix
        return prefix.withUTF8 { p in
            guard p.count <= Int(f.valueLength) else { return false }
            return p.isEmpty || memcmp(storage.bytes + Int(f.valueStart), p.baseAddress!, p.count) == 0
        }
    }

    /// Calls `body` with the raw value of the first field named `name` (nil if absent), valid
    /// only inside the call: a way to look at a value without making a `String`.
    /// Inlinable, so the closure is specialized into the caller (the request path reads several
    /// values per call; a generic call through a thunk cost about 90 instructions each).
    @inlinable
    public func withValue<R>(of name: String, _ body: (UnsafeRawBufferPointer?) -> R) -> R {
        guard let i = firstIndex(of: name) else { return body(nil) }
        let f = field(i)
        return withExtendedLifetime(storage) { body(raw(f.valueStart, f.valueLength)) }
    }

    public var pairs: [(name: String, value: String)] {
        (0..<count).map { (name(at: $0), value(at: $0)) }
    }

    /// Whether any field's raw name satisfies `test` (the bytes valid only inside the call);
    /// stops at the first. Inlined where it is used, so a test that rules most names out by
    /// their length costs a compare per field.
    @inlinable
    public func containsName(where test: (UnsafeRawBufferPointer) -> Bool) -> Bool {
        withExtendedLifetime(storage) {
            let fields = storage.fields
            for i in 0..<storage.fieldCount where test(raw(fields[i].nameStart, fields[i].nameLength)) {
                return true
            }
            return false
        }
    }

    /// Calls `body` with each field's raw name and value bytes, valid only inside the call.
    public func forEachRaw(_ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer, Bool) -> Void) {
        withExtendedLifetime(storage) {
            let fields = storage.fields
            for i in 0..<storage.fieldCount {
                let f = fields[i]
                body(raw(f.nameStart, f.nameLength), raw(f.valueStart, f.valueLength), f.neverIndex)
            }
        }
    }

    /// A copy with the first field named `name` given `value` in place (appended if absent).
    public func replacingValue(of name: String, with value: String) -> H2Headers {
        var out = H2Headers(capacity: byteCount + value.utf8.count)
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
        var out = H2Headers(capacity: byteCount)
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
