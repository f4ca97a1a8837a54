import FerryFixtures
import XCTest

/// The fixture format's answers to text that is not a fixture: a FormatError naming the line,
/// never a trap or an allocation the text asks for; and what parses writes back to itself.
final class FixtureFormatTests: XCTestCase {
    private func formatError(_ text: String, file: StaticString = #filePath, line: UInt = #line) -> Fixture.FormatError? {
        do {
            _ = try Fixture(parsing: text)
            XCTFail("parsed", file: file, line: line)
        } catch let error as Fixture.FormatError {
            return error
        } catch {
            XCTFail("\(error)", file: file, line: line)
        }
        return nil
    }

    /// Found by bench/fuzz's fixture target (its input is in bench/fuzz/corpus/fixture/crash-bc6090e6...):
    /// a record's COUNT was reserved before any byte was read, so a count of five trillion
    /// (written with leading zeros) asked AddressSanitizer for 5 TB.
    func testACountLargerThanTheFileIsAFormatErrorNotAnAllocation() {
        let error = formatError("ferry-fixture 1\nname: x\n---\n> 0.000388 0000000000000005020000000009\n0000\n")
        XCTAssertEqual(error?.line, 4)
        XCTAssertEqual(error?.message, "COUNT 5020000000009 is more bytes than the file holds")
    }

    /// SECONDS that writing back would trap on (not finite, beyond Int's microseconds) or write
    /// wrongly (negative) are refused with their line.
    func testSecondsMustBeFiniteAndInRange() {
        for seconds in ["inf", "nan", "-1", "-0.5", "1e300", "1000000001", "0x1p80"] {
            let error = formatError("ferry-fixture 1\n---\n< 0.5 1\n00\n> \(seconds) 1\n01\n")
            XCTAssertEqual(error?.line, 5, seconds)
            XCTAssertEqual(error?.message, "SECONDS must be from 0 to 1000000000, not \(seconds)", seconds)
        }
    }

    /// More digits than microseconds are kept to the microsecond, so what parses writes back
    /// to text that parses to the same fixture.
    func testSecondsAreKeptToTheMicrosecondSoTheyRoundTrip() throws {
        let fixture = try Fixture(parsing: "ferry-fixture 1\n---\n> 0.0000004 1\n00\n< 1.2345675 2\n0102\n> 1e3 0\n")
        XCTAssertEqual(fixture.records.map(\.seconds), [0, 1.234568, 1000])
        let written = fixture.serialized()
        XCTAssertEqual(written, "ferry-fixture 1\n---\n> 0.000000 1\n00\n< 1.234568 2\n0102\n> 1000.000000 0\n")
        XCTAssertEqual(try Fixture(parsing: written), fixture)
    }

    /// A record made in code with seconds no file may hold writes its nearest bound.
    func testWritingARecordOutsideTheRangeWritesItsBound() throws {
        let fixture = Fixture(records: [Fixture.Record(direction: .clientToServer, seconds: -3, bytes: [1]),
                                        Fixture.Record(direction: .serverToClient, seconds: .infinity, bytes: []),
                                        Fixture.Record(direction: .serverToClient, seconds: .nan, bytes: [])])
        XCTAssertEqual(fixture.serialized(), "ferry-fixture 1\n---\n> 0.000000 1\n01\n< 1000000000.000000 0\n< 0.000000 0\n")
    }

    func testOtherMalformedTextNamesItsLine() {
        XCTAssertEqual(formatError("ferry-fixture 2\n---\n")?.line, 1)
        XCTAssertEqual(formatError("ferry-fixture 1\nname\n---\n")?.line, 2)
        XCTAssertEqual(formatError("ferry-fixture 1\nname: x\n")?.message, "missing \"---\"")
        XCTAssertEqual(formatError("ferry-fixture 1\n---\n> 0.1 2\n0g\n")?.line, 4)
        XCTAssertEqual(formatError("ferry-fixture 1\n---\n> 0.1 4\n0102\n")?.message, "record ends early")
        XCTAssertEqual(formatError("ferry-fixture 1\n---\n> 0.1 1\n0102\n")?.message, "record has 2 bytes, header says 1")
        XCTAssertEqual(formatError("ferry-fixture 1\n---\n= 0.1 1\n01\n")?.line, 3)
    }
}
