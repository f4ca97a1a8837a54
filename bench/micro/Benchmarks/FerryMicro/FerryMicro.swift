import Benchmark
import FerryGRPC
import FerryH2
import FerryPolicy
import NIOCore

// Each benchmark's inner loop runs `scaledIterations` times per measured iteration; the
// reported numbers are per inner operation. Allocation counts come from the malloc interposer.

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(metrics: [.wallClock, .cpuTotal, .mallocCountTotal, .throughput],
                                           scalingFactor: .kilo, maxDuration: .seconds(2))

    Benchmark("balancer: P2C over PeakEWMA among 100 endpoints") { benchmark in
        var random = FastRandom(seed: 42)
        var latency = (0..<100).map { PeakEWMA(initial: Int64(1_000_000 + $0 * 10_000), now: 0) }
        var pending = Array(repeating: 0, count: 100)
        var now: Int64 = 0
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            now += 1_000
            let pick = PowerOfTwoChoices.pick(count: 100, using: &random, isAvailable: { _ in true }) { i in
                latency[i].cost(pending: pending[i], at: now)
            }!
            pending[pick] += 1
            latency[pick].observe(2_000_000, at: now)
            pending[pick] -= 1
        }
        benchmark.stopMeasurement()
        blackHole(pending)
    }

    Benchmark("balancer: failure accrual check (healthy endpoint)") { benchmark in
        var accrual = FailureAccrual()
        for _ in benchmark.scaledIterations {
            blackHole(accrual.admit(at: 1))
            accrual.recordSuccess()
        }
    }

    Benchmark("grpc-timeout: parse and encode") { benchmark in
        let values: [[UInt8]] = ["100m", "2S", "30000u", "99999999n", "1H"].map { Array($0.utf8) }
        for i in benchmark.scaledIterations {
            let parsed = try GRPCTimeout.parse(values[i % values.count]).get()
            blackHole(GRPCTimeout(nanoseconds: parsed.nanoseconds &- 1).headerValue)
        }
    }

    Benchmark("gRPC message framing: scan 100 messages of 100 bytes") { benchmark in
        var buffer = ByteBufferAllocator().buffer(capacity: 105 * 100)
        for _ in 0..<100 {
            buffer.writeInteger(UInt8(0))
            buffer.writeInteger(UInt32(100))
            buffer.writeRepeatingByte(7, count: 100)
        }
        for _ in benchmark.scaledIterations {
            var framer = GRPCMessageFramer(maxMessageSize: 4 << 20)
            try framer.scan(buffer)
            blackHole(framer)
        }
    }

    Benchmark("headers: forward a gRPC request block with grpc-timeout rewritten") { benchmark in
        let request = H2Headers([(":method", "POST"), (":scheme", "http"), (":path", "/helloworld.Greeter/SayHello"),
                                 (":authority", "greeter.default.svc.cluster.local:8080"), ("content-type", "application/grpc"),
                                 ("te", "trailers"), ("grpc-timeout", "100m"), ("user-agent", "grpc-swift/2.4")])
        for _ in benchmark.scaledIterations {
            blackHole(request.replacingValue(of: "grpc-timeout", with: "99m"))
        }
    }

    // Frame encode and decode through nghttp2: both sides of a unary call (request headers,
    // message, response headers, message, trailers), as FerryH2 drives its sessions.
    Benchmark("HTTP/2: a unary gRPC call through two nghttp2 sessions (encode and decode)") { benchmark in
        let exchange = try H2Exchange()
        for _ in benchmark.scaledIterations {
            let received = try exchange.exchange()
            precondition(received == 100, "the exchange failed")
            blackHole(received)
        }
    }

    Benchmark("deadlines: arm and disarm with 1,000 calls in flight") { benchmark in
        var queue = DeadlineQueue<Int>()
        var live: [UInt64] = []
        for i in 0..<1_000 { live.append(queue.add(i, expiresAt: Int64(i) * 1_000)) }
        var t: Int64 = 1_000_000
        for i in benchmark.scaledIterations {
            t += 1_000
            live[i % 1_000] = queue.add(i, expiresAt: t)
            queue.cancelOne()
            queue.compactIfWorthIt { live[$0.item % 1_000] == $0.id }
        }
        blackHole(queue.count)
    }
}
