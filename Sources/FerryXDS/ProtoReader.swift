/// protobuf's wire format, read one field at a time from bytes it does not copy. Ferry decodes
/// the xDS messages it reads by hand on this (see protos/xds/README.md for why): each decoder
/// walks its message's fields, takes those it knows and skips the rest, as protobuf's rules
/// say an unknown field must be.
struct ProtoReader {
    /// One field's value as the wire carries it.
    enum Value {
        case varint(UInt64)
        case fixed64(UInt64)
        case bytes(ArraySlice<UInt8>)
        case fixed32(UInt32)
    }

    private var rest: ArraySlice<UInt8>

    init(_ bytes: ArraySlice<UInt8>) { rest = bytes }
    init(_ bytes: [UInt8]) { rest = bytes[...] }

    /// The next field's number and value, or nil at the end of the message.
    mutating func next() throws(XDSProblem) -> (number: Int, value: Value)? {
        guard !rest.isEmpty else { return nil }
        let key = try varint()
        let number = key >> 3
        guard number > 0, number <= 536_870_911 else { throw XDSProblem("field number \(number) is out of range") }
        switch key & 7 {
        case 0:
            return (Int(number), .varint(try varint()))
        case 1:
            return (Int(number), .fixed64(try fixed(8)))
        case 2:
            let length = try varint()
            guard length <= UInt64(rest.count) else {
                throw XDSProblem("field \(number) says \(length) bytes follow, \(rest.count) do")
            }
            let end = rest.startIndex + Int(length)
            defer { rest = rest[end...] }
            return (Int(number), .bytes(rest[rest.startIndex..<end]))
        case 5:
            return (Int(number), .fixed32(UInt32(truncatingIfNeeded: try fixed(4))))
        default:
            // 3 and 4 are the long-deprecated groups, which no xDS message has; 6 and 7 do not exist.
            throw XDSProblem("field \(number) has wire type \(key & 7), which Ferry does not read")
        }
    }

    private mutating func varint() throws(XDSProblem) -> UInt64 {
        var value: UInt64 = 0
        var shift: UInt64 = 0
        while let byte = rest.first {
            rest = rest.dropFirst()
            guard shift < 64, !(shift == 63 && byte > 1) else { throw XDSProblem("a varint is longer than 64 bits") }
            value |= UInt64(byte & 0x7F) << shift
            if byte < 0x80 { return value }
            shift += 7
        }
        throw XDSProblem("the message ends inside a varint")
    }

    private mutating func fixed(_ count: Int) throws(XDSProblem) -> UInt64 {
        guard rest.count >= count else { throw XDSProblem("the message ends inside a \(count * 8)-bit field") }
        var value: UInt64 = 0
        for (offset, byte) in rest.prefix(count).enumerated() { value |= UInt64(byte) << UInt64(8 * offset) }
        rest = rest.dropFirst(count)
        return value
    }
}

extension ProtoReader.Value {
    func string(_ field: String) throws(XDSProblem) -> String {
        guard case .bytes(let bytes) = self else { throw wrongType(field, "a string") }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw XDSProblem("is not valid UTF-8").inside(field)
        }
        return text
    }

    func message(_ field: String) throws(XDSProblem) -> ArraySlice<UInt8> {
        guard case .bytes(let bytes) = self else { throw wrongType(field, "a message") }
        return bytes
    }

    func uint64(_ field: String) throws(XDSProblem) -> UInt64 {
        guard case .varint(let value) = self else { throw wrongType(field, "a varint") }
        return value
    }

    func uint32(_ field: String) throws(XDSProblem) -> UInt32 {
        UInt32(truncatingIfNeeded: try uint64(field))
    }

    func int32(_ field: String) throws(XDSProblem) -> Int32 {
        Int32(truncatingIfNeeded: try uint64(field))
    }

    func int64(_ field: String) throws(XDSProblem) -> Int64 {
        Int64(bitPattern: try uint64(field))
    }

    func double(_ field: String) throws(XDSProblem) -> Double {
        guard case .fixed64(let bits) = self else { throw wrongType(field, "a double") }
        return Double(bitPattern: bits)
    }

    func bool(_ field: String) throws(XDSProblem) -> Bool {
        try uint64(field) != 0
    }

    private func wrongType(_ field: String, _ expected: String) -> XDSProblem {
        let found = switch self {
        case .varint: "a varint"
        case .fixed64: "a 64-bit value"
        case .bytes: "length-delimited bytes"
        case .fixed32: "a 32-bit value"
        }
        return XDSProblem("expected \(expected), found \(found)").inside(field)
    }
}

extension ProtoReader {
    /// Reads every field of `bytes` with `body`.
    static func fields(of bytes: ArraySlice<UInt8>,
                       _ body: (Int, Value) throws(XDSProblem) -> Void) throws(XDSProblem) {
        var reader = ProtoReader(bytes)
        while let (number, value) = try reader.next() { try body(number, value) }
    }
}

extension ProtoReader.Value {
    /// The embedded message in this field, decoded by `decode`; an error in it names the field.
    func decode<T>(_ field: String, _ decode: (ArraySlice<UInt8>) throws(XDSProblem) -> T) throws(XDSProblem) -> T {
        let bytes = try message(field)
        do { return try decode(bytes) } catch { throw error.inside(field) }
    }
}
