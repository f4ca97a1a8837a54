import FerryDemo
import FerryProxy
import NIOCore
#if canImport(Glibc)
import Glibc
#endif

/// The demo's resilience phases, each against the same Ferry and echo upstreams: a slow
/// upstream (the balancer steers around it), one failing every call (ejected, probed,
/// restored), a method with a tight deadline (DEADLINE_EXCEEDED on time, propagated shorter),
/// and upstreams that stall now and then (hedging). Each prints what happened and why.
struct ResilienceDemo {
    let server: FerryServer
    let upstreams: [EchoUpstream]
    let port: Int
    let group: EventLoopGroup

    static let tightTimeout = 100       // ms, the Tight method's timeout
    static let tightOffset = 10         // ms kept back from what is sent upstream
    static let hedgeDelay = 30          // ms
    static let stall = 300              // ms

    /// The demo's configuration, as a user would write it (the ports are set after: the demo
    /// binds free ones).
    static func configuration(upstreams: [EchoUpstream]) -> String {
        let endpoints = upstreams.map { "\"127.0.0.1:\($0.port)\"" }.joined(separator: ", ")
        return """
        admin: {address: "127.0.0.1:9990"}
        listeners:
          - {name: demo, address: "127.0.0.1:4140", service: demo-echo}
        services:
          demo-echo:
            endpoints: [\(endpoints)]
            idle_timeout: 60s
            # count_deadline_exceeded off: phase 3's calls run out of time on every endpoint, by design
            failure_accrual: {consecutive_failures: 5, min_backoff: 1s, max_backoff: 4s, count_deadline_exceeded: false}
            methods:
              - match: ferry.demo.Echo/Tight
                timeout: \(tightTimeout)ms
                deadline_offset: \(tightOffset)ms
                retry: false
              - match: ferry.demo.Echo/Hedged
                hedge: {delay: \(hedgeDelay)ms, max_attempts: 2}

        """
    }

    /// Runs every phase; false if a phase saw what it should not (a wrong status, a lost call).
    func run() async throws -> Bool {
        var fine = true
        fine = try await slowUpstream() && fine
        fine = try await failingUpstream() && fine
        fine = try await tightDeadline() && fine
        fine = try await stallingUpstreams() && fine
        print("")
        fflush(nil)
        return fine
    }

    private func calls(_ n: Int, concurrency: Int = 16, path: String = "/ferry.demo.Echo/Say", timeout: String? = nil) async throws -> DemoReport {
        try await DemoClient.run(host: "127.0.0.1", port: port, calls: n, concurrency: concurrency, payloadSize: 64,
                                 path: path, timeout: timeout, group: group)
    }

    private func heading(_ text: String) {
        fflush(nil)
        print("\n" + text)
    }

    /// Microseconds as milliseconds with one decimal: `0.6 ms`.
    private func ms(_ micros: Int) -> String {
        let tenths = (micros + 50) / 100
        return "\(tenths / 10).\(tenths % 10) ms"
    }

    private func percent(_ part: Int, of whole: Int) -> String {
        whole == 0 ? "0%" : "\(Int((Double(part) * 100 / Double(whole)).rounded()))%"
    }

    // MARK: - Phase 1: a slow upstream

    private func slowUpstream() async throws -> Bool {
        heading("Phase 1 - a slow upstream: echo-2 now takes 25 ms more per call")
        upstreams[1].behaviour.settings.delay = .milliseconds(25)
        defer { upstreams[1].behaviour.settings.delay = .zero }
        let report = try await calls(2000)
        let slow = report.perUpstream["echo-2", default: 0]
        print("  echo-2 got \(slow) of \(report.calls) calls (\(percent(slow, of: report.calls)); an even share is 33%): "
              + "the balancer's latency estimate (PeakEWMA) sees it is slow and sends the calls to the others")
        print("  latency: p50 \(ms(report.percentile(0.5))), p99 \(ms(report.percentile(0.99))); "
              + "statuses: \(statuses(report))")
        return report.statuses.keys.allSatisfy { $0 == "OK" || $0 == "UNAVAILABLE" }
    }

    // MARK: - Phase 2: an upstream failing every call

    private func failingUpstream() async throws -> Bool {
        heading("Phase 2 - an upstream that fails: echo-3 answers every call with UNAVAILABLE")
        let endpoint = "127.0.0.1:\(upstreams[2].port)"
        let ejectionsBefore = await metric("ferry_endpoint_ejections_total", "reason=\"consecutive_failures\"")
        let callsBefore = upstreams[2].behaviour.calls
        upstreams[2].behaviour.settings.failAll = true
        let report = try await calls(1500)
        let tookCalls = upstreams[2].behaviour.calls - callsBefore
        let ejections = await metric("ferry_endpoint_ejections_total", "reason=\"consecutive_failures\"") - ejectionsBefore
        let ejected = await metric("ferry_endpoint_state", "endpoint=\"\(endpoint)\"", "state=\"ejected\"")
            + metric("ferry_endpoint_state", "endpoint=\"\(endpoint)\"", "state=\"probing\"")
        let failedCalls = report.statuses.filter { $0.key != "OK" }.values.reduce(0, +)
        print("  \(report.calls) calls: \(statuses(report)); echo-3 was sent \(tookCalls) of the attempts "
              + "(calls, retries and probes), all answered UNAVAILABLE")
        print("  after 5 failures in a row echo-3 was ejected (\(Int(ejections)) ejection\(ejections == 1 ? "" : "s"), "
              + "now \(ejected > 0 ? "out of the balancer" : "back")); its failed calls were retried on the others, "
              + "so \(failedCalls) call\(failedCalls == 1 ? "" : "s") failed")

        // It heals: after its ejection's backoff (1 s) one probe call goes to it, and its success restores it.
        upstreams[2].behaviour.settings.failAll = false
        let healedAt = NIODeadline.now()
        let servedBefore = upstreams[2].behaviour.calls
        var restoredAfter: Int64?
        while restoredAfter == nil && NIODeadline.now() - healedAt < .seconds(8) {
            let batch = try await calls(100, concurrency: 4)
            if batch.perUpstream["echo-3", default: 0] > 0 {
                restoredAfter = (NIODeadline.now() - healedAt).nanoseconds / 1_000_000
            }
        }
        if let restoredAfter {
            print("  echo-3 recovered: \(restoredAfter) ms later it was answering calls again "
                  + "(the probe after its backoff succeeded, and it was restored; \(upstreams[2].behaviour.calls - servedBefore) calls since)")
        } else {
            print("  echo-3 recovered, but was not restored within 8 s")
        }
        return restoredAfter != nil && ejections >= 1 && failedCalls < report.calls / 10
    }

