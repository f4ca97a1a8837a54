/// The `grpc-timeout` header (gRPC over HTTP/2): 1 to 8 ASCII digits and one unit,
/// `H` hours, `M` minutes, `S` seconds, `m` milliseconds, `u` microseconds, `n` nanoseconds.
public struct GRPCTimeout: Sendable, Hashable, CustomStringConvertible {
    /// The timeout in nanoseconds. Values past `Int64.max` (about 292 years; the grammar allows
    /// up to 99,999,999 hours) saturate there: effectively no deadline.
    public let nanoseconds: Int64

    public init(nanoseconds: Int64) {
        self.nanoseconds = max(0, nanoseconds)
    }

    public enum ParseError: Error, Equatable, CustomStringConvertible {
        case empty
        case tooManyDigits
        case notADigit(UInt8)
        case missingUnit
        case unknownUnit(UInt8)

        public var description: String {
            switch self {
            case .empty: return "grpc-timeout is empty"
            case .tooManyDigits: return "grpc-timeout has more than 8 digits"
            case .notADigit(let b): return "grpc-timeout has a non-digit byte 0x\(String(b, radix: 16))"
            case .missingUnit: return "grpc-timeout has no unit"
            case .unknownUnit(let b): return "grpc-timeout has an unknown unit \"\(Character(Unicode.Scalar(b)))\""
            }
        }
    }

    /// Units from the finest to the coarsest, with their length in nanoseconds.
    static let units: [(symbol: UInt8, nanoseconds: Int64)] = [
        (UInt8(ascii: "n"), 1), (UInt8(ascii: "u"), 1_000), (UInt8(ascii: "m"), 1_000_000),
        (UInt8(ascii: "S"), 1_000_000_000), (UInt8(ascii: "M"), 60_000_000_000), (UInt8(ascii: "H"), 3_600_000_000_000),
    ]
    static let maxValue: Int64 = 99_999_999

    /// Parses a header value's bytes. Anything but 1-8 digits and a known unit is an error.
    public static func parse<Bytes: BidirectionalCollection>(_ bytes: Bytes) -> Result<GRPCTimeout, ParseError> where Bytes.Element == UInt8 {
        guard let unit = bytes.last else { return .failure(.empty) }
        let digits = bytes.dropLast()
        guard !digits.isEmpty else {
            return .failure((UInt8(ascii: "0")...UInt8(ascii: "9")).contains(unit) ? .missingUnit : .empty)
        }
        guard digits.count <= 8 else { return .failure(.tooManyDigits) }
        var value: Int64 = 0
        for byte in digits {
            guard (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) else { return .failure(.notADigit(byte)) }
            value = value * 10 + Int64(byte - UInt8(ascii: "0"))
        }
        guard let scale = units.first(where: { $0.symbol == unit })?.nanoseconds else {
            return (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(unit) ? .failure(.missingUnit) : .failure(.unknownUnit(unit))
        }
        let (product, overflow) = value.multipliedReportingOverflow(by: scale)
        return .success(GRPCTimeout(nanoseconds: overflow ? .max : product))
    }

    public static func parse(_ text: String) -> Result<GRPCTimeout, ParseError> {
        parse(Array(text.utf8))
    }

    /// The shortest exact encoding that fits 8 digits; if none is exact, the finest unit whose
    /// value rounded up fits (a propagated deadline is never made shorter by encoding, only
    /// longer by less than one unit). Every Int64 fits: `Int64.max` is about 2,562,048 hours.
    public var headerValue: String {
        // Exact forms: a coarser unit never needs more digits, so the coarsest exact one is shortest.
        var best: (value: Int64, symbol: UInt8)?
        for (symbol, scale) in Self.units where nanoseconds % scale == 0 && nanoseconds / scale <= Self.maxValue {
            best = (nanoseconds / scale, symbol)
        }
        if best == nil {
            for (symbol, scale) in Self.units {
                let value = nanoseconds / scale + (nanoseconds % scale == 0 ? 0 : 1)
                if value <= Self.maxValue {
                    best = (value, symbol)
                    break
                }
            }
        }
        let (value, symbol) = best ?? (Self.maxValue, UInt8(ascii: "H"))
        return String(value) + String(Character(Unicode.Scalar(symbol)))
    }

    public var description: String { headerValue }
}
