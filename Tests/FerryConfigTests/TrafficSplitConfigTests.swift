import FerryConfig
import XCTest

/// Routes by request header and routes that split their calls between services by weight.
final class TrafficSplitConfigTests: XCTestCase {
    private func parse(_ yaml: String) throws -> FerryConfig { try ConfigLoader.parse(yaml: yaml, source: "t.yaml", directory: "/etc/ferry") }

    private let services = """
    services:
      stable: {endpoints: ["127.0.0.1:1"]}
      canary: {endpoints: ["127.0.0.1:2"]}
      other: {endpoints: ["127.0.0.1:3"]}
    """

    private func routes(_ routes: String) throws -> [RouteConfig] {
        try parse("listeners:\n  - name: l\n    address: 127.0.0.1:9\n    routes:\n\(routes)\n\(services)").listeners[0].routes
    }

    private func error(_ routes: String) -> ConfigError? {
        do { _ = try self.routes(routes); return nil } catch let e as ConfigError { return e } catch { XCTFail("\(error)"); return nil }
    }

    func testHeaderMatchesAreMoreSpecificThanTheSameRouteWithout() throws {
        let r = try routes("""
              - {match: {method: "pkg.S/*"}, service: stable}
              - {match: {method: "pkg.S/*", headers: [{name: X-Canary, exact: "1"}]}, service: canary}
              - {match: {method: "pkg.S/*", headers: [{name: x-canary, exact: "1"}, {name: x-user, prefix: "test-"}]}, service: other}
              - {match: {headers: [{name: x-debug, present: true}]}, service: other}
        """)
        let table = RouteTable(r)
        func target(_ path: String, _ headers: [(String, String)]) -> String? {
            table.match(authority: "h", path: path, headers: headers).map { r[$0].target }
        }
        XCTAssertEqual(target("/pkg.S/M", []), "stable")
        XCTAssertEqual(target("/pkg.S/M", [("x-canary", "1")]), "canary", "names are lower case; the header route wins")
        XCTAssertEqual(target("/pkg.S/M", [("x-canary", "2")]), "stable", "exact means the whole value")
        XCTAssertEqual(target("/pkg.S/M", [("x-canary", "1"), ("x-user", "test-7")]), "other", "more headers: more specific")
        XCTAssertEqual(target("/pkg.S/M", [("x-canary", "1"), ("x-user", "prod-7")]), "canary", "every header of a route must match")
        XCTAssertEqual(target("/pkg.S/M", [("x-debug", "")]), "stable", "the path is more specific than headers")
        XCTAssertEqual(target("/elsewhere", [("x-debug", "")]), "other", "present: any value, even empty")
        XCTAssertNil(target("/elsewhere", []))
        XCTAssertEqual(r[1].match.description, "method pkg.S/*, header x-canary = \"1\"")
    }

    func testASplitNamesItsServicesWeightsAndShares() throws {
        let r = try routes("""
              - match: {method: "pkg.S/*"}
                split:
                  - {service: stable, weight: 90}
                  - {service: canary, weight: 10}
              - {split: [{service: stable, weight: 2}, {service: canary, weight: 1}, {service: other, weight: 0}]}
        """)
        XCTAssertEqual(r[0].backends, [WeightedService(service: "stable", weight: 90), WeightedService(service: "canary", weight: 10)])
        XCTAssertEqual(r[0].target, "split stable 90 (90%), canary 10 (10%)")
        XCTAssertEqual(r[1].target, "split stable 2 (66.7%), canary 1 (33.3%), other 0 (0%)")
        let config = try parse("listeners:\n  - name: l\n    address: 127.0.0.1:9\n    routes:\n"
                               + "      - {split: [{service: canary, weight: 1}, {service: stable, weight: 1}]}\n\(services)")
        XCTAssertEqual(config.listeners[0].serviceNames, ["canary", "stable"])
        XCTAssertTrue(ConfigSummary.lines(config).contains("  default -> split canary 1 (50%), stable 1 (50%)"), "\(ConfigSummary.lines(config))")
    }

