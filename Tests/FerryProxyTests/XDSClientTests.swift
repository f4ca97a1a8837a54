import FerryConfig
@testable import FerryXDS
@testable import FerryXDSClient
import NIOCore
import XCTest

/// The xDS client's stream, on the call path harness: an in-memory ADS server (a scripted
/// upstream streaming both ways), virtual time, no socket.
final class XDSClientTests: XCTestCase {
    private let serverPort = 18000

    private final class Changes: @unchecked Sendable {
        var seen: [XDSResourceCache] = []
    }

    private func makeClient(_ net: CallPathHarness, _ changes: Changes) -> XDSClient {
        let config = XDSConfig(server: HostPort(host: "127.0.0.1", port: serverPort), node: .init(id: "node-1", cluster: "edge"))
        return XDSClient(config: config, eventLoop: net.loop, logger: net.logger, userAgent: "test", clock: net.clock,
                         connector: net.connector) { changes.seen.append($0) }
    }

    private let node: XDSNode = {
        var node = XDSNode(id: "node-1", cluster: "edge")
        node.userAgentVersion = "test"
        return node
    }()

    /// A STATIC cluster of one endpoint, written field by field.
    private func cluster(_ name: String, port: Int) -> [UInt8] {
        var socket = ProtoWriter()
        socket.string(2, "10.0.0.1")
        socket.varint(3, UInt64(port))
        var endpoint = ProtoWriter()
        endpoint.message(1) { address in address.bytesField(1, socket.bytes) }
        var lb = ProtoWriter()
        lb.bytesField(1, endpoint.bytes)
        var assignment = ProtoWriter()
        assignment.string(1, name)
        assignment.message(2) { locality in locality.bytesField(2, lb.bytes) }
        var cluster = ProtoWriter()
        cluster.string(1, name)
        cluster.bytesField(33, assignment.bytes)
        return cluster.bytes
    }

    private func response(_ type: XDSResourceType, version: String, nonce: String, _ resources: [[UInt8]]) -> ByteBuffer {
        var writer = ProtoWriter()
        writer.string(1, version)
        for resource in resources {
            writer.message(2) { any in
                any.string(1, type.typeURL)
                any.bytesField(2, resource)
            }
        }
        writer.string(4, type.typeURL)
        writer.string(5, nonce)
        return ByteBuffer(bytes: DiscoveryMessages.framed(writer.bytes))
    }

    private func request(_ type: XDSResourceType, version: String = "", nonce: String = "", node first: Bool = false) -> [UInt8] {
        DiscoveryMessages.framed(DiscoveryMessages.encode(ADSRequest(type: type, versionInfo: version, resourceNames: [], responseNonce: nonce,
                                                                     includesNode: first), node: node))
    }

    func testItSubscribesAcksAppliesAndResubscribesFromTheAcceptedVersionAfterTheServerEndsTheStream() {
        let net = CallPathHarness()
        let server = net.upstream(serverPort) { _ in .bidi }
        let changes = Changes()
        let client = makeClient(net, changes)
        client.start()
        net.pump()
        XCTAssertEqual(server.requests, [DiscoveryMessages.streamPath])
        XCTAssertEqual(server.lastHeaders?.first("content-type"), "application/grpc")
        XCTAssertEqual(Array(server.bodies[0].readableBytesView), request(.cluster, node: true) + request(.listener),
                       "clusters, then listeners, the node only in the first request")

        server.push(response(.cluster, version: "v1", nonce: "a", [cluster("echo", port: 8080)]))
        net.pump()
        XCTAssertEqual(changes.seen.count, 1)
        XCTAssertEqual(changes.seen.last?.clusters["echo"]?.service.discovery, .static([EndpointConfig(address: HostPort(host: "10.0.0.1", port: 8080))]))
        XCTAssertEqual(Array(server.bodies[0].readableBytesView.suffix(request(.cluster, version: "v1", nonce: "a").count)),
                       request(.cluster, version: "v1", nonce: "a"), "the ACK: the accepted version and its nonce")
        XCTAssertEqual(client.status.counts.accepted["CDS"], 1)
        XCTAssertTrue(client.status.counts.connected)

        server.endStreams(grpcStatus: 14)
        net.pump()
        XCTAssertFalse(client.status.counts.connected)
        net.advance(by: .milliseconds(790))
        XCTAssertEqual(server.requests.count, 1, "an answered stream reopens after 1 s (less 20% jitter at most), not before")
        net.advance(by: .milliseconds(500))
        XCTAssertEqual(server.requests.count, 2)
        XCTAssertEqual(Array(server.bodies[1].readableBytesView), request(.cluster, version: "v1", node: true) + request(.listener),
                       "a new stream asks again from the accepted version, with the node, without the old nonce")
        XCTAssertEqual(changes.seen.count, 1, "nothing changed by the reconnect")
        client.stop()
    }

    func testANACKedResponseChangesNothingAndAHostileMessageEndsTheStream() {
        let net = CallPathHarness()
        let server = net.upstream(serverPort) { _ in .bidi }
        let changes = Changes()
        let client = makeClient(net, changes)
        client.start()
        net.pump()
        server.push(response(.cluster, version: "v1", nonce: "a", [cluster("bad", port: 0)]))
        net.pump()
        XCTAssertEqual(changes.seen.count, 0)
        let sent = String(decoding: server.bodies[0].readableBytesView, as: UTF8.self)
        XCTAssertTrue(sent.contains(#"CDS version "v1" rejected: "bad": load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.port_value: must be from 1 to 65535, is 0"#), sent.filter { $0.isASCII && ($0.isLetter || $0.isPunctuation || $0 == " " || $0.isNumber) })
        XCTAssertEqual(client.status.counts.rejected["CDS"], 1)

        // A compressed message (Ferry asks for none): the stream ends, nothing is taken.
        server.push(ByteBuffer(bytes: [1, 0, 0, 0, 1, 0]))
        net.pump()
        XCTAssertEqual(server.resetsReceived, [.cancel])
        XCTAssertEqual(changes.seen.count, 0)
        net.advance(by: .seconds(3))
        XCTAssertEqual(server.requests.count, 2, "reconnected after the backoff")
        client.stop()
    }
}
