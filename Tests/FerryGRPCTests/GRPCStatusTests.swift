import FerryGRPC
import XCTest

final class GRPCStatusTests: XCTestCase {
    func testAllSeventeenCodesRoundTripByNameAndValue() {
        XCTAssertEqual(GRPCStatusCode.allCases.count, 17)
        for code in GRPCStatusCode.allCases {
            XCTAssertEqual(GRPCStatusCode(name: code.name), code)
            XCTAssertEqual(GRPCStatusCode(headerValue: String(code.rawValue)), code)
        }
        XCTAssertEqual(GRPCStatusCode.unavailable.name, "UNAVAILABLE")
    }

    func testMalformedStatusValuesAreRejected() {
        for bad in ["", "17", "-1", "01a", " 1", "100", "+1"] {
            XCTAssertNil(GRPCStatusCode(headerValue: bad), bad)
        }
    }

    func testResetCodeMapping() {
        XCTAssertEqual(GRPCStatusMapping.status(forResetCode: 0x7), .unavailable)
        XCTAssertEqual(GRPCStatusMapping.status(forResetCode: 0x8), .cancelled)
        XCTAssertEqual(GRPCStatusMapping.status(forResetCode: 0xb), .resourceExhausted)
        XCTAssertEqual(GRPCStatusMapping.status(forResetCode: 0xc), .permissionDenied)
        for code: UInt32 in [0x0, 0x1, 0x2, 0x3, 0x4, 0x6, 0x9, 0xa] {
            XCTAssertEqual(GRPCStatusMapping.status(forResetCode: code), .internal, "code \(code)")
        }
    }

    func testHTTPStatusMapping() {
        XCTAssertEqual(GRPCStatusMapping.status(forHTTPStatus: 400), .internal)
        XCTAssertEqual(GRPCStatusMapping.status(forHTTPStatus: 401), .unauthenticated)
        XCTAssertEqual(GRPCStatusMapping.status(forHTTPStatus: 403), .permissionDenied)
        XCTAssertEqual(GRPCStatusMapping.status(forHTTPStatus: 404), .unimplemented)
        for s in [429, 502, 503, 504] { XCTAssertEqual(GRPCStatusMapping.status(forHTTPStatus: s), .unavailable) }
        XCTAssertEqual(GRPCStatusMapping.status(forHTTPStatus: 500), .unknown)
    }

    func testMessagePercentEncoding() {
        XCTAssertEqual(GRPCMessageEncoding.encode("plain text"), "plain text")
        XCTAssertEqual(GRPCMessageEncoding.encode("a\tb\r\nc%"), "a%09b%0D%0Ac%25")
        XCTAssertEqual(GRPCMessageEncoding.encode("\u{e9}"), "%C3%A9")
        XCTAssertEqual(GRPCMessageEncoding.encode("\u{1F6A2}"), "%F0%9F%9A%A2")
    }

    func testMessageDecodingRoundTripsAndToleratesMalformedEscapes() {
        for message in ["", "ok", "tab\there", "line\nbreak\r", "\u{5931}\u{8D25}", "ship \u{1F6A2} 100%", "%41 literal"] {
            XCTAssertEqual(GRPCMessageEncoding.decode(GRPCMessageEncoding.encode(message)), message)
        }
        XCTAssertEqual(GRPCMessageEncoding.decode("bad %zz and %4"), "bad %zz and %4")
        XCTAssertEqual(GRPCMessageEncoding.decode("%41%42"), "AB")
    }

    func testTrailersOnlyResponseShape() {
        let fields = GRPCResponses.trailersOnly(.unavailable, message: "ferry: no endpoints")
        XCTAssertEqual(fields.map(\.0), [":status", "content-type", "grpc-status", "grpc-message"])
        XCTAssertEqual(fields[0].1, "200")
        XCTAssertEqual(fields[2].1, "14")
        XCTAssertEqual(GRPCResponses.trailers(.ok, message: "").map(\.0), ["grpc-status"])
    }

    func testGRPCContentTypeRecognition() {
        XCTAssertTrue(GRPCResponses.isGRPCContentType("application/grpc"))
        XCTAssertTrue(GRPCResponses.isGRPCContentType("application/grpc+proto"))
        XCTAssertTrue(GRPCResponses.isGRPCContentType("application/grpc;charset=utf-8"))
        XCTAssertFalse(GRPCResponses.isGRPCContentType("application/grpcx"))
        XCTAssertFalse(GRPCResponses.isGRPCContentType("application/json"))
    }

    func testStatusIsReadFromTheHeaderBytes() {
        XCTAssertEqual(GRPCHeaderValues.status("0".utf8), 0)
        XCTAssertEqual(GRPCHeaderValues.status("14".utf8), 14)
        XCTAssertEqual(GRPCHeaderValues.status("99".utf8), 99, "an unknown code is kept as a number")
        for bad in ["", "1000", "-1", "1a", " 1", "+1"] {
            XCTAssertNil(GRPCHeaderValues.status(bad.utf8), bad)
        }
    }

    func testContentTypeNamesGRPCOnlyWithACodecOrParametersAfterIt() {
        for good in ["application/grpc", "application/grpc+proto", "application/grpc;charset=utf-8"] {
            XCTAssertTrue(GRPCHeaderValues.isGRPCContentType(good.utf8), good)
            XCTAssertTrue(GRPCResponses.isGRPCContentType(good), good)
        }
        for bad in ["", "application/grp", "application/grpcx", "application/json", "text/application/grpc"] {
            XCTAssertFalse(GRPCHeaderValues.isGRPCContentType(bad.utf8), bad)
        }
    }

    func testRetryPushback() {
        XCTAssertEqual(GRPCHeaderValues.retryPushback(Optional<String.UTF8View>.none), .none)
        XCTAssertEqual(GRPCHeaderValues.retryPushback("250".utf8), .after(nanoseconds: 250_000_000))
        XCTAssertEqual(GRPCHeaderValues.retryPushback("0".utf8), .after(nanoseconds: 0))
        for refused in ["", "-1", "1.5", "abc", "12345678901"] {
            XCTAssertEqual(GRPCHeaderValues.retryPushback(refused.utf8), .refuse, refused)
        }
    }
}
