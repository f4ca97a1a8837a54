/// A recorded HTTP/2 conversation: the bytes each side sent, in order, with their timing.
///
/// File format, version 1 (text, one fixture per connection, diffable in review):
///
///     ferry-fixture 1
///     name: grpcio-unary-ok
///     client: grpcio 1.76.0
///     ---
///     > 0.000000 24
///     505249202a20485454502f322e300d0a0d0a534d0d0a0d0a
///     < 0.001250 42
///     000012040000000000...
///
/// After the version line come `key: value` metadata lines (and `#` comments) up to `---`.
/// Then records: a line `> SECONDS COUNT` (client to server) or `< SECONDS COUNT` (server to
/// client), SECONDS since the connection opened (kept to the microsecond, 0 to `maxSeconds`),
/// COUNT bytes; then the bytes in lower-case hex, 32 bytes (64 digits) per line. Records are in
/// the order the tap saw them.
public struct Fixture: Sendable, Equatable {
    public enum Direction: Sendable, Equatable {
        case clientToServer
        case serverToClient

        var marker: Character { self == .clientToServer ? ">" : "<" }
    }

    public struct Record: Sendable, Equatable {
        public var direction: Direction
        public var seconds: Double
        public var bytes: [UInt8]

        public init(direction: Direction, seconds: Double, bytes: [UInt8]) {
            self.direction = direction
            self.seconds = seconds
            self.bytes = bytes
        }
    }

    public struct FormatError: Error, CustomStringConvertible, Equatable {
        public let line: Int
        public let message: String
        public var description: String { "line \(line): \(message)" }
    }

    public static let version = 1
    /// The latest a record may be, in seconds since the connection opened (about 31 years).
    public static let maxSeconds: Double = 1_000_000_000

    public var metadata: [(key: String, value: String)]
    public var records: [Record]

    public init(metadata: [(key: String, value: String)] = [], records: [Record] = []) {
        self.metadata = metadata
        self.records = records
    }

    public static func == (a: Fixture, b: Fixture) -> Bool {
        a.records == b.records && a.metadata.map { "\($0.key)=\($0.value)" } == b.metadata.map { "\($0.key)=\($0.value)" }
    }

    public func value(_ key: String) -> String? { metadata.first { $0.key == key }?.value }

    /// All bytes one side sent, concatenated.
    public func bytes(_ direction: Direction) -> [UInt8] {
        records.filter { $0.direction == direction }.flatMap(\.bytes)
    }

    public func serialized() -> String {
        var out = "ferry-fixture \(Self.version)\n"
        for (key, value) in metadata { out += "\(key): \(value)\n" }
        out += "---\n"
        for record in records {
            out += "\(record.direction.marker) \(formatSeconds(record.seconds)) \(record.bytes.count)\n"
            var i = 0
            while i < record.bytes.count {
                let end = min(i + 32, record.bytes.count)
                out += hex(record.bytes[i..<end]) + "\n"
                i = end
            }
        }
        return out
    }

    public init(parsing text: String) throws {
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        guard let first = lines.first, first == "ferry-fixture \(Self.version)" else {
            throw FormatError(line: 1, message: "expected \"ferry-fixture \(Self.version)\"")
        }
        var index = 1
        var metadata: [(String, String)] = []
        while index < lines.count, lines[index] != "---" {
            let line = lines[index]
            index += 1
            if line.isEmpty || line.hasPrefix("#") { continue }
            guard let colon = line.firstIndex(of: ":") else {
                throw FormatError(line: index, message: "expected \"key: value\" or \"---\"")
            }
            metadata.append((String(line[..<colon]), String(line[line.index(after: colon)...]).trimmingLeadingSpaces()))
        }
        guard index < lines.count else { throw FormatError(line: index, message: "missing \"---\"") }
        index += 1
        var records: [Record] = []
        while index < lines.count {
            let header = lines[index]
            index += 1
            if header.isEmpty { continue }
            let parts = header.split(separator: " ")
            guard parts.count == 3, parts[0] == ">" || parts[0] == "<",
                  let written = Double(parts[1]), let count = Int(parts[2]), count >= 0 else {
                throw FormatError(line: index, message: "expected \"> SECONDS COUNT\" or \"< SECONDS COUNT\"")
            }
            guard written.isFinite, written >= 0, written <= Self.maxSeconds else {
                throw FormatError(line: index, message: "SECONDS must be from 0 to \(Int(Self.maxSeconds)), not \(parts[1])")
            }
            // Two hex digits a byte: a count the rest of the text cannot hold is an error now,
            // not an allocation of that size.
            guard count <= text.utf8.count / 2 else {
                throw FormatError(line: index, message: "COUNT \(count) is more bytes than the file holds")
            }
            // Kept to the microsecond, as written back.
            let seconds = (written * 1_000_000).rounded() / 1_000_000
            var bytes: [UInt8] = []
            bytes.reserveCapacity(count)
            while bytes.count < count {
                guard index < lines.count else { throw FormatError(line: index, message: "record ends early") }
                guard let chunk = unhex(lines[index]) else { throw FormatError(line: index + 1, message: "bad hex") }
                bytes += chunk
                index += 1
            }
            guard bytes.count == count else { throw FormatError(line: index, message: "record has \(bytes.count) bytes, header says \(count)") }
            records.append(Record(direction: parts[0] == ">" ? .clientToServer : .serverToClient, seconds: seconds, bytes: bytes))
        }
        self.metadata = metadata
        self.records = records
    }
}

/// Microseconds, written as SECONDS parses them (a value outside 0...maxSeconds as its bound).
private func formatSeconds(_ seconds: Double) -> String {
    let kept = seconds.isNaN ? 0 : min(max(seconds, 0), Fixture.maxSeconds)
    let micros = Int((kept * 1_000_000).rounded())
    let whole = micros / 1_000_000
    let fraction = String(micros % 1_000_000)
    return "\(whole)." + String(repeating: "0", count: 6 - fraction.count) + fraction
}

private let hexDigits = Array("0123456789abcdef".utf8)

func hex(_ bytes: ArraySlice<UInt8>) -> String {
    var out = [UInt8]()
    out.reserveCapacity(bytes.count * 2)
    for b in bytes {
        out.append(hexDigits[Int(b >> 4)])
        out.append(hexDigits[Int(b & 0xf)])
    }
    return String(decoding: out, as: UTF8.self)
}

private func unhex(_ line: String) -> [UInt8]? {
    let digits = Array(line.utf8)
    guard digits.count % 2 == 0 else { return nil }
    var out = [UInt8]()
    out.reserveCapacity(digits.count / 2)
    var i = 0
    while i < digits.count {
        guard let hi = nibble(digits[i]), let lo = nibble(digits[i + 1]) else { return nil }
        out.append(hi << 4 | lo)
        i += 2
    }
    return out
}

private func nibble(_ c: UInt8) -> UInt8? {
    switch c {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
    case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
    default: return nil
    }
}

extension String {
    func trimmingLeadingSpaces() -> String { String(drop(while: { $0 == " " })) }
}
