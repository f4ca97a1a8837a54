import FerryConfig
import XCTest

final class RoutingConfigTests: XCTestCase {
    private func parse(_ yaml: String) throws -> FerryConfig { try ConfigLoader.parse(yaml: yaml, source: "r.yaml", directory: "/etc/ferry") }

    private func error(_ yaml: String) -> ConfigError? {
        do { _ = try parse(yaml); return nil } catch let e as ConfigError { return e } catch { XCTFail("\(error)"); return nil }
    }

    private let services = """
    services:
      a: {endpoints: ["127.0.0.1:1"]}
      b: {endpoints: ["127.0.0.1:2"]}
      c: {endpoints: ["127.0.0.1:3"]}
      d: {endpoints: ["127.0.0.1:4"]}
      e: {endpoints: ["127.0.0.1:5"]}
    """

    private func table(_ routes: String) throws -> (RouteTable, [RouteConfig]) {
        let config = try parse("listeners:\n  - name: l\n    address: 127.0.0.1:9\n    routes:\n\(routes)\n\(services)")
        return (RouteTable(config.listeners[0].routes), config.listeners[0].routes)
    }

    private func service(_ t: (RouteTable, [RouteConfig]), _ authority: String, _ path: String) -> String? {
        t.0.match(authority: authority, path: path).map { t.1[$0].target }
    }

    func testMostSpecificAuthorityThenPathWins() throws {
        let t = try table("""
              - {match: {authority: "*.svc.cluster.local"}, service: a}
              - {match: {authority: "*.default.svc.cluster.local"}, service: b}
              - {match: {authority: "greeter.default.svc.cluster.local"}, service: c}
              - {match: {authority: "greeter.default.svc.cluster.local:8080", method: "helloworld.Greeter/SayHello"}, service: d}
              - {service: e}
        """)
        XCTAssertEqual(service(t, "x.svc.cluster.local", "/p"), "a")
        XCTAssertEqual(service(t, "x.default.svc.cluster.local:80", "/p"), "b", "the longer wildcard suffix wins")
        XCTAssertEqual(service(t, "GREETER.default.svc.cluster.local.", "/p"), "c", "hosts compare case-insensitively, a trailing dot ignored")
        XCTAssertEqual(service(t, "greeter.default.svc.cluster.local:8080", "/helloworld.Greeter/SayHello"), "d")
        XCTAssertEqual(service(t, "greeter.default.svc.cluster.local:8081", "/helloworld.Greeter/SayHello"), "c", "the port must match when given")
        XCTAssertEqual(service(t, "greeter.default.svc.cluster.local:8080", "/helloworld.Greeter/SayHi"), "c")
        XCTAssertEqual(service(t, "svc.cluster.local", "/p"), "e", "a wildcard needs at least one label before its suffix")
        XCTAssertEqual(service(t, "other", "/p"), "e")
        XCTAssertEqual(service(t, "", "/p"), "e")
    }

    func testPathPatternsByPrecedence() throws {
        let t = try table("""
              - {match: {path_prefix: "/"}, service: a}
              - {match: {path_prefix: "/api/"}, service: b}
              - {match: {method: "pkg.S/*"}, service: c}
              - {match: {method: "pkg.S/M"}, service: d}
        """)
        XCTAssertEqual(service(t, "h", "/pkg.S/M"), "d")
        XCTAssertEqual(service(t, "h", "/pkg.S/Other"), "c")
        XCTAssertEqual(service(t, "h", "/pkg.S/Mx"), "c", "an exact method does not match by prefix")
        XCTAssertEqual(service(t, "h", "/api/v1/things"), "b")
        XCTAssertEqual(service(t, "h", "/index.html"), "a")
        XCTAssertNil(service(t, "h", "relative"), "no default route: nothing matches")
        XCTAssertEqual(RouteTable.precedence(t.1), [3, 2, 1, 0])
    }

    func testIPv6AuthoritiesAndPorts() throws {
        let t = try table("""
              - {match: {authority: "[::1]:8080"}, service: a}
              - {match: {authority: "[::1]"}, service: b}
        """)
        XCTAssertEqual(service(t, "[::1]:8080", "/"), "a")
        XCTAssertEqual(service(t, "[::1]:9", "/"), "b")
        XCTAssertEqual(service(t, "[::1]", "/"), "b")
    }

