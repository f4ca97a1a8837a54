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
}
