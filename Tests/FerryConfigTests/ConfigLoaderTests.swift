import FerryConfig
import XCTest

final class ConfigLoaderTests: XCTestCase {
    let valid = """
    admin:
      address: 127.0.0.1:9990
    runtime:
      event_loops: 2
      drain_timeout: 5s
    listeners:
      - name: outbound
        address: 127.0.0.1:4140
        service: greeter
        max_deadline: 30s
        http2:
          max_concurrent_streams: 500
          initial_stream_window: 64KiB
    services:
      greeter:
        endpoints:
          - 127.0.0.1:50051
          - address: "[::1]:50052"
            weight: 3
        connect_timeout: 250ms
        idle_timeout: 2m
        max_connections_per_endpoint: 4
        timeout: 300ms
        deadline_offset: 5ms
    """

    func testValidConfigDecodesEveryField() throws {
        let config = try ConfigLoader.parse(yaml: valid, source: "ferry.yaml")
        XCTAssertEqual(config.admin?.address, HostPort(host: "127.0.0.1", port: 9990))
        XCTAssertEqual(config.runtime.eventLoops, 2)
        XCTAssertEqual(config.runtime.drainTimeout, .seconds(5))
        XCTAssertEqual(config.listeners.count, 1)
        XCTAssertEqual(config.listeners[0].http2.maxConcurrentStreams, 500)
        XCTAssertEqual(config.listeners[0].http2.initialStreamWindow, 65536)
        let greeter = try XCTUnwrap(config.service(named: "greeter"))
        XCTAssertEqual(greeter.staticEndpoints, [EndpointConfig(address: HostPort(host: "127.0.0.1", port: 50051), weight: 1),
                                           EndpointConfig(address: HostPort(host: "::1", port: 50052), weight: 3)])
        XCTAssertEqual(greeter.pool.connectTimeout, .milliseconds(250))
        XCTAssertEqual(greeter.pool.idleTimeout, .seconds(120))
        XCTAssertEqual(greeter.pool.maxConnectionsPerEndpoint, 4)
        XCTAssertEqual(greeter.policy.timeout, .milliseconds(300))
        XCTAssertEqual(greeter.policy.deadlineOffset, .milliseconds(5))
        XCTAssertEqual(config.listeners[0].maxDeadline, .seconds(30))
        XCTAssertEqual(config.listeners[0].routes, [RouteConfig(match: RouteMatch(), service: "greeter")])
        XCTAssertNil(ServiceConfig(name: "x", endpoints: []).policy.timeout, "no timeout unless configured")
    }

    private func error(_ yaml: String) -> ConfigError? {
        do {
            _ = try ConfigLoader.parse(yaml: yaml, source: "bad.yaml")
            return nil
        } catch let e as ConfigError {
            return e
        } catch {
            XCTFail("unexpected error type \(error)")
            return nil
        }
    }

    func testUnknownKeyNamesFileLineColumnAndSuggests() throws {
        let yaml = valid.replacingOccurrences(of: "    connect_timeout: 250ms", with: "    conect_timeout: 250ms")
        let e = try XCTUnwrap(error(yaml))
        XCTAssertEqual(e.file, "bad.yaml")
        XCTAssertEqual(e.line, 20)
        XCTAssertEqual(e.column, 5)
        XCTAssertEqual(e.key, "services.greeter.conect_timeout")
        XCTAssertTrue(e.message.contains("did you mean \"connect_timeout\""), e.message)
        XCTAssertTrue(e.description.hasPrefix("bad.yaml:20:5: services.greeter.conect_timeout: unknown key"), e.description)
    }

