import CNghttp2
import FerryFixtures
@testable import FerryH2
import NIOCore
import NIOEmbedded
import XCTest

final class ServerReplay: H2ConnectionDelegate {
    var streams: [Int32: ReplayedStream] = [:]

    func connection(_ connection: H2Connection, didOpen stream: H2Stream) {
        let replayed = ReplayedStream()
        streams[stream.id] = replayed
        stream.delegate = replayed
    }
}

/// Every recorded fixture replayed through Ferry's framing layer: each side's bytes must yield
/// exactly the stream events an independent decoder (fixtures/expect.py) found in them.
final class FixtureReplayTests: XCTestCase {
    func testThereAreAtLeast25FixturesAndEachParsesAndRoundTrips() throws {
        let names = try fixtureNames()
        XCTAssertGreaterThanOrEqual(names.count, 25)
        for name in names {
            let text = try readFile(fixturesDirectory.appendingPathComponent("\(name).fixture").path)
            let fixture = try Fixture(parsing: text)
            XCTAssertEqual(fixture.serialized(), text, "\(name): the format does not round-trip")
            XCTAssertFalse(fixture.records.isEmpty, name)
            let frames = try decodeFrames(fixture)
            XCTAssertFalse(frames.isEmpty, name)
            XCTAssertEqual(try loadExpectation(name).fixture, "\(name).fixture")
        }
    }

    /// (1) The client's recorded bytes into a server-role connection.
    func testClientSideThroughTheServerRoleLayer() throws {
        for name in try fixtureNames() {
            let fixture = try loadFixture(name)
            let expected = try loadExpectation(name)
            let replay = ServerReplay()
            let channel = EmbeddedChannel(handler: H2Connection(role: .server, settings: replaySettings, delegate: replay))
            try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
            for record in fixture.records where record.direction == .clientToServer {
                try channel.writeInbound(buffer(record.bytes))
                channel.embeddedEventLoop.run()
            }
            for (id, summary) in expected.client where summary.headers != nil {
                guard let stream = replay.streams[Int32(id)!] else {
                    XCTFail("\(name): stream \(id) was never delivered")
                    continue
                }
                stream.check(against: summary, "\(name) client stream \(id)")
            }
            XCTAssertEqual(Set(replay.streams.keys.map(String.init)), Set(expected.client.filter { $0.value.headers != nil }.keys),
                           "\(name): streams delivered")
            _ = try? channel.finish(acceptAlreadyClosed: true)
        }
    }

    /// (2) The server's recorded bytes into a client-role connection that opened the same
    /// streams (same ids, same request headers).
    func testServerSideThroughTheClientRoleLayer() throws {
        for name in try fixtureNames() {
            let fixture = try loadFixture(name)
            let expected = try loadExpectation(name)
            let connection = H2Connection(role: .client, settings: replaySettings)
            let channel = EmbeddedChannel(handler: connection)
            try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
            var streams: [Int32: ReplayedStream] = [:]
            for (id, summary) in expected.client.sorted(by: { Int($0.key)! < Int($1.key)! }) {
                guard let headers = summary.headers else { continue }
                let replayed = ReplayedStream()
                XCTAssertTrue(connection.setNextStreamID(Int32(id)!), "\(name): stream id \(id)")
                let stream = connection.openStream(headers: H2Headers(headers.map { ($0[0], $0[1]) }),
                                                   endStream: summary.end_stream, delegate: replayed)
                XCTAssertEqual(stream?.id, Int32(id)!, "\(name): stream id")
                streams[Int32(id)!] = replayed
            }
            // The recorded server acknowledges every SETTINGS frame the recorded client sent: send
            // as many (empty ones beyond our first) so each of its ACKs has one to match.
            let clientSettings = try decodeFrames(fixture).filter {
                $0.direction == .clientToServer && $0.frame.type == FrameType.settings && $0.frame.flags & 0x1 == 0
            }.count
            for _ in 1..<max(1, clientSettings) { nghttp2_submit_settings(connection.session, 0, nil, 0) }
            connection.flushNow()
            channel.embeddedEventLoop.run()
            while try channel.readOutbound(as: ByteBuffer.self) != nil {}
            for record in fixture.records where record.direction == .serverToClient {
                try channel.writeInbound(buffer(record.bytes))
                channel.embeddedEventLoop.run()
            }
            for (id, replayed) in streams {
                if let summary = expected.server[String(id)] {
                    replayed.check(against: summary, "\(name) server stream \(id)")
                } else {
                    XCTAssertNil(replayed.headers, "\(name): stream \(id) got a response the server never sent")
                }
            }
            _ = try? channel.finish(acceptAlreadyClosed: true)
        }
    }
}