    func testBadSplitsAndHeaderMatchesAreLocated() {
        let cases: [(String, String, String)] = [
            ("- {split: [{service: stable, weight: 0}, {service: canary, weight: 0}]}", "listeners[0].routes[0].split", "add up to 0"),
            ("- {split: [{service: stable, weight: 5}, {service: nope, weight: 1}]}", "listeners[0].routes[0].split[1].service", "no service named \"nope\""),
            ("- {split: [{service: stable, weight: 5}]}", "listeners[0].routes[0].split", "at least two services"),
            ("- {split: [{service: stable, weight: 5}, {service: stable, weight: 1}]}", "listeners[0].routes[0].split[1].service", "in this split twice"),
            ("- {split: [{service: stable, weight: -1}, {service: canary, weight: 1}]}", "listeners[0].routes[0].split[0].weight", "from 0 to 1000000"),
            ("- {split: [{service: stable}, {service: canary, weight: 1}]}", "listeners[0].routes[0].split[0]", "missing required key \"weight\""),
            ("- {service: stable, split: [{service: stable, weight: 1}, {service: canary, weight: 1}]}", "listeners[0].routes[0].split", "not both"),
            ("- {match: {method: \"a.B/*\"}}", "listeners[0].routes[0]", "needs \"service\""),
            ("- {match: {headers: [{name: x-a}]}, service: stable}", "listeners[0].routes[0].match.headers[0]", "one of \"exact\""),
            ("- {match: {headers: [{name: x-a, exact: b, prefix: c}]}, service: stable}", "listeners[0].routes[0].match.headers[0]", "one of \"exact\""),
            ("- {match: {headers: [{name: \":path\", exact: b}]}, service: stable}", "listeners[0].routes[0].match.headers[0].name", "pseudo-headers"),
            ("- {match: {headers: [{name: x-a, present: false}]}, service: stable}", "listeners[0].routes[0].match.headers[0].present", "not supported"),
            ("- {match: {headers: [{name: x-a, prefix: \"\"}]}, service: stable}", "listeners[0].routes[0].match.headers[0].prefix", "present: true"),
            ("- {match: {headers: [{name: x-a, exact: b}, {name: X-A, exact: c}]}, service: stable}", "listeners[0].routes[0].match.headers[1].name", "matched twice"),
        ]
        for (route, key, message) in cases {
            let e = error("      " + route)
            XCTAssertEqual(e?.file, "t.yaml", route)
            XCTAssertEqual(e?.key, key, route)
            XCTAssertTrue(e?.message.contains(message) ?? false, "\(route): \(e?.message ?? "no error")")
        }
    }

    func testTheSameHeadersInAnotherOrderAreTheSameMatch() {
        let e = error("""
              - {match: {headers: [{name: x-a, exact: "1"}, {name: x-b, present: true}]}, service: stable}
              - {match: {headers: [{name: x-b, present: true}, {name: x-a, exact: "1"}]}, service: canary}
        """)
        XCTAssertEqual(e?.key, "listeners[0].routes[1]")
        XCTAssertTrue(e?.message.contains("ambiguous") ?? false, e?.message ?? "no error")
    }
}

/// Rate limits on services and methods.
final class RateLimitConfigTests: XCTestCase {
    private func service(_ body: String) throws -> ServiceConfig {
        let yaml = "listeners: [{name: l, address: \"127.0.0.1:9\", service: s}]\nservices:\n  s:\n    endpoints: [\"127.0.0.1:1\"]\n" + body
        return try ConfigLoader.parse(yaml: yaml, source: "rl.yaml", directory: "/etc/ferry").services[0]
    }

    func testRatesPerPeriodWithBurstsAndNoInheritance() throws {
        let s = try service("""
            rate_limit: {rate: 100/s}
            methods:
              - {match: "pkg.S/*", rate_limit: {rate: "6000/m", burst: 20}}
              - {match: "pkg.S/Get", timeout: 1s}
              - {match: "pkg.S/Put", rate_limit: {rate: 5/100ms}}
        """)
        XCTAssertEqual(s.policy.rateLimit, RateLimitConfig(calls: 100, period: .seconds(1), burst: 100), "the burst defaults to a period's calls")
        XCTAssertEqual(s.methods[0].policy.rateLimit, RateLimitConfig(calls: 6000, period: .seconds(60), burst: 20))
        XCTAssertNil(s.methods.first { $0.match == .grpcMethod(service: "pkg.S", method: "Get") }?.policy.rateLimit,
                     "a method inherits its service's timeout and the rest, not its bucket")
        XCTAssertEqual(s.methods.first { $0.match == .grpcMethod(service: "pkg.S", method: "Put") }?.policy.rateLimit,
                       RateLimitConfig(calls: 5, period: .milliseconds(100), burst: 5))
        XCTAssertEqual(s.policy.rateLimit?.description, "100/s (burst 100)")
        XCTAssertEqual(s.methods[0].policy.rateLimit?.description, "6000/60s (burst 20)")
    }