    // MARK: - Phase 3: a tight deadline

    private func tightDeadline() async throws -> Bool {
        heading("Phase 3 - a tight deadline: method Tight has timeout \(Self.tightTimeout)ms, the upstreams take 300 ms for it")
        for upstream in upstreams {
            upstream.behaviour.settings.slowPath = "/ferry.demo.Echo/Tight"
            upstream.behaviour.settings.pathDelay = .milliseconds(300)
        }
        defer { for upstream in upstreams { upstream.behaviour.settings.slowPath = "" } }
        let report = try await calls(40, concurrency: 8, path: "/ferry.demo.Echo/Tight", timeout: "1S")
        let exceeded = report.statuses["DEADLINE_EXCEEDED", default: 0]
        let seen = upstreams.compactMap(\.behaviour.lastGRPCTimeout).first ?? "none"
        print("  the caller asked for 1 s (grpc-timeout: 1S); Ferry's \(Self.tightTimeout) ms is shorter, so it applies")
        let unavailable = report.statuses["UNAVAILABLE", default: 0]
        let note = unavailable > 0 ? "; \(unavailable) UNAVAILABLE: echo-3's every 50th answer, not retried (this method has retry: false)" : ""
        print("  \(exceeded) of \(report.calls) calls ended DEADLINE_EXCEEDED, after p50 \(ms(report.percentile(0.5))) "
              + "(max \(ms(report.latenciesMicros.last ?? 0))): on time, not after the upstream's 300 ms\(note)")
        print("  the upstream was told grpc-timeout: \(seen)\(Self.asMillis(seen)), the deadline less the \(Self.tightOffset) ms offset "
              + "and the time spent in the proxy: it can stop working when the caller no longer waits")
        return exceeded > 0 && exceeded + unavailable == report.calls
    }

    // MARK: - Phase 4: stalling upstreams and hedging

    private func stallingUpstreams() async throws -> Bool {
        heading("Phase 4 - stalls: 10% of calls to any upstream stall \(Self.stall) ms")
        for upstream in upstreams {
            upstream.behaviour.settings.stallPaths = "edged"
            upstream.behaviour.settings.stallShare = 0.1
            upstream.behaviour.settings.stall = .milliseconds(Int64(Self.stall))
        }
        defer { for upstream in upstreams { upstream.behaviour.settings.stallPaths = "" } }
        let plain = try await calls(300, concurrency: 8, path: "/ferry.demo.Echo/Unhedged")
        let hedgesBefore = await metric("ferry_hedges_total")
        let hedged = try await calls(300, concurrency: 8, path: "/ferry.demo.Echo/Hedged")
        let hedges = Int(await metric("ferry_hedges_total") - hedgesBefore)
        print("  without hedging: p50 \(ms(plain.percentile(0.5))), p90 \(ms(plain.percentile(0.9))), "
              + "p99 \(ms(plain.percentile(0.99))): a stalled call waits out its stall")
        print("  with hedging after \(Self.hedgeDelay) ms (method Hedged): p50 \(ms(hedged.percentile(0.5))), "
              + "p90 \(ms(hedged.percentile(0.9))), p99 \(ms(hedged.percentile(0.99))); "
              + "\(hedges) hedge\(hedges == 1 ? "" : "s") sent, the first answer won and the other was cancelled")
        return plain.statuses["OK", default: 0] == plain.calls && hedged.statuses["OK", default: 0] == hedged.calls && hedges > 0
    }

    // MARK: -

    /// ` (89.9 ms)` for a grpc-timeout value such as `89908044n`.
    static func asMillis(_ value: String) -> String {
        guard let unit = value.last, let amount = Double(value.dropLast()) else { return "" }
        let perMillisecond: Double
        switch unit {
        case "n": perMillisecond = 1_000_000
        case "u": perMillisecond = 1000
        case "m": perMillisecond = 1
        case "S": perMillisecond = 0.001
        default: return ""
        }
        let tenths = Int((amount / perMillisecond * 10).rounded())
        return " (\(tenths / 10).\(tenths % 10) ms)"
    }

    private func statuses(_ report: DemoReport) -> String {
        report.statuses.sorted { $0.value > $1.value }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")
    }

    /// The sum of a metric's samples whose labels contain every one of `labels`.
    private func metric(_ name: String, _ labels: String...) async -> Double {
        let text = await server.metricsText()
        var sum = 0.0
        for line in text.split(separator: "\n") where line.hasPrefix(name + "{") || line.hasPrefix(name + " ") {
            guard labels.allSatisfy({ line.contains($0) }), let value = line.split(separator: " ").last.flatMap({ Double($0) }) else { continue }
            sum += value
        }
        return sum
    }
}
