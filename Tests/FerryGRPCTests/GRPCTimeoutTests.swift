import FerryGRPC
import XCTest

final class GRPCTimeoutTests: XCTestCase {
    func testParsesEveryUnit() throws {
        XCTAssertEqual(try GRPCTimeout.parse("1H").get().nanoseconds, 3_600_000_000_000)
        XCTAssertEqual(try GRPCTimeout.parse("2M").get().nanoseconds, 120_000_000_000)
        XCTAssertEqual(try GRPCTimeout.parse("3S").get().nanoseconds, 3_000_000_000)
        XCTAssertEqual(try GRPCTimeout.parse("100m").get().nanoseconds, 100_000_000)
        XCTAssertEqual(try GRPCTimeout.parse("7u").get().nanoseconds, 7_000)
        XCTAssertEqual(try GRPCTimeout.parse("99999999n").get().nanoseconds, 99_999_999)
        XCTAssertEqual(try GRPCTimeout.parse("0m").get().nanoseconds, 0)
        XCTAssertEqual(try GRPCTimeout.parse("00000001S").get().nanoseconds, 1_000_000_000)
        // The grammar's largest value is past Int64 nanoseconds: it saturates instead of overflowing.
        XCTAssertEqual(try GRPCTimeout.parse("99999999H").get().nanoseconds, .max)
        XCTAssertEqual(try GRPCTimeout.parse("2562047H").get().nanoseconds, 2_562_047 * 3_600_000_000_000)
    }

    func testRejectsMalformedValues() {
        let cases: [(String, GRPCTimeout.ParseError)] = [
            ("", .empty), ("S", .empty), ("100", .missingUnit), ("123456789S", .tooManyDigits),
            ("1s", .unknownUnit(UInt8(ascii: "s"))), ("1h", .unknownUnit(UInt8(ascii: "h"))),
            ("1.5S", .notADigit(UInt8(ascii: "."))), ("-1S", .notADigit(UInt8(ascii: "-"))),
            (" 1S", .notADigit(UInt8(ascii: " "))), ("+1S", .notADigit(UInt8(ascii: "+"))),
        ]
        for (text, expected) in cases {
            XCTAssertEqual(GRPCTimeout.parse(text), .failure(expected), text)
        }
    }

    func testEncodesTheShortestExactForm() {
        XCTAssertEqual(GRPCTimeout(nanoseconds: 0).headerValue, "0H")
        XCTAssertEqual(GRPCTimeout(nanoseconds: 1).headerValue, "1n")
        XCTAssertEqual(GRPCTimeout(nanoseconds: 100_000_000).headerValue, "100m")
        XCTAssertEqual(GRPCTimeout(nanoseconds: 1_000_000_000).headerValue, "1S")
        XCTAssertEqual(GRPCTimeout(nanoseconds: 90_000_000_000).headerValue, "90S")
        XCTAssertEqual(GRPCTimeout(nanoseconds: 120_000_000_000).headerValue, "2M")
        XCTAssertEqual(GRPCTimeout(nanoseconds: 7_200_000_000_000).headerValue, "2H")
        XCTAssertEqual(GRPCTimeout(nanoseconds: 1_500).headerValue, "1500n")
    }

    func testRoundsUpWhenNoExactFormFits() {
        // 123456789 ns needs 9 digits in ns; in us it is 123456.789, rounded up to 123457u.
        XCTAssertEqual(GRPCTimeout(nanoseconds: 123_456_789).headerValue, "123457u")
        // 100000000 s + 1 ns: far too many digits below S; the finest unit that fits is M, rounded up.
        XCTAssertEqual(GRPCTimeout(nanoseconds: 100_000_000 * 1_000_000_000 + 1).headerValue, "1666667M")
        // The largest Int64 rounds up to whole hours without overflowing.
        XCTAssertEqual(GRPCTimeout(nanoseconds: Int64.max).headerValue, "2562048H")
    }

    func testPropertyEncodeThenParseNeverShortensAndIsExactWhenItCanBe() throws {
        var random = SeededRandom(seed: 0xFE22)
        for _ in 0..<20_000 {
            let magnitude = Int64.random(in: 0...18, using: &random)
            var limit: Int64 = 1
            for _ in 0..<magnitude { limit *= 10 }
            let ns = Int64.random(in: 0...limit, using: &random)
            let timeout = GRPCTimeout(nanoseconds: ns)
            let text = timeout.headerValue
            XCTAssertLessThanOrEqual(text.utf8.count, 9, text)
            let parsed = try GRPCTimeout.parse(text).get()
            XCTAssertGreaterThanOrEqual(parsed.nanoseconds, ns, "\(ns) -> \(text)")
            if ns <= 99_999_999 {
                XCTAssertEqual(parsed.nanoseconds, ns, "\(ns) fits in nanoseconds, so it must round-trip exactly: \(text)")
            }
            // Longer by less than one unit of the chosen form, and a rounded form uses the finest
            // unit that fits: the next finer unit would have needed more than 8 digits.
            let scales: [Character: Int64] = ["n": 1, "u": 1_000, "m": 1_000_000, "S": 1_000_000_000,
                                              "M": 60_000_000_000, "H": 3_600_000_000_000]
            let order: [Character] = ["n", "u", "m", "S", "M", "H"]
            let unit = text.last!
            let scale = scales[unit]!
            XCTAssertLessThan(parsed.nanoseconds - ns, scale, "\(ns) -> \(text)")
            if parsed.nanoseconds != ns, let i = order.firstIndex(of: unit), i > 0 {
                let finer = scales[order[i - 1]]!
                let neededDigits = String(ns / finer + (ns % finer == 0 ? 0 : 1)).count
                XCTAssertGreaterThan(neededDigits, 8, "\(ns) -> \(text): a finer unit would have fit")
            }
        }
    }
}
