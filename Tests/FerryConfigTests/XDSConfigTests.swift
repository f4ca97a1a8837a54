import FerryConfig
import XCTest

/// The `xds` section: a control plane beside (or instead of) the file's listeners and services.
final class XDSConfigTests: XCTestCase {
    func testAnXDSSectionAloneIsAConfigurationAndEveryFieldDecodes() throws {
        let config = try ConfigLoader.parse(yaml: """
        xds:
          server: 127.0.0.1:18000
          node:
            id: ferry-1
            cluster: edge
            metadata: {role: sidecar, zone: a}
            locality: {region: eu, zone: eu-a}
          resource_timeout: 5s
        """, source: "ferry.yaml")
        let xds = try XCTUnwrap(config.xds)
        XCTAssertEqual(xds.server, HostPort(host: "127.0.0.1", port: 18000))
        XCTAssertEqual(xds.node.id, "ferry-1")
        XCTAssertEqual(xds.node.cluster, "edge")
        XCTAssertEqual(xds.node.metadata, ["role": "sidecar", "zone": "a"])
        XCTAssertEqual(xds.node.region, "eu")
        XCTAssertEqual(xds.node.zone, "eu-a")
        XCTAssertEqual(xds.resourceTimeout, .seconds(5))
        XCTAssertEqual(config.listeners, [], "listeners and services may all come from the control plane")
        XCTAssertEqual(config.services, [])
    }

    func testWithoutXDSListenersAndServicesAreStillRequired() {
        XCTAssertThrowsError(try ConfigLoader.parse(yaml: "runtime: {event_loops: 1}\n", source: "ferry.yaml")) { error in
            XCTAssertTrue("\(error)".contains("missing required key \"services\""), "\(error)")
        }
    }

    func testMistakesNameTheFileLineAndField() {
        let cases: [(String, String)] = [
            ("xds:\n  server: 127.0.0.1:18000\n  node: {id: \"\"}\n", "ferry.yaml:3:"),
            ("xds:\n  server: nowhere\n  node: {id: a}\n", "xds.server"),
            ("xds:\n  server: 127.0.0.1:1\n", "missing required key \"node\""),
            ("xds:\n  server: 127.0.0.1:1\n  node: {id: a, zone: b}\n", "xds.node.zone: unknown key"),
            ("xds:\n  server: 127.0.0.1:1\n  node: {id: a}\n  resource_timeout: 0s\n", "xds.resource_timeout"),
        ]
        for (yaml, expected) in cases {
            XCTAssertThrowsError(try ConfigLoader.parse(yaml: yaml, source: "ferry.yaml"), yaml) { error in
                XCTAssertTrue("\(error)".contains(expected), "\(yaml): \(error)")
            }
        }
    }
}
