@testable import FerryDiscovery
import XCTest

/// Builds DNS answers byte by byte, the way a server writes them, and checks what the decoder reads.
final class DNSMessageTests: XCTestCase {
    private func u16(_ v: Int) -> [UInt8] { [UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)] }
    private func u32(_ v: Int) -> [UInt8] { u16(v >> 16) + u16(v & 0xFFFF) }
    private func name(_ n: String) -> [UInt8] { n.split(separator: ".").flatMap { [UInt8($0.utf8.count)] + Array($0.utf8) } + [0] }

    private func header(id: Int, flags: Int = 0x8180, qd: Int = 1, an: Int, ns: Int = 0, ar: Int = 0) -> [UInt8] {
        u16(id) + u16(flags) + u16(qd) + u16(an) + u16(ns) + u16(ar)
    }

    func testQueryEncoding() {
        let q = DNSMessage.query(id: 0x1234, name: "svc.test", type: .srv)
        XCTAssertEqual(q, [0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0] + name("svc.test") + [0, 33, 0, 1])
    }

    func testAAndAAAAAnswersWithCompressionPointers() throws {
        // Question at offset 12; answers name it with a pointer (0xC00C).
        var m = header(id: 7, an: 3) + name("Greeter.Test") + u16(1) + u16(1)
        m += [0xC0, 12] + u16(1) + u16(1) + u32(30) + u16(4) + [10, 0, 0, 7]
        m += [0xC0, 12] + u16(28) + u16(1) + u32(5) + u16(16) + [0x20, 0x01, 0x0d, 0xb8] + Array(repeating: 0, count: 11) + [1]
        m += [0xC0, 12] + u16(99) + u16(1) + u32(5) + u16(2) + [0, 0]
        let r = try DNSMessage.decode(m)
        XCTAssertEqual(r.id, 7)
        XCTAssertEqual(r.rcode, 0)
        XCTAssertEqual(r.answers, [
            DNSRecord(name: "greeter.test", ttl: 30, data: .address("10.0.0.7")),
            DNSRecord(name: "greeter.test", ttl: 5, data: .address("2001:db8::1")),
            DNSRecord(name: "greeter.test", ttl: 5, data: .other(type: 99)),
        ])
    }

    func testSRVWithGlueInTheAdditionalSection() throws {
        var m = header(id: 9, an: 1, ar: 1) + name("_grpc._tcp.svc") + u16(33) + u16(1)
        let target = name("a.svc")
        m += [0xC0, 12] + u16(33) + u16(1) + u32(60) + u16(6 + target.count) + u16(10) + u16(3) + u16(50051) + target
        m += name("a.svc") + u16(1) + u16(1) + u32(20) + u16(4) + [127, 0, 0, 2]
        let r = try DNSMessage.decode(m)
        XCTAssertEqual(r.answers, [DNSRecord(name: "_grpc._tcp.svc", ttl: 60, data: .srv(priority: 10, weight: 3, port: 50051, target: "a.svc"))])
        XCTAssertEqual(r.additionals, [DNSRecord(name: "a.svc", ttl: 20, data: .address("127.0.0.2"))])
    }

    func testNXDomainAndTruncationFlags() throws {
        let r = try DNSMessage.decode(header(id: 1, flags: 0x8383, an: 0) + name("nope.test") + u16(1) + u16(1))
        XCTAssertEqual(r.rcode, 3)
        XCTAssertTrue(r.truncated)
        XCTAssertTrue(r.answers.isEmpty)
    }

    func testHostileMessagesAreErrorsNotCrashes() {
        // A pointer to itself, a cut record, a query instead of a response, a label past the end.
        XCTAssertThrowsError(try DNSMessage.decode(header(id: 1, an: 0) + [0xC0, 12] + u16(1) + u16(1)))
        XCTAssertThrowsError(try DNSMessage.decode(header(id: 1, an: 1) + name("a") + u16(1) + u16(1) + [0xC0, 12] + u16(1)))
        XCTAssertThrowsError(try DNSMessage.decode(header(id: 1, flags: 0x0100, an: 0)))
        XCTAssertThrowsError(try DNSMessage.decode(header(id: 1, an: 0) + [40, 1, 2]))
        XCTAssertThrowsError(try DNSMessage.decode(header(id: 1, an: 1) + name("a") + u16(1) + u16(1) + name("a") + u16(1) + u16(1) + u32(1) + u16(3) + [1, 2, 3]))
        XCTAssertThrowsError(try DNSMessage.decode([1, 2, 3]))
    }

    func testIPv6Formatting() {
        func f(_ b: [UInt8]) -> String { DNSMessage.Reader.formatIPv6(b) }
        XCTAssertEqual(f(Array(repeating: 0, count: 15) + [1]), "::1")
        XCTAssertEqual(f(Array(repeating: 0, count: 16)), "::")
        XCTAssertEqual(f([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1]), "2001:db8:0:1::1")
        XCTAssertEqual(f([0x20, 0x01, 0, 0, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1]), "2001:0:1:1:1:1:1:1", "a single zero group is not shortened")
    }
}
