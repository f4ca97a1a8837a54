/// The parts of the DNS wire format (RFC 1035, RFC 2782, RFC 3596) discovery needs: one
/// question out, the answer and additional sections back. Pure bytes in and out.
public enum DNSRecordType: UInt16, Sendable {
    case a = 1
    case cname = 5
    case aaaa = 28
    case srv = 33
}

public struct DNSRecord: Sendable, Equatable {
    public enum Data: Sendable, Equatable {
        case address(String)
        case srv(priority: UInt16, weight: UInt16, port: UInt16, target: String)
        case cname(String)
        case other(type: UInt16)
    }

    /// The owner name, lower case, without the trailing dot.
    public var name: String
    public var ttl: UInt32
    public var data: Data
}

public struct DNSResponse: Sendable, Equatable {
    public var id: UInt16
    /// 0 NOERROR, 2 SERVFAIL, 3 NXDOMAIN, 5 REFUSED, ...
    public var rcode: UInt8
    public var truncated: Bool
    public var answers: [DNSRecord]
    public var additionals: [DNSRecord]
}

public enum DNSMessage {
    public struct MalformedError: Error, CustomStringConvertible {
        public let description: String
    }

    /// A recursive query for `name`'s records of `type`.
    public static func query(id: UInt16, name: String, type: DNSRecordType) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(18 + name.utf8.count)
        appendUInt16(&out, id)
        appendUInt16(&out, 0x0100)  // standard query, recursion desired
        appendUInt16(&out, 1)       // one question
        appendUInt16(&out, 0)
        appendUInt16(&out, 0)
        appendUInt16(&out, 0)
        for label in name.split(separator: ".") {
            out.append(UInt8(label.utf8.count))
            out.append(contentsOf: label.utf8)
        }
        out.append(0)
        appendUInt16(&out, type.rawValue)
        appendUInt16(&out, 1)  // class IN
        return out
    }

    public static func decode(_ bytes: [UInt8]) throws -> DNSResponse {
        var reader = Reader(bytes: bytes)
        let id = try reader.uint16()
        let flags = try reader.uint16()
        guard flags & 0x8000 != 0 else { throw MalformedError(description: "not a response") }
        let questions = try reader.uint16()
        let answers = try reader.uint16()
        let authorities = try reader.uint16()
        let additionals = try reader.uint16()
        for _ in 0..<questions {
            _ = try reader.name()
            try reader.skip(4)
        }
        var answerRecords: [DNSRecord] = []
        for _ in 0..<answers { if let r = try reader.record() { answerRecords.append(r) } }
        for _ in 0..<authorities { _ = try reader.record() }
        var additionalRecords: [DNSRecord] = []
        for _ in 0..<additionals { if let r = try? reader.record() { additionalRecords.append(r) } else { break } }
        return DNSResponse(id: id, rcode: UInt8(flags & 0x000F), truncated: flags & 0x0200 != 0,
                           answers: answerRecords, additionals: additionalRecords)
    }

    private static func appendUInt16(_ out: inout [UInt8], _ value: UInt16) {
        out.append(UInt8(value >> 8))
        out.append(UInt8(value & 0xFF))
    }

    struct Reader {
        let bytes: [UInt8]
        var offset = 0

        mutating func uint8() throws -> UInt8 {
            guard offset < bytes.count else { throw MalformedError(description: "message ends early") }
            defer { offset += 1 }
            return bytes[offset]
        }

        mutating func uint16() throws -> UInt16 { UInt16(try uint8()) << 8 | UInt16(try uint8()) }
        mutating func uint32() throws -> UInt32 { UInt32(try uint16()) << 16 | UInt32(try uint16()) }

        mutating func skip(_ count: Int) throws {
            guard offset + count <= bytes.count else { throw MalformedError(description: "message ends early") }
            offset += count
        }

        /// A possibly compressed name at the current offset; the offset moves past it.
        mutating func name() throws -> String {
            var labels: [String] = []
            var position = offset
            var jumped = false
            var jumps = 0
            var length = 0
            while true {
                guard position < bytes.count else { throw MalformedError(description: "name runs past the message") }
                let byte = bytes[position]
                if byte & 0xC0 == 0xC0 {
                    guard position + 1 < bytes.count else { throw MalformedError(description: "cut compression pointer") }
                    jumps += 1
                    guard jumps <= 32 else { throw MalformedError(description: "compression pointer loop") }
                    if !jumped { offset = position + 2 }
                    jumped = true
                    position = Int(byte & 0x3F) << 8 | Int(bytes[position + 1])
                    continue
                }
                guard byte & 0xC0 == 0 else { throw MalformedError(description: "unknown label type") }
                if byte == 0 {
                    if !jumped { offset = position + 1 }
                    break
                }
                let start = position + 1, end = start + Int(byte)
                guard end <= bytes.count else { throw MalformedError(description: "label runs past the message") }
                length += Int(byte) + 1
                guard length <= 255 else { throw MalformedError(description: "name longer than 255 bytes") }
                labels.append(String(decoding: bytes[start..<end], as: UTF8.self).lowercased())
                position = end
            }
            return labels.joined(separator: ".")
        }

        /// One resource record; nil for records of another class.
        mutating func record() throws -> DNSRecord? {
            let name = try name()
            let type = try uint16()
            let recordClass = try uint16()
            let ttl = try uint32()
            let length = Int(try uint16())
            guard offset + length <= bytes.count else { throw MalformedError(description: "record data runs past the message") }
            let dataStart = offset
            defer { offset = dataStart + length }
            guard recordClass == 1 else { return nil }
            let data: DNSRecord.Data
            switch DNSRecordType(rawValue: type) {
            case .a:
                guard length == 4 else { throw MalformedError(description: "A record of \(length) bytes") }
                data = .address(bytes[dataStart..<dataStart + 4].map(String.init).joined(separator: "."))
            case .aaaa:
                guard length == 16 else { throw MalformedError(description: "AAAA record of \(length) bytes") }
                data = .address(Self.formatIPv6(Array(bytes[dataStart..<dataStart + 16])))
            case .srv:
                guard length >= 7 else { throw MalformedError(description: "SRV record of \(length) bytes") }
                data = .srv(priority: try uint16(), weight: try uint16(), port: try uint16(), target: try self.name())
            case .cname:
                data = .cname(try self.name())
            case nil:
                data = .other(type: type)
            }
            return DNSRecord(name: name, ttl: min(ttl, 0x7FFF_FFFF), data: data)
        }

        /// RFC 5952 text: lower-case hex groups, the longest run of two or more zero groups as `::`.
        static func formatIPv6(_ b: [UInt8]) -> String {
            let groups = (0..<8).map { Int(b[2 * $0]) << 8 | Int(b[2 * $0 + 1]) }
            var bestStart = -1, bestLength = 0, runStart = -1
            for i in 0...8 {
                if i < 8 && groups[i] == 0 {
                    if runStart < 0 { runStart = i }
                } else if runStart >= 0 {
                    if i - runStart > bestLength { bestStart = runStart; bestLength = i - runStart }
                    runStart = -1
                }
            }
            func hex(_ range: Range<Int>) -> String { range.map { String(groups[$0], radix: 16) }.joined(separator: ":") }
            guard bestLength >= 2 else { return hex(0..<8) }
            return hex(0..<bestStart) + "::" + hex((bestStart + bestLength)..<8)
        }
    }
}
