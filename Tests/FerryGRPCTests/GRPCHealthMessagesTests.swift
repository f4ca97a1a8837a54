import FerryGRPC
import NIOCore
import XCTest

final class GRPCHealthMessagesTests: XCTestCase {
    func testTheRequestIsAPrefixedHealthCheckRequest() {
        XCTAssertEqual(Array(buffer: GRPCHealthMessages.checkRequest(service: "")), [0, 0, 0, 0, 0], "the empty name: an empty message")
        XCTAssertEqual(Array(buffer: GRPCHealthMessages.checkRequest(service: "a.B")), [0, 0, 0, 0, 5, 0x0A, 3, 0x61, 0x2E, 0x42])
        let long = String(repeating: "x", count: 200)
        let framed = Array(buffer: GRPCHealthMessages.checkRequest(service: long))
        XCTAssertEqual(Array(framed[5..<8]), [0x0A, 0xC8, 0x01], "a length over 127 is a two-byte varint")
        XCTAssertEqual(framed.count, 5 + 3 + 200)
    }

    func testResponsesAreRead() {
        func decode(_ bytes: [UInt8]) -> Result<GRPCHealthMessages.ServingStatus, GRPCHealthMessages.DecodeError> {
            GRPCHealthMessages.decodeCheckResponse(ByteBuffer(bytes: bytes))
        }
        XCTAssertEqual(decode([0, 0, 0, 0, 2, 0x08, 1]), .success(.serving))
        XCTAssertEqual(decode([0, 0, 0, 0, 2, 0x08, 2]), .success(.notServing))
        XCTAssertEqual(decode([0, 0, 0, 0, 0]), .success(.unknown), "an absent field is its default, UNKNOWN")
        XCTAssertEqual(decode([0, 0, 0, 0, 7, 0x12, 3, 1, 2, 3, 0x08, 1]), .success(.serving), "unknown fields are skipped")
        XCTAssertEqual(decode([0, 0, 0, 0, 3, 0x08, 1]), .failure(.notOneMessage))
        XCTAssertEqual(decode([1, 0, 0, 0, 2, 0x08, 1]), .failure(.compressed))
        XCTAssertEqual(decode([0, 0, 0, 0, 2, 0x08, 0x80]), .failure(.malformed), "a varint cut short")
        XCTAssertEqual(decode([0, 0, 0, 0, 1, 0x0B]), .failure(.malformed), "wire type 3 is not used")
    }
}

final class GRPCHealthWatchTests: XCTestCase {
    func testWatchResponsesAreTakenOneWholeMessageAtATime() {
        var buffer = ByteBuffer(bytes: [0, 0, 0, 0, 2, 0x08, 1, 0, 0, 0])
        XCTAssertEqual(GRPCHealthMessages.nextWatchResponse(&buffer), .success(.serving))
        XCTAssertNil(GRPCHealthMessages.nextWatchResponse(&buffer), "a prefix not all there yet")
        buffer.writeBytes([0, 2, 0x08])
        XCTAssertNil(GRPCHealthMessages.nextWatchResponse(&buffer), "a message not all there yet")
        buffer.writeBytes([3])
        XCTAssertEqual(GRPCHealthMessages.nextWatchResponse(&buffer), .success(.serviceUnknown))
        XCTAssertEqual(buffer.readableBytes, 0)
        var empty = ByteBuffer(bytes: [0, 0, 0, 0, 0])
        XCTAssertEqual(GRPCHealthMessages.nextWatchResponse(&empty), .success(.unknown), "an empty message is status 0")
    }
}
