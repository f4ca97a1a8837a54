import FerryConfig
import FerryPolicy
@testable import FerryXDS
import XCTest

/// Ferry's hand-written protobuf against bytes Envoy's own classes wrote (EnvoyEncodedMessages).
final class DiscoveryMessagesTests: XCTestCase {
    private let edsType = XDSResourceType.clusterLoadAssignment

    func testANACKIsByteForByteWhatEnvoysClassesWrite() {
        var node = XDSNode(id: "ferry~10.0.0.9~pod-1", cluster: "edge")
        node.metadata = ["NAMESPACE": "prod"]
        node.zone = "eu-a"
        node.userAgentVersion = "0.1.0"
        let request = ADSRequest(type: edsType, versionInfo: "v6", resourceNames: ["a", "echo"], responseNonce: "nonce-3",
                                 errorDetail: "EDS version \"v7\" rejected: endpoints[0]: bad", includesNode: true)
        XCTAssertEqual(DiscoveryMessages.encode(request, node: node), EnvoyEncodedMessages.nackRequest)
    }

    func testAnACKAfterTheFirstRequestCarriesNoNode() {
        let request = ADSRequest(type: .cluster, versionInfo: "v7", resourceNames: [], responseNonce: "n1")
        XCTAssertEqual(DiscoveryMessages.encode(request, node: XDSNode(id: "x", cluster: "y")), EnvoyEncodedMessages.ackRequest)
    }

    func testTheGRPCPrefixIsTheUncompressedFlagAndABigEndianLength() {
        XCTAssertEqual(DiscoveryMessages.framed(Array(repeating: 7, count: 0x0102)).prefix(5), [0, 0, 0, 1, 2])
    }

    func testAResponseIsDecodedDownToItsResourcesAndAWrappedOneKeepsItsName() throws {
        let response = try DiscoveryMessages.decodeResponse(EnvoyEncodedMessages.edsResponse[...]).get()
        XCTAssertEqual(response.versionInfo, "v7")
        XCTAssertEqual(response.nonce, "nonce-3")
        XCTAssertEqual(response.typeURL, edsType.typeURL)
        XCTAssertEqual(response.resources.map(\.name), [nil, "wrapped"])
        XCTAssertEqual(response.resources.map(\.typeURL), [edsType.typeURL, edsType.typeURL])
        let wrapped = try XDSEndpointAssignment.decode(response.resources[1].bytes).get()
        XCTAssertEqual(wrapped.clusterName, "wrapped")
        XCTAssertEqual(wrapped.endpoints, [EndpointConfig(address: HostPort(host: "::1", port: 7000))])
    }

    func testOnlyHealthyAndUnknownEndpointsOfTheBestPriorityGetTraffic() throws {
        let response = try DiscoveryMessages.decodeResponse(EnvoyEncodedMessages.edsResponse[...]).get()
        let echo = try XDSEndpointAssignment.decode(response.resources[0].bytes).get()
        XCTAssertEqual(echo.clusterName, "echo")
        XCTAssertEqual(echo.endpoints, [
            EndpointConfig(address: HostPort(host: "10.0.0.1", port: 8080), weight: 3),
            EndpointConfig(address: HostPort(host: "backend.eu-a.internal", port: 8081), weight: 1),
        ])
        XCTAssertEqual(echo.unhealthy, 2, "UNHEALTHY 10.0.0.2 and DRAINING 10.0.1.2")
        XCTAssertEqual(echo.standby, 1, "10.0.1.1 at priority 1")
    }

    func testABadEndpointIsNamedByItsPath() {
        guard case .failure(let problem) = XDSEndpointAssignment.decode(EnvoyEncodedMessages.badPortAssignment[...]) else {
            return XCTFail("port 0 accepted")
        }
        XCTAssertEqual(problem.description, "endpoints[0].lb_endpoints[1].endpoint.address.socket_address.port_value: must be from 1 to 65535, is 0")
    }

    func testTenThousandEndpointsAreTakenAndTooManyAreRefusedWhileCounting() throws {
        let big = XDSResourceCacheTests.assignment("big", endpoints: 10_000)
        let taken = try XDSEndpointAssignment.decode(big[...]).get()
        XCTAssertEqual(taken.endpoints.count, 10_000)
        XCTAssertEqual(taken.endpoints.first, EndpointConfig(address: HostPort(host: "10.1.2.3", port: 8443), weight: 2))

        var limits = XDSEndpointAssignment.Limits()
        limits.maxEndpoints = 5_000
        guard case .failure(let problem) = XDSEndpointAssignment.decode(big[...], limits: limits) else { return XCTFail("limit ignored") }
        XCTAssertEqual(problem.description, "endpoints[0].lb_endpoints: more than 5000 endpoints in one cluster")
    }

    func testEveryTruncationAndBitFlipOfARealResponseIsAnErrorOrAValueNeverACrash() {
        let bytes = EnvoyEncodedMessages.edsResponse
        var failures = 0
        for length in 0..<bytes.count {
            if case .failure = DiscoveryMessages.decodeResponse(bytes[..<length]) { failures += 1 }
        }
        XCTAssertGreaterThan(failures, bytes.count / 2, "most cuts break the message")
        var random = FastRandom(seed: 7)
        for _ in 0..<2_000 {
            var flipped = bytes
            let index = Int.random(in: 0..<flipped.count, using: &random)
            flipped[index] ^= UInt8(1) << UInt8.random(in: 0..<8, using: &random)
            if case .success(let response) = DiscoveryMessages.decodeResponse(flipped[...]) {
                for resource in response.resources { _ = XDSEndpointAssignment.decode(resource.bytes) }
            }
        }
    }

    func testTheWireReaderRefusesWhatProtobufDoesNotAllow() {
        func problem(_ bytes: [UInt8]) -> String? {
            if case .failure(let problem) = DiscoveryMessages.decodeResponse(bytes[...]) { return problem.description }
            return nil
        }
        XCTAssertEqual(problem([0x0A, 0x05, 0x61]), "DiscoveryResponse: field 1 says 5 bytes follow, 1 do")
        XCTAssertEqual(problem([0x08] + Array(repeating: 0xFF, count: 10) + [0x01]), "DiscoveryResponse: a varint is longer than 64 bits")
        XCTAssertEqual(problem([0x0B]), "DiscoveryResponse: field 1 has wire type 3, which Ferry does not read")
        XCTAssertEqual(problem([0x00, 0x00]), "DiscoveryResponse: field number 0 is out of range")
        XCTAssertEqual(problem([0x0A, 0x02, 0xC3, 0x28]), "DiscoveryResponse.version_info: is not valid UTF-8")
        XCTAssertEqual(problem([0x0D, 1, 2, 3, 4]), "DiscoveryResponse.version_info: expected a string, found a 32-bit value")
        XCTAssertEqual(problem([0x12, 0x02, 0x0A, 0x09]), "DiscoveryResponse.resources[0]: field 1 says 9 bytes follow, 0 do")
        XCTAssertNil(problem([0x30, 0x01, 0x3A, 0x00]), "unknown fields are skipped")
    }
}
