@testable import FerryH2
import XCTest

final class H2HeadersTests: XCTestCase {
    func testAppendAndLookUpKeepsOrderAndBytes() {
        var headers = H2Headers([(":status", "200"), ("content-type", "application/grpc")])
        headers.append(name: "x-bin-bin", value: "AAEC")
        XCTAssertEqual(headers.count, 3)
        XCTAssertEqual(headers.first(":status"), "200")
        XCTAssertEqual(headers.first("x-bin-bin"), "AAEC")
        XCTAssertNil(headers.first("missing"))
        XCTAssertTrue(headers.value(of: "content-type", hasPrefix: "application/grpc"))
        XCTAssertFalse(headers.value(of: "content-type", hasPrefix: "application/grpc-web-text"))
        XCTAssertEqual(headers.pairs.map(\.name), [":status", "content-type", "x-bin-bin"])
    }

    func testRemovingFiltersByRawName() {
        let headers = H2Headers([("a", "1"), ("connection", "close"), ("b", "2")])
        let kept = headers.removing { name in name.elementsEqual("connection".utf8) }
        XCTAssertEqual(kept.pairs.map(\.name), ["a", "b"])
        XCTAssertEqual(kept.first("b"), "2")
    }

    func testNonASCIIValuesSurviveAsBytes() {
        let headers = H2Headers([("grpc-message", "caf\u{e9} \u{1F6A2}")])
        XCTAssertEqual(headers.first("grpc-message"), "caf\u{e9} \u{1F6A2}")
        XCTAssertEqual(headers.byteCount, "grpc-message".utf8.count + "caf\u{e9} \u{1F6A2}".utf8.count)
    }

    func testReusingABlockNeverChangesACopySomeoneKept() {
        var block = H2Headers([(":status", "200"), ("content-type", "application/grpc")])
        let kept = block
        block.removeAll()
        block.append(name: "grpc-status", value: "0")
        XCTAssertEqual(kept.count, 2)
        XCTAssertEqual(kept.value(at: 1), "application/grpc")
        XCTAssertEqual(block.count, 1)
        XCTAssertEqual(block.name(at: 0), "grpc-status")
    }

    func testAppendingToACopyLeavesTheOriginalAsItWas() {
        var original = H2Headers([(":method", "POST")])
        var copy = original
        copy.append(name: ":path", value: "/a.B/C")
        XCTAssertEqual(original.count, 1)
        XCTAssertNil(original.first(":path"))
        XCTAssertEqual(copy.first(":path"), "/a.B/C")
        original.append(name: "te", value: "trailers")
        XCTAssertEqual(original.pairs.map(\.name), [":method", "te"])
        XCTAssertEqual(copy.pairs.map(\.name), [":method", ":path"])
    }

    func testABlockGrowsPastItsFirstBuffersKeepingEveryField() {
        var headers = H2Headers(capacity: 8)
        let value = String(repeating: "v", count: 100)
        for i in 0..<40 { headers.append(name: "x-field-\(i)", value: "\(i)" + value) }
        XCTAssertEqual(headers.count, 40)
        for i in [0, 11, 12, 13, 39] {
            XCTAssertEqual(headers.name(at: i), "x-field-\(i)")
            XCTAssertEqual(headers.value(at: i), "\(i)" + value)
        }
        XCTAssertEqual(headers.first("x-field-25"), "25" + value)
        XCTAssertEqual(headers.byteCount, (0..<40).reduce(0) { $0 + "x-field-\($1)".utf8.count + "\($1)".utf8.count + 100 })
        XCTAssertTrue(headers.value(of: "x-field-7", hasPrefix: "7vv"))
        XCTAssertFalse(headers.value(of: "x-field-7", hasPrefix: "8"))
    }

    func testEmptyNamesAndValuesAreFields() {
        var headers = H2Headers(capacity: 0)
        headers.append(name: "", value: "")
        headers.append(name: "x", value: "")
        XCTAssertEqual(headers.count, 2)
        XCTAssertEqual(headers.firstIndex(of: ""), 0)
        XCTAssertEqual(headers.first("x"), "")
        XCTAssertEqual(headers.byteCount, 1)
    }
}
