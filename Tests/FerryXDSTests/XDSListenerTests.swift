import FerryConfig
@testable import FerryXDS
import XCTest

/// Listeners written by Envoy's own classes (EnvoyEncodedMessages), taken into Ferry's terms.
final class XDSListenerTests: XCTestCase {
    private func problem(_ bytes: [UInt8]) -> String? {
        if case .failure(let problem) = XDSListener.decode(bytes[...]) { return problem.description }
        return nil
    }

    func testAnRDSListenerNamesItsRouteTableAndTakesItsHTTP2Settings() throws {
        let listener = try XDSListener.decode(EnvoyEncodedMessages.rdsListener[...]).get()
        XCTAssertEqual(listener.name, "ingress")
        XCTAssertEqual(listener.address, HostPort(host: "0.0.0.0", port: 15001))
        XCTAssertEqual(listener.routes, .rds("local"))
        XCTAssertEqual(listener.routeTableNames, ["local"])
        XCTAssertEqual(listener.http2.maxConcurrentStreams, 250)
        XCTAssertEqual(listener.http2.initialStreamWindow, 1 << 20)
        XCTAssertEqual(listener.http2.connectionWindow, HTTP2Config().connectionWindow)
        XCTAssertEqual(listener.ignored, ["http filter \"envoy.filters.http.cors\""])
    }

    func testAnInlineRouteTableIsTheSameAsOneByRDS() throws {
        let listener = try XDSListener.decode(EnvoyEncodedMessages.inlineListener[...]).get()
        let table = try XDSRouteTable.decode(EnvoyEncodedMessages.routeTable[...]).get()
        XCTAssertEqual(listener.routes, .inline(table))
        XCTAssertEqual(listener.routeTableNames, [])
    }

    func testWhatFerryCannotServeIsAProblemNamedByField() {
        XCTAssertEqual(problem(EnvoyEncodedMessages.http1Listener),
                       "filter_chains[0].filters[0].typed_config.codec_type: HTTP1 is not supported: Ferry serves HTTP/2")
        XCTAssertEqual(problem(EnvoyEncodedMessages.extraFilterListener),
                       "filter_chains[0].filters[0].typed_config.http_filters[0]: \"envoy.filters.http.fault\" is not supported (only the router is)")
        // A cluster sent as a listener: its field 2 is a varint (type), not an address.
        XCTAssertEqual(problem(EnvoyEncodedMessages.staticCluster), "address: expected a message, found a varint")
        XCTAssertEqual(problem([]), "name: is empty")
    }
}