    func testPerCallerLimits() throws {
        let limit = try XCTUnwrap(try service("    rate_limit: {rate: 10/s, per: caller, max_callers: 500}").policy.rateLimit)
        XCTAssertEqual(limit.per, .caller)
        XCTAssertEqual(limit.maxCallers, 500)
        XCTAssertEqual(limit.description, "10/s (burst 10) per caller")
        XCTAssertEqual(try service("    rate_limit: {rate: 10/s, per: all}").policy.rateLimit?.per, .all)
        XCTAssertEqual(try service("    rate_limit: {rate: 10/s, per: caller}").policy.rateLimit?.maxCallers, 10_000)
    }

    func testBadRatesAreLocated() {
        let cases: [(String, String, String)] = [
            ("rate_limit: {rate: 0/s}", "services.s.rate_limit.rate", "would refuse every call"),
            ("rate_limit: {rate: 100}", "services.s.rate_limit.rate", "calls per period"),
            ("rate_limit: {rate: ten/s}", "services.s.rate_limit.rate", "calls per period"),
            ("rate_limit: {rate: 10/fortnight}", "services.s.rate_limit.rate", "calls per period"),
            ("rate_limit: {rate: 10/48h}", "services.s.rate_limit.rate", "from 1ms to 24h"),
            ("rate_limit: {rate: 10/s, per: identity}", "services.s.rate_limit.per", "\"caller\" (one per verified client identity)"),
            ("rate_limit: {rate: 10/s, max_callers: 5}", "services.s.rate_limit.max_callers", "applies to \"per: caller\" only"),
            ("rate_limit: {rate: 10/s, burst: 0}", "services.s.rate_limit.burst", "from 1"),
            ("rate_limit: {burst: 3}", "services.s.rate_limit", "missing required key \"rate\""),
            ("methods: [{match: a.B/C, rate_limit: {rate: -1/s}}]", "services.s.methods[0].rate_limit.rate", "would refuse every call"),
        ]
        for (body, key, message) in cases {
            do {
                _ = try service("    " + body)
                XCTFail("accepted: \(body)")
            } catch let e as ConfigError {
                XCTAssertEqual(e.file, "rl.yaml", body)
                XCTAssertEqual(e.key, key, body)
                XCTAssertTrue(e.message.contains(message), "\(body): \(e.message)")
            } catch { XCTFail("\(error)") }
        }
    }
}

/// Fault injection on routes and methods.
final class FaultConfigTests: XCTestCase {
    private func parse(_ listener: String, _ service: String = "") throws -> FerryConfig {
        let yaml = "listeners:\n  - name: l\n    address: \"127.0.0.1:9\"\n    routes:\n\(listener)\nservices:\n  s:\n    endpoints: [\"127.0.0.1:1\"]\n\(service)"
        return try ConfigLoader.parse(yaml: yaml, source: "f.yaml", directory: "/etc/ferry")
    }