    func testBadValuesAreLocated() throws {
        let port = try XCTUnwrap(error(valid.replacingOccurrences(of: "127.0.0.1:50051", with: "127.0.0.1:70000")))
        XCTAssertEqual(port.key, "services.greeter.endpoints[0]")
        XCTAssertEqual(port.line, 17)
        XCTAssertTrue(port.message.contains("port"), port.message)

        let duration = try XCTUnwrap(error(valid.replacingOccurrences(of: "250ms", with: "250")))
        XCTAssertEqual(duration.key, "services.greeter.connect_timeout")
        XCTAssertTrue(duration.message.contains("unit"), duration.message)

        let window = try XCTUnwrap(error(valid.replacingOccurrences(of: "64KiB", with: "1KiB")))
        XCTAssertEqual(window.key, "listeners[0].http2.initial_stream_window")

        let pending = try XCTUnwrap(error(valid.replacingOccurrences(of: "    max_connections_per_endpoint: 4\n",
                                                                      with: "    max_connections_per_endpoint: 4\n    max_pending_calls: 0\n")))
        XCTAssertEqual(pending.key, "services.greeter.max_pending_calls")
        XCTAssertTrue(pending.message.contains("unreachable"), pending.message)
    }

    func testListenerConnectionLimitsDecodeWithDefaultsAndRanges() throws {
        let defaults = try ConfigLoader.parse(yaml: valid, source: "ferry.yaml").listeners[0]
        XCTAssertEqual(defaults.maxConnections, 10_000)
        XCTAssertEqual(defaults.handshakeTimeout, .seconds(10))
        XCTAssertEqual(defaults.idleTimeout, .seconds(300))
        XCTAssertEqual(HTTP2Config().maxConcurrentStreams, 100, "a client connection's default share of streams")

        let set = valid.replacingOccurrences(of: "    max_deadline: 30s\n",
                                             with: "    max_deadline: 30s\n    max_connections: 50\n    handshake_timeout: 2s\n    idle_timeout: false\n")
        let listener = try ConfigLoader.parse(yaml: set, source: "ferry.yaml").listeners[0]
        XCTAssertEqual(listener.maxConnections, 50)
        XCTAssertEqual(listener.handshakeTimeout, .seconds(2))
        XCTAssertNil(listener.idleTimeout, "false turns the idle timeout off")

        let zero = try XCTUnwrap(error(set.replacingOccurrences(of: "max_connections: 50", with: "max_connections: 0")))
        XCTAssertEqual(zero.key, "listeners[0].max_connections")
        XCTAssertEqual(zero.line, 11)
        let unitless = try XCTUnwrap(error(set.replacingOccurrences(of: "handshake_timeout: 2s", with: "handshake_timeout: 2")))
        XCTAssertEqual(unitless.key, "listeners[0].handshake_timeout")
        XCTAssertEqual(ConfigSummary.lines(try ConfigLoader.parse(yaml: set, source: "ferry.yaml"))[2],
                       "  limits: max_connections 50, max_concurrent_streams 500, handshake_timeout 2s, idle_timeout off")
    }

    func testUnknownServiceReferenceIsAnError() throws {
        let e = try XCTUnwrap(error(valid.replacingOccurrences(of: "service: greeter", with: "service: greter")))
        XCTAssertEqual(e.key, "listeners[0].service")
        XCTAssertEqual(e.line, 9)
        XCTAssertTrue(e.message.contains("no service named \"greter\""), e.message)
    }

    func testMissingRequiredKeysAndEmptyLists() throws {
        XCTAssertEqual(try XCTUnwrap(error("listeners: []\n")).message, "missing required key \"services\"")
        let noEndpoints = try XCTUnwrap(error("""
        listeners: [{name: a, address: "127.0.0.1:1", service: s}]
        services:
          s:
            endpoints: []
        """))
        XCTAssertEqual(noEndpoints.key, "services.s.endpoints")
    }

