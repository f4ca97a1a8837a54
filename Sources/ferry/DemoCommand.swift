#if canImport(Glibc)
import Glibc
#endif
import FerryConfig
import FerryDemo
import FerryProxy
import Logging
import NIOCore
import NIOPosix

struct Demo: FerryCommand {
    static let spec = CommandSpec(
        words: ["demo"], abstract: "Start Ferry with three embedded echo upstreams, drive RPCs through it, and report.",
        options: [
            OptionSpec(long: "calls", value: "n", defaultValue: "5000", help: "Calls to make through the proxy."),
            OptionSpec(long: "concurrency", value: "n", defaultValue: "32", help: "Calls in flight at once."),
            OptionSpec(long: "payload", value: "bytes", defaultValue: "128", help: "Payload bytes per message."),
            OptionSpec(long: "port", value: "port", defaultValue: "0", help: "Port for Ferry's listener (0 picks a free one)."),
            OptionSpec(long: "skip-phases", help: "Only the first run: skip the slow, failing, deadline and hedging phases."),
            OptionSpec(long: "serve", help: "Keep Ferry and the upstreams running after the report, until SIGINT/SIGTERM."),
            OptionSpec(long: "admin-port", value: "port", defaultValue: "0", help: "Port for the admin server (/metrics, /endpoints; 0 picks a free one)."),
            OptionSpec(long: "log-level", value: "level", defaultValue: "warning", help: "Log level."),
            OptionSpec(long: "log-format", value: "format", defaultValue: "text", help: "Log lines as logfmt text, or json."),
        ])

    let calls: Int
    let concurrency: Int
    let payload: Int
    let port: Int
    let serve: Bool
    let skipPhases: Bool
    let adminPort: Int
    let logLevel: Logger.Level
    let logFormat: LogFormat

    init(_ arguments: ParsedArguments) throws(UsageError) {
        calls = try arguments.int("calls")!
        concurrency = try arguments.int("concurrency")!
        payload = try arguments.int("payload")!
        port = try arguments.int("port")!
        serve = arguments.flag("serve")
        skipPhases = arguments.flag("skip-phases")
        adminPort = try arguments.int("admin-port")!
        (logLevel, logFormat) = try LogSetup.parse(level: arguments.string("log-level")!, format: arguments.string("log-format")!)
        guard calls >= 1, concurrency >= 1, payload >= 0, (0...65535).contains(port), (0...65535).contains(adminPort) else {
            throw UsageError("calls and concurrency must be at least 1, payload at least 0, port and admin-port 0-65535")
        }
    }

    func run() async throws {
        let logger = LogSetup.bootstrap(level: logLevel, format: logFormat)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: System.coreCount)
        let upstreams = [
            try await EchoUpstream.start(name: "echo-1", group: group),
            try await EchoUpstream.start(name: "echo-2", group: group),
            try await EchoUpstream.start(name: "echo-3", failEvery: 50, group: group),
        ]
        // An admin server on a free port: the demo reads its own metrics (retries) from it.
        var config = try ConfigLoader.parse(yaml: ResilienceDemo.configuration(upstreams: upstreams), source: "<demo>")
        // Port 0 (pick a free one) is not a port a configuration file may name.
        config.listeners[0].address = HostPort(host: "127.0.0.1", port: port)
        config.admin?.address = HostPort(host: "127.0.0.1", port: adminPort)
        let server = FerryServer(config: config, group: group, logger: logger)
        let address = try await server.start()[0]
        let proxyPort = address.port ?? 0

        print("Ferry demo")
        print("  proxy listening on 127.0.0.1:\(proxyPort), \(System.coreCount) event loops; "
              + "admin (metrics, endpoints) on 127.0.0.1:\(server.adminAddress?.port ?? 0)")
        for upstream in upstreams {
            let note = upstream.failEvery > 0 ? " (answers every \(upstream.failEvery)th call with UNAVAILABLE)" : ""
            print("  upstream \(upstream.name) on 127.0.0.1:\(upstream.port)\(note)")
        }
        print("  driving \(calls) unary gRPC calls, \(concurrency) in flight, \(payload)-byte messages, over one HTTP/2 connection\n")
        fflush(nil)      // at once, even when stdout is a pipe or a file

        let report = try await DemoClient.run(host: "127.0.0.1", port: proxyPort, calls: calls, concurrency: concurrency,
                                              payloadSize: payload, group: group)
        print(Self.render(report))
        let metrics = await server.metricsText()
        let retries = metrics.split(separator: "\n").first { $0.hasPrefix("ferry_retries_total{service=\"demo-echo\"}") }
            .flatMap { $0.split(separator: " ").last }.map(String.init) ?? "0"
        print("Retries made by the default policy (echo-3's UNAVAILABLE answers, sent again to another upstream): \(retries)")
        var healthy = !report.statuses.keys.contains { $0 != "OK" && $0 != "UNAVAILABLE" } && report.corruptedBodies == 0
        if !skipPhases {
            let phases = ResilienceDemo(server: server, upstreams: upstreams, port: proxyPort, group: group)
            healthy = try await phases.run() && healthy
        }

        if serve {
            // A gRPC request body for h2load (one length-prefixed message), so the command works as printed.
            let body = "/tmp/ferry-demo-request-\(proxyPort)"
            let wrote = Self.writeFile(body, bytes: [0, 0, 0, 0, 5] + Array("hello".utf8))
            print("\nServing until SIGINT/SIGTERM (admin on 127.0.0.1:\(server.adminAddress?.port ?? 0)). Try:")
            if wrote {
                print("  h2load -n 1000 -c 2 -m 10 -d \(body) -H 'content-type: application/grpc' -H 'te: trailers' http://127.0.0.1:\(proxyPort)/ferry.demo.Echo/Say")
            }
            print("  curl -s http://127.0.0.1:\(server.adminAddress?.port ?? 0)/endpoints")
            fflush(nil)
            _ = await Signals.waitForTermination()
            if wrote { unlink(body) }
        }
        await server.shutdown(drainTimeout: .seconds(2))
        for upstream in upstreams { await upstream.stop() }
        try? await group.shutdownGracefully()
        if !healthy { throw ExitStatus(1) }
    }

    /// Writes `bytes` to a new file at `path` (replacing one there); false when it cannot.
    static func writeFile(_ path: String, bytes: [UInt8]) -> Bool {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        return bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) } == bytes.count
    }

    static func render(_ report: DemoReport) -> String {
        var lines: [String] = []
        lines.append("Calls per upstream:")
        for (name, count) in report.perUpstream.sorted(by: { $0.key < $1.key }) {
            lines.append("  " + name.padded(to: 11) + "\(count)")
        }
        lines.append("Status counts:")
        for (status, count) in report.statuses.sorted(by: { $0.value > $1.value }) {
            lines.append("  " + status.padded(to: 21) + "\(count)")
        }
        lines.append("Latency (us): p50 \(report.percentile(0.50))  p90 \(report.percentile(0.90))  p99 \(report.percentile(0.99))  max \(report.latenciesMicros.last ?? 0)")
        let hundredths = (report.elapsedNanos + 5_000_000) / 10_000_000
        let seconds = "\(hundredths / 100)." + (hundredths % 100 < 10 ? "0" : "") + "\(hundredths % 100)"
        lines.append("Throughput: \(Int(report.callsPerSecond.rounded())) calls/s over \(seconds) s")
        lines.append("Echoed bodies that differed from what was sent: \(report.corruptedBodies)")
        return lines.joined(separator: "\n")
    }
}