    func testRouteAndMethodFaults() throws {
        let config = try parse("""
              - {match: {method: "a.B/*"}, service: s, fault: {abort: {status: RESOURCE_EXHAUSTED, percent: 2.5}, delay: {duration: 100ms, percent: 10}}}
              - {service: s}
        """, """
            fault: {from_headers: true, max_header_delay: 2s}
            methods: [{match: "a.B/C", timeout: 1s}, {match: "a.B/D", fault: {abort: {http_status: 429, percent: 100}}}]
        """)
        let route = try XCTUnwrap(config.listeners[0].routes[0].fault)
        XCTAssertEqual(route.abort, FaultConfig.Abort(grpcStatus: .resourceExhausted, httpStatus: 503, percent: 2.5))
        XCTAssertEqual(route.delay, FaultConfig.Delay(duration: .milliseconds(100), percent: 10))
        XCTAssertEqual(route.origin, "listeners[0].routes[0].fault")
        XCTAssertEqual(route.description, "abort RESOURCE_EXHAUSTED (HTTP 503) 2.5%, delay 100ms 10%")
        let s = config.services[0]
        XCTAssertEqual(s.policy.fault?.fromHeaders, true)
        XCTAssertEqual(s.methods[0].policy.fault?.origin, "services.s.fault", "a method inherits its service's fault")
        XCTAssertEqual(s.methods[1].policy.fault?.abort?.httpStatus, 429)
        XCTAssertEqual(s.methods[1].policy.fault?.abort?.grpcStatus, .unavailable, "the default status")
    }

    func testBadFaultsAreLocated() {
        let cases: [(String, String, String)] = [
            ("fault: {}", "listeners[0].routes[0].fault", "injects nothing"),
            ("fault: {abort: {status: OK, percent: 1}}", "listeners[0].routes[0].fault.abort.status", "would not be a fault"),
            ("fault: {abort: {status: NOPE, percent: 1}}", "listeners[0].routes[0].fault.abort.status", "not a gRPC status"),
            ("fault: {abort: {percent: 101}}", "listeners[0].routes[0].fault.abort.percent", "from 0 to 100"),
            ("fault: {abort: {percent: lots}}", "listeners[0].routes[0].fault.abort.percent", "from 0 to 100"),
            ("fault: {abort: {status: UNAVAILABLE}}", "listeners[0].routes[0].fault.abort", "missing required key \"percent\""),
            ("fault: {abort: {percent: 1, http_status: 200}}", "listeners[0].routes[0].fault.abort.http_status", "from 400 to 599"),
            ("fault: {delay: {percent: 5}}", "listeners[0].routes[0].fault.delay", "missing required key \"duration\""),
            ("fault: {delay: {duration: 5, percent: 5}}", "listeners[0].routes[0].fault.delay.duration", "unit"),
        ]
        for (fault, key, message) in cases {
            do {
                _ = try parse("      - {service: s, \(fault)}")
                XCTFail("accepted: \(fault)")
            } catch let e as ConfigError {
                XCTAssertEqual(e.key, key, fault)
                XCTAssertTrue(e.message.contains(message), "\(fault): \(e.message)")
            } catch { XCTFail("\(error)") }
        }
    }
}

final class SlowStartConfigTests: XCTestCase {
    func testSlowStartAndItsBounds() throws {
        func service(_ body: String) throws -> ServiceConfig {
            let yaml = "listeners: [{name: l, address: \"127.0.0.1:9\", service: s}]\nservices:\n  s:\n    endpoints: [\"127.0.0.1:1\"]\n    " + body
            return try ConfigLoader.parse(yaml: yaml, source: "ss.yaml", directory: "/").services[0]
        }
        XCTAssertEqual(try service("slow_start: {window: 1m, min_weight: 5}").slowStart?.window, .seconds(60))
        XCTAssertEqual(try service("slow_start: {}").slowStart, SlowStartConfig())
        XCTAssertThrowsError(try service("slow_start: {min_weight: 0}")) { e in
            XCTAssertEqual((e as? ConfigError)?.key, "services.s.slow_start.min_weight")
        }
        XCTAssertThrowsError(try service("slow_start: {window: 10ms}")) { e in
            XCTAssertEqual((e as? ConfigError)?.key, "services.s.slow_start.window")
        }
    }
}

final class SuccessRateConfigTests: XCTestCase {
    private func accrual(_ body: String) throws -> FailureAccrualConfig {
        let yaml = "listeners: [{name: l, address: \"127.0.0.1:9\", service: s}]\nservices:\n  s:\n    endpoints: [\"127.0.0.1:1\"]\n"
            + "    failure_accrual: " + body
        return try ConfigLoader.parse(yaml: yaml, source: "sr.yaml", directory: "/").services[0].failureAccrual
    }