    func testDuplicateListenerAddressAndYAMLSyntaxErrors() throws {
        let dup = try XCTUnwrap(error("""
        listeners:
          - {name: a, address: "127.0.0.1:1", service: s}
          - {name: b, address: "127.0.0.1:1", service: s}
        services:
          s: {endpoints: ["127.0.0.1:2"]}
        """))
        XCTAssertEqual(dup.key, "listeners[1]")
        XCTAssertEqual(dup.line, 3)

        let syntax = try XCTUnwrap(error("listeners:\n  - name: [unclosed\n"))
        XCTAssertTrue(syntax.message.hasPrefix("YAML syntax"), syntax.message)
        XCTAssertGreaterThan(syntax.line, 0)
    }

    func testValueParsers() {
        XCTAssertEqual(try ConfigValues.parseDuration("1.5s").get(), .milliseconds(1500))
        XCTAssertEqual(try ConfigValues.parseDuration("100us").get(), .microseconds(100))
        XCTAssertThrowsError(try ConfigValues.parseDuration("-1s").get())
        XCTAssertThrowsError(try ConfigValues.parseDuration("5").get())
        XCTAssertEqual(try ConfigValues.parseSize("1MiB").get(), 1_048_576)
        XCTAssertEqual(try ConfigValues.parseSize("16KB").get(), 16_000)
        XCTAssertThrowsError(try ConfigValues.parseSize("lots").get())
        XCTAssertEqual(try HostPort.parse("[::1]:80").get(), HostPort(host: "::1", port: 80))
        XCTAssertThrowsError(try HostPort.parse("::1:80").get())
        XCTAssertThrowsError(try HostPort.parse("host").get())
    }
}

final class AddressAndSyntaxErrorTests: XCTestCase {
    private func problem(_ text: String) -> String? {
        if case .failure(let why) = HostPort.parse(text) { return why.description }
        return nil
    }

    func testAddressesThatCannotBeAnIPOrHostnameSayWhy() {
        XCTAssertEqual(problem("300.1.1.1:80"), "\"300.1.1.1\" is not an IPv4 address (four numbers from 0 to 255, such as 10.0.0.1)")
        XCTAssertEqual(problem("http://127.0.0.1:8410"), "an address is host:port, with no scheme: write \"127.0.0.1:8410\" for \"http://127.0.0.1:8410\"")
        XCTAssertEqual(problem("http://web.internal:80/path"), "an address is host:port, with no scheme: write \"web.internal:80\" for \"http://web.internal:80/path\"")
        XCTAssertTrue(problem("*:8440")?.contains("0.0.0.0:8440") == true)
        XCTAssertEqual(problem("[1::2::3]:80"), "\"1::2::3\" in brackets is not an IPv6 address")
        XCTAssertTrue(problem("bad_host!:80")?.contains("is not a hostname") == true)
        XCTAssertTrue(problem("-lead.example:80")?.contains("is not a hostname") == true)
        for fine in ["127.0.0.1:80", "[::1]:80", "[::]:4140", "0.0.0.0:1", "localhost:8080", "users.default.svc.cluster.local:4143", "h:1"] {
            XCTAssertNil(problem(fine), fine)
        }
    }

    func testYAMLSyntaxErrorsHintAtTheFix() throws {
        let star = "listeners:\n  - name: a\n    address: *:8440\n    service: s\n"
        XCTAssertThrowsError(try ConfigLoader.parse(yaml: star, source: "s.yaml")) { e in
            let error = e as? ConfigError
            XCTAssertEqual(error?.line, 3)
            XCTAssertTrue(error?.message.contains("quote it, such as \"*:8440\"") == true, "\(String(describing: error))")
        }
        let tab = "listeners:\n  - name: a\n\taddress: 127.0.0.1:1\n"
        XCTAssertThrowsError(try ConfigLoader.parse(yaml: tab, source: "t.yaml")) { e in
            let error = e as? ConfigError
            XCTAssertEqual(error?.line, 3)
            XCTAssertTrue(error?.message.contains("tab") == true && error?.message.contains("indent with spaces") == true, "\(String(describing: error))")
        }
    }
}