    func testAmbiguousRoutesAreErrorsNamingBoth() throws {
        let e = try XCTUnwrap(error("""
        listeners:
          - name: l
            address: 127.0.0.1:9
            service: a
            routes:
              - {match: {authority: "x", method: "p.S/*"}, service: a}
              - {match: {authority: "X", method: "p.S/*"}, service: b}
        \(services)
        """))
        XCTAssertEqual(e.key, "listeners[0].routes[1]")
        XCTAssertEqual(e.line, 7)
        XCTAssertTrue(e.message.contains("listeners[0].routes[0]"), e.message)

        let shorthand = try XCTUnwrap(error("""
        listeners:
          - name: l
            address: 127.0.0.1:9
            service: a
            routes:
              - {service: b}
        \(services)
        """))
        XCTAssertEqual(shorthand.key, "listeners[0].service", "the shorthand is the default route, and so is an empty match")
    }

    func testBadPatternsAreLocated() throws {
        for (route, key, fragment) in [
            ("{match: {method: \"nopath\"}, service: a}", "listeners[0].routes[0].match.method", "package.Service/Method"),
            ("{match: {method: \"p.S/M*\"}, service: a}", "listeners[0].routes[0].match.method", "whole method name"),
            ("{match: {authority: \"a.*.b\"}, service: a}", "listeners[0].routes[0].match.authority", "host"),
            ("{match: {authority: \"a:99999\"}, service: a}", "listeners[0].routes[0].match.authority", "port"),
            ("{match: {path_prefix: \"api\"}, service: a}", "listeners[0].routes[0].match.path_prefix", "starts with '/'"),
            ("{match: {method: \"p.S/M\", path_prefix: \"/x\"}, service: a}", "listeners[0].routes[0].match.path_prefix", "not both"),
            ("{match: {methd: \"p.S/M\"}, service: a}", "listeners[0].routes[0].match.methd", "did you mean \"method\""),
            ("{service: zz}", "listeners[0].routes[0].service", "no service named \"zz\""),
        ] {
            let e = try XCTUnwrap(error("listeners:\n  - name: l\n    address: 127.0.0.1:9\n    routes:\n      - \(route)\n\(services)"), route)
            XCTAssertEqual(e.key, key, route)
            XCTAssertEqual(e.line, 5, route)
            XCTAssertTrue(e.message.contains(fragment), "\(route): \(e.message)")
        }
        let none = try XCTUnwrap(error("listeners:\n  - name: l\n    address: 127.0.0.1:9\n\(services)"))
        XCTAssertEqual(none.key, "listeners[0]")
        XCTAssertTrue(none.message.contains("\"service\""), none.message)
    }

    func testMethodPoliciesInheritServiceThenWholeService() throws {
        let config = try parse("""
        listeners: [{name: l, address: "127.0.0.1:9", service: s}]
        services:
          s:
            endpoints: ["127.0.0.1:1"]
            timeout: 2s
            max_message_size: 1MiB
            methods:
              - match: pkg.Greeter/SayHello
                deadline_offset: 5ms
              - match: pkg.Greeter/*
                timeout: 300ms
              - match: pkg.Other/Get
                max_message_size: 4KiB
        """)
        let s = try XCTUnwrap(config.service(named: "s"))
        XCTAssertEqual(s.policy.timeout, .seconds(2))
        let byPattern = Dictionary(uniqueKeysWithValues: s.methods.map { ("\($0.match)", $0.policy) })
        let hello = try XCTUnwrap(byPattern["method pkg.Greeter/SayHello"])
        XCTAssertEqual(hello.timeout, .milliseconds(300), "an exact method inherits its service's pkg.Greeter/* entry")
        XCTAssertEqual(hello.deadlineOffset, .milliseconds(5))
        XCTAssertEqual(hello.maxMessageSize, 1 << 20, "and through it, the service")
        XCTAssertEqual(hello.origin, "services.s.methods[0]")
        let other = try XCTUnwrap(byPattern["method pkg.Other/Get"])
        XCTAssertEqual(other.timeout, .seconds(2))
        XCTAssertEqual(other.maxMessageSize, 4096)

        let table = MethodTable(s.methods)
        XCTAssertEqual(table.match(path: "/pkg.Greeter/SayHello").map { s.methods[$0].policy.origin }, "services.s.methods[0]")
        XCTAssertEqual(table.match(path: "/pkg.Greeter/Other").map { s.methods[$0].policy.origin }, "services.s.methods[1]")
        XCTAssertNil(table.match(path: "/pkg.Greeter/"), "an empty method name is no method")
        XCTAssertNil(table.match(path: "/pkg.Other/Put"))

        let dup = try XCTUnwrap(error("""
        listeners: [{name: l, address: "127.0.0.1:9", service: s}]
        services:
          s:
            endpoints: ["127.0.0.1:1"]
            methods:
              - {match: p.S/M, timeout: 1s}
              - {match: p.S/M, timeout: 2s}
        """))
        XCTAssertEqual(dup.key, "services.s.methods[1].match")
        XCTAssertTrue(dup.message.contains("services.s.methods[0]"), dup.message)
    }