    func testSuccessRateSettingsAndDefaults() throws {
        XCTAssertNil(try accrual("{consecutive_failures: 5}").successRate, "off unless written")
        XCTAssertEqual(try accrual("{success_rate: true}").successRate, SuccessRateConfig())
        let rate = try XCTUnwrap(try accrual("{consecutive_failures: 0, success_rate: {interval: 30s, min_requests: 50, min_endpoints: 3, stdev_factor: 1, min_distance: 0}}").successRate)
        XCTAssertEqual(rate.interval, .seconds(30))
        XCTAssertEqual(rate.minRequests, 50)
        XCTAssertEqual(rate.minEndpoints, 3)
        XCTAssertEqual(rate.stdevFactor, 1)
        XCTAssertEqual(rate.minDistancePercent, 0)
    }

    func testBadSuccessRateSettingsNameTheirField() {
        for (body, key) in [("{success_rate: {stdev_factor: -1}}", "stdev_factor"), ("{success_rate: {stdev_factor: many}}", "stdev_factor"),
                            ("{success_rate: {min_endpoints: 1}}", "min_endpoints"), ("{success_rate: {min_requests: 0}}", "min_requests"),
                            ("{success_rate: {interval: 1ms}}", "interval"), ("{success_rate: {min_distance: 120}}", "min_distance"),
                            ("{success_rate: {window: 10s}}", "window")] {
            XCTAssertThrowsError(try accrual(body), body) { e in
                XCTAssertEqual((e as? ConfigError)?.key, "services.s.failure_accrual.success_rate.\(key)", body)
            }
        }
    }
}

final class PolicySummaryTests: XCTestCase {
    func testEverySettingSaysWhereItWasWrittenAfterInheritance() throws {
        let yaml = """
        listeners: [{name: l, address: "127.0.0.1:9", service: s}]
        services:
          s:
            endpoints: ["127.0.0.1:1"]
            timeout: 2s
            retry: {per_try_timeout: 500ms}
            methods:
              - {match: p.S/M, max_message_size: 1MiB, rate_limit: {rate: 5/s}}
              - {match: "p.S/*", timeout: 300ms, hedge: {delay: 50ms}}
        """
        let service = try ConfigLoader.parse(yaml: yaml, source: "s.yaml", directory: "/").services[0]
        let exact = try XCTUnwrap(service.methods.first { $0.match == .grpcMethod(service: "p.S", method: "M") })
        XCTAssertEqual(exact.policy.sources["timeout"], "services.s.methods[1]", "inherited from p.S/*")
        XCTAssertEqual(exact.policy.sources["retry"], "services.s")
        XCTAssertEqual(exact.policy.sources["max_message_size"], "services.s.methods[0]")
        XCTAssertNil(exact.policy.sources["deadline_offset"], "never written: the default")
        let wildcard = try XCTUnwrap(service.methods.first { $0.match == .grpcService("p.S") })
        XCTAssertNil(wildcard.policy.sources["rate_limit"], "a rate limit is not inherited, nor is its source")
        let lines = ConfigSummary.policySettings(exact.policy)
        XCTAssertEqual(lines.count, 10)
        XCTAssertEqual(lines[0], "    timeout 300ms  (services.s.methods[1])")
        XCTAssertEqual(lines[2], "    max_message_size 1MiB  (services.s.methods[0])")
        XCTAssertEqual(lines[7], "    hedge after 50ms, 2 attempts  (services.s.methods[1])")
        XCTAssertEqual(lines[8], "    rate_limit 5/s (burst 5)  (services.s.methods[0])")
    }

    func testSizesAndDurationsInTheirUnits() {
        XCTAssertEqual(ConfigSummary.formatSize(16 << 20), "16MiB")
        XCTAssertEqual(ConfigSummary.formatSize(65536), "64KiB")
        XCTAssertEqual(ConfigSummary.formatSize(1000), "1000")
        XCTAssertEqual(ConfigSummary.format(.seconds(720 * 3600)), "720h")
        XCTAssertEqual(ConfigSummary.format(.seconds(300)), "5m")
        XCTAssertEqual(ConfigSummary.format(.seconds(90)), "90s")
        XCTAssertEqual(ConfigSummary.format(.milliseconds(1)), "1ms")
    }
}
