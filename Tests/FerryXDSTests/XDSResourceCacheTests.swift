import FerryConfig
@testable import FerryXDS
import XCTest

/// Resources Envoy's classes wrote, staged into the cache, checked across types, and built
/// into Ferry's configuration beside a file's.
final class XDSResourceCacheTests: XCTestCase {
    /// A DiscoveryResponse of `resources` (each an Any of `type`).
    static func response(_ type: XDSResourceType, version: String, nonce: String = "n", _ resources: [[UInt8]],
                         typeOfResources: String? = nil) -> XDSDiscoveryResponse {
        var writer = ProtoWriter()
        writer.string(1, version)
        for resource in resources {
            writer.message(2) { any in
                any.string(1, typeOfResources ?? type.typeURL)
                any.bytesField(2, resource)
            }
        }
        writer.string(4, type.typeURL)
        writer.string(5, nonce)
        return try! DiscoveryMessages.decodeResponse(writer.bytes[...]).get()
    }

    /// A ClusterLoadAssignment named `name` of `count` copies of Envoy's encoded endpoint (10.1.2.3:8443).
    static func assignment(_ name: String, endpoints count: Int) -> [UInt8] {
        var locality = ProtoWriter()
        for _ in 0..<count { locality.bytesField(2, EnvoyEncodedMessages.oneLbEndpoint) }
        var assignment = ProtoWriter()
        assignment.string(1, name)
        assignment.bytesField(2, locality.bytes)
        return assignment.bytes
    }

    /// Stages and, if nothing is wrong, commits as the state machine would.
    @discardableResult
    static func take(_ response: XDSDiscoveryResponse, into cache: inout XDSResourceCache) -> [String] {
        let staged = cache.stage(response)
        guard staged.response.problems.isEmpty, let type = XDSResourceType(rawValue: response.typeURL) else { return staged.response.problems }
        let held: [String]
        switch type {
        case .listener: held = Array(cache.listeners.keys)
        case .cluster: held = Array(cache.clusters.keys)
        case .routeConfiguration, .clusterLoadAssignment: held = []
        }
        let removed = type.responsesAreComplete ? held.filter { !staged.response.resourceNames.contains($0) } : []
        cache.commit(staged, ADSResourceUpdate(type: type, versionInfo: response.versionInfo, updated: staged.response.resourceNames, removed: removed))
        return []
    }

    func testAcceptedResourcesAreHeldAndNameTheRouteTablesAndAssignmentsToAskForNext() {
        var cache = XDSResourceCache()
        XCTAssertEqual(Self.take(Self.response(.cluster, version: "1", [EnvoyEncodedMessages.edsCluster, EnvoyEncodedMessages.staticCluster]), into: &cache), [])
        XCTAssertEqual(Set(cache.clusters.keys), ["echo", "static"])
        XCTAssertEqual(cache.wantedAssignments, ["echo-eds"], "the EDS cluster's service_name; the STATIC one needs none")
        XCTAssertEqual(Self.take(Self.response(.listener, version: "1", [EnvoyEncodedMessages.rdsListener]), into: &cache), [])
        XCTAssertEqual(cache.wantedRouteTables, ["local"])
        XCTAssertEqual(cache.versions[.listener], "1")

        // A complete CDS response without "static" removes it.
        Self.take(Self.response(.cluster, version: "2", [EnvoyEncodedMessages.edsCluster]), into: &cache)
        XCTAssertEqual(Set(cache.clusters.keys), ["echo"])
        // A route table known not to exist counts as answered: the first configuration is whole
        // once the assignment is too.
        XCTAssertFalse(cache.hasFirstConfiguration)
        cache.remove(.routeConfiguration, ["local"])
        cache.remove(.clusterLoadAssignment, ["echo-eds"])
        XCTAssertTrue(cache.hasFirstConfiguration)
    }