    func testDiscoveryConfigurations() throws {
        let config = try parse("""
        listeners: [{name: l, address: "127.0.0.1:9", service: f}]
        services:
          f: {discovery: {file: endpoints.yaml}}
          g: {discovery: {file: {path: /var/run/g.json, interval: 250ms}}}
          h: {discovery: {dns: {name: h.test, port: 8080, resolver: "127.0.0.1:5353", min_ttl: 2s}}}
          i: {discovery: {dns: {name: _grpc._tcp.i.test, record: srv}}}
        """)
        XCTAssertEqual(config.service(named: "f")?.discovery, .file(FileDiscoveryConfig(path: "/etc/ferry/endpoints.yaml")))
        guard case .file(let g)? = config.service(named: "g")?.discovery else { return XCTFail() }
        XCTAssertEqual(g.interval, .milliseconds(250))
        guard case .dns(let h)? = config.service(named: "h")?.discovery else { return XCTFail() }
        XCTAssertEqual(h.recordType, .addresses)
        XCTAssertEqual(h.resolver, HostPort(host: "127.0.0.1", port: 5353))
        XCTAssertEqual(h.minTTL, .seconds(2))
        guard case .dns(let i)? = config.service(named: "i")?.discovery else { return XCTFail() }
        XCTAssertEqual(i.recordType, .srv)

        for (service, key, fragment) in [
            ("{discovery: {dns: {name: h.test}}}", "services.x.discovery.dns", "port"),
            ("{discovery: {dns: {name: \"bad name\", port: 1}}}", "services.x.discovery.dns.name", "DNS name"),
            ("{discovery: {dns: {name: h.test, record: MX, port: 1}}}", "services.x.discovery.dns.record", "SRV"),
            ("{discovery: {dns: {name: h.test, record: SRV, port: 1}}}", "services.x.discovery.dns.port", "own ports"),
            ("{discovery: {dns: {name: h.test, port: 1, min_ttl: 10s, max_ttl: 1s}}}", "services.x.discovery.dns.min_ttl", "above max_ttl"),
            ("{endpoints: [\"127.0.0.1:1\"], discovery: {file: x}}", "services.x.discovery", "not both"),
            ("{timeout: 1s}", "services.x", "\"endpoints\" or \"discovery\""),
        ] {
            let e = try XCTUnwrap(error("listeners: [{name: l, address: \"127.0.0.1:9\", service: x}]\nservices:\n  x: \(service)"), service)
            XCTAssertEqual(e.key, key, service)
            XCTAssertTrue(e.message.contains(fragment), "\(service): \(e.message)")
        }
    }

    func testEndpointsFile() throws {
        XCTAssertEqual(try EndpointsFile.parse("- 127.0.0.1:1\n- {address: \"[::1]:2\", weight: 5}\n", source: "e.yaml"),
                       [EndpointConfig(address: HostPort(host: "127.0.0.1", port: 1)), EndpointConfig(address: HostPort(host: "::1", port: 2), weight: 5)])
        XCTAssertEqual(try EndpointsFile.parse(#"{"endpoints": ["10.0.0.1:80"]}"#, source: "e.json"),
                       [EndpointConfig(address: HostPort(host: "10.0.0.1", port: 80))])
        XCTAssertEqual(try EndpointsFile.parse("endpoints: []\n", source: "e.yaml"), [], "no endpoints right now is valid")
        XCTAssertEqual(try EndpointsFile.parse("", source: "e.yaml"), [])
        XCTAssertThrowsError(try EndpointsFile.parse("endpoints:\n  - 127.0.0.1:1\n  - 127.0.0.1:99999\n", source: "e.yaml")) { error in
            let e = error as? ConfigError
            XCTAssertEqual(e?.line, 3)
            XCTAssertEqual(e?.key, "endpoints[1]")
        }
    }
}