    func testARouteToAClusterCDSDoesNotHaveIsAProblemOnceCDSHasAnswered() {
        var cache = XDSResourceCache()
        let routes = Self.response(.routeConfiguration, version: "1", [EnvoyEncodedMessages.routeTable])
        XCTAssertEqual(cache.stage(routes).response.problems, [], "before any CDS answer there is nothing to check against")
        Self.take(Self.response(.cluster, version: "c7", [EnvoyEncodedMessages.edsCluster]), into: &cache)
        let problems = cache.stage(routes).response.problems
        XCTAssertEqual(problems.first, #"route table "local": virtual_hosts[0].routes[0]: cluster "slow" does not exist (not in CDS version "c7")"#)
        XCTAssertEqual(problems.count, 4, "slow, a, b and default; echo is there: \(problems)")
        // A service of the file counts as a cluster a route may name.
        cache.fileServiceNames = ["slow", "a", "b", "default"]
        XCTAssertEqual(cache.stage(routes).response.problems, [])
    }

    func testWhatTheFileNamesIsNotTakenOverAndEveryResourceMustBeOfTheResponsesType() {
        var cache = XDSResourceCache()
        cache.fileServiceNames = ["echo"]
        cache.fileListenerAddresses = [HostPort(host: "0.0.0.0", port: 15001)]
        XCTAssertEqual(cache.stage(Self.response(.cluster, version: "1", [EnvoyEncodedMessages.edsCluster])).response.problems,
                       [#"cluster "echo": the file defines a service of this name"#])
        XCTAssertEqual(cache.stage(Self.response(.listener, version: "1", [EnvoyEncodedMessages.rdsListener])).response.problems,
                       [#"listener "ingress": address: 0.0.0.0:15001 is taken by the file (a listener or the admin server)"#])
        let mixed = Self.response(.listener, version: "1", [EnvoyEncodedMessages.edsCluster], typeOfResources: XDSResourceType.cluster.typeURL)
        XCTAssertEqual(cache.stage(mixed).response.problems,
                       [#""echo": is a type.googleapis.com/envoy.config.cluster.v3.Cluster in a response of LDS"#])
        let broken = cache.stage(Self.response(.routeConfiguration, version: "1", [EnvoyEncodedMessages.negativeTimeoutRouteTable]))
        XCTAssertEqual(broken.response.problems.count, 1)
        XCTAssertTrue(broken.response.problems[0].hasPrefix(#""negative": virtual_hosts[0].routes[0].route.timeout"#),
                      "a resource that does not decode is still named: \(broken.response.problems[0])")
    }

    func testTheBuiltConfigurationKeepsTheFilesAndAddsXDSsListenerOnceItsRoutesAreHere() throws {
        var file = FerryConfig(admin: nil, runtime: RuntimeConfig(), listeners: [ListenerConfig(name: "file", address: HostPort(host: "127.0.0.1", port: 9000), service: "local")],
                               services: [ServiceConfig(name: "local", endpoints: [EndpointConfig(address: HostPort(host: "127.0.0.1", port: 9001))])],
                               source: "ferry.yaml")
        file.xds = XDSConfig(server: HostPort(host: "127.0.0.1", port: 18000), node: .init(id: "n", cluster: "c"))
        var cache = XDSResourceCache()
        XCTAssertEqual(Self.take(Self.response(.listener, version: "4", [EnvoyEncodedMessages.rdsListener]), into: &cache), [])
        XCTAssertFalse(cache.hasFirstConfiguration, "no CDS answer yet")
        var config = XDSConfigBuilder.config(file: file, resources: cache)
        XCTAssertEqual(config.listeners.map(\.name), ["file"], "the listener warms until its route table arrives")
        // Routes before clusters (nothing to check them against yet), then the clusters.
        XCTAssertEqual(Self.take(Self.response(.routeConfiguration, version: "6", [EnvoyEncodedMessages.routeTable]), into: &cache), [])
        XCTAssertEqual(Self.take(Self.response(.cluster, version: "3", [EnvoyEncodedMessages.edsCluster]), into: &cache), [])
        config = XDSConfigBuilder.config(file: file, resources: cache)
        XCTAssertEqual(config.service(named: "echo")?.discovery, .static([]), "no assignment yet")
        XCTAssertFalse(cache.hasFirstConfiguration, "echo's assignment is awaited")

        XCTAssertEqual(Self.take(Self.response(.clusterLoadAssignment, version: "5", [Self.assignment("echo-eds", endpoints: 3)]), into: &cache), [])
        XCTAssertTrue(cache.hasFirstConfiguration)
        config = XDSConfigBuilder.config(file: file, resources: cache)
        XCTAssertEqual(config.listeners.map(\.name), ["file", "ingress"])
        let ingress = config.listeners[1]
        XCTAssertEqual(ingress.routeOrder, .asWritten)
        XCTAssertEqual(ingress.address, HostPort(host: "0.0.0.0", port: 15001))
        XCTAssertEqual(ingress.http2.maxConcurrentStreams, 250)
        guard case .static(let endpoints) = config.service(named: "echo")?.discovery else { return XCTFail("echo has no endpoints") }
        XCTAssertEqual(endpoints.count, 3)
        // Clusters the routes name that CDS does not have (yet): services without endpoints.
        XCTAssertEqual(config.services.map(\.name), ["local", "echo", "slow", "a", "b", "default"])
        XCTAssertEqual(config.fromXDS.listeners, ["ingress": "LDS 4, RDS 6"])
        XCTAssertEqual(config.fromXDS.services["echo"], "CDS 3, EDS 5")
        XCTAssertEqual(config.fromXDS.services["slow"], "named by a route, not in CDS 3")
        XCTAssertNil(config.fromXDS.services["local"])
        let summary = ConfigSummary.lines(config).joined(separator: "\n")
        XCTAssertTrue(summary.contains("listener ingress on 0.0.0.0:15001 (from xDS: LDS 4, RDS 6); routes, the first that matches, in order:"), summary)
        XCTAssertTrue(summary.contains("service echo (from xDS: CDS 3, EDS 5): "), summary)
        XCTAssertTrue(summary.contains("xds: ADS from 127.0.0.1:18000 as node n"), summary)
    }

    func testVirtualHostsGoByDomainPrecedenceAndARequestOfAHostNeverFallsThroughToAnother() throws {
        let table = try XDSRouteTable.decode(EnvoyEncodedMessages.routeTable[...]).get()
        let routes = XDSConfigBuilder.routes(of: table)
        // echo.svc: slow, canary, rest, stop; *.echo.svc:8080: the same four; *: the fallback.
        XCTAssertEqual(routes.map(\.target), ["slow", "split a 90 (90%), b 10 (10%)", "echo", "no route",
                                              "slow", "split a 90 (90%), b 10 (10%)", "echo", "no route", "default"])
        XCTAssertEqual(routes[0].match.authority?.description, "echo.svc")
        XCTAssertEqual(routes[4].match.authority?.description, "*.echo.svc:8080")
        XCTAssertNil(routes[8].match.authority)
        let lookup = RouteTable(routes, order: .asWritten)
        let grpc = [("content-type", "application/grpc")]
        XCTAssertEqual(lookup.match(authority: "echo.svc", path: "/echo.Echo/Slow"), 0)
        XCTAssertEqual(lookup.match(authority: "echo.svc", path: "/other.Svc/Call", headers: grpc), 2, "in order: rest before anything of *")
        XCTAssertNil(lookup.match(authority: "echo.svc", path: "/other.Svc/Call"), "no route of echo.svc matches: no fall through to *")
        XCTAssertEqual(lookup.match(authority: "api.echo.svc:8080", path: "/echo.Echo/Slow"), 4)
        XCTAssertEqual(lookup.match(authority: "elsewhere", path: "/x"), 8)
        // In order written, a catch-all before an exact method takes its calls too (the
        // file's most-specific-first order would not).
        let written = [RouteConfig(match: RouteMatch(path: .prefix("/")), service: "first"),
                       RouteConfig(match: RouteMatch(path: .grpcMethod(service: "echo.Echo", method: "Slow")), service: "exact")]
        XCTAssertEqual(RouteTable(written, order: .asWritten).match(authority: "x", path: "/echo.Echo/Slow"), 0)
        XCTAssertEqual(RouteTable(written).match(authority: "x", path: "/echo.Echo/Slow"), 1)
    }

    func testEachRouteCarriesItsOwnCallPolicyAndRetriesOnlyWhenTold() throws {
        let table = try XDSRouteTable.decode(EnvoyEncodedMessages.routeTable[...]).get()
        let routes = XDSConfigBuilder.routes(of: table)
        let slow = try XCTUnwrap(routes[0].policy)
        XCTAssertNil(slow.timeout, "timeout 0 is none")
        XCTAssertEqual(slow.deadlineOffset, .milliseconds(50))
        XCTAssertEqual(slow.callerTimeoutCap, .some(.seconds(5)), "grpc_timeout_header_max: the caller's timeout, up to 5 s")
        XCTAssertFalse(slow.retry.enabled, "no retry_policy: no retries")
        XCTAssertEqual(slow.origin, "xds route local/echo/slow")
        let rest = try XCTUnwrap(routes[2].policy)
        XCTAssertEqual(rest.timeout, .seconds(3))
        XCTAssertNil(rest.callerTimeoutCap, "no grpc_timeout_header_max: the route's timeout")
        XCTAssertEqual(rest.retry.maxAttempts, 3)
        XCTAssertEqual(rest.retry.perTryTimeout, .seconds(1))
        XCTAssertEqual(try XCTUnwrap(routes[1].policy).timeout, .seconds(15), "Envoy's default")
        let fallback = try XCTUnwrap(routes[8].policy)
        XCTAssertTrue(fallback.retry.enabled, "the virtual host's retry policy")
        XCTAssertEqual(fallback.origin, "xds route local/any/routes[0]")
    }
}
