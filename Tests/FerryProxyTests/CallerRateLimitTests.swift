@testable import FerryProxy
@testable import FerryUpstream
import FerryConfig
import FerryDiscovery
import FerryPolicy
import Logging
import NIOEmbedded
import XCTest

/// Rate limits written `per: caller`: a bucket per verified identity, bounded in number.
final class CallerRateLimitTests: XCTestCase {
    private let second: Int64 = 1_000_000_000
    private let settings = RateLimiter.Settings(calls: 2, periodNanoseconds: 1_000_000_000, burst: 2)

    private func take(_ limiter: RateLimiter, at now: Int64, _ count: Int) -> Int {
        (0..<count).filter { _ in limiter.admit(at: now) }.count
    }

    func testEachIdentityAndTheAnonymousHaveABucketOfTheirOwn() {
        let limits = CallerRateLimits(settings, maxCallers: 10)
        let a = CallerLimiterCache(identity: "spiffe://td/a")
        let b = CallerLimiterCache(identity: "spiffe://td/b")
        let now = 10 * second
        XCTAssertEqual(take(a.limiter(in: limits, at: now), at: now, 5), 2)
        XCTAssertEqual(take(b.limiter(in: limits, at: now), at: now, 5), 2, "a's calls took none of b's")
        XCTAssertEqual(take(limits.anonymous, at: now, 5), 2, "calls with no identity share one bucket")
        let aAgain = CallerLimiterCache(identity: "spiffe://td/a")   // a's second connection
        XCTAssertEqual(take(aAgain.limiter(in: limits, at: now), at: now, 5), 0, "one identity, one bucket, whatever its connections")
        XCTAssertTrue(a.limiter(in: limits, at: now) === aAgain.limiter(in: limits, at: now))
        XCTAssertEqual(limits.callerCount, 2)
    }

    func testPastMaxCallersIdleBucketsAreForgottenAndBusyOnesShareTheOverflow() {
        let limits = CallerRateLimits(settings, maxCallers: 2)
        let now = 10 * second
        let a = CallerLimiterCache(identity: "a"), b = CallerLimiterCache(identity: "b"), c = CallerLimiterCache(identity: "c")
        _ = take(a.limiter(in: limits, at: now), at: now, 1)
        _ = take(b.limiter(in: limits, at: now), at: now, 1)
        let generation = limits.generation
        let overflow = c.limiter(in: limits, at: now)
        XCTAssertFalse(overflow === a.limiter(in: limits, at: now) || overflow === b.limiter(in: limits, at: now))
        XCTAssertEqual(limits.callerCount, 2, "no third bucket while both are in use")
        XCTAssertTrue(CallerLimiterCache(identity: "d").limiter(in: limits, at: now) === overflow, "new callers share the overflow")
        XCTAssertEqual(limits.generation, generation)

        // A second later both buckets are full again: a new caller's arrival forgets them.
        let later = now + second
        let d = CallerLimiterCache(identity: "d")
        XCTAssertEqual(take(d.limiter(in: limits, at: later), at: later, 5), 2, "d has a bucket of its own now")
        XCTAssertEqual(limits.callerCount, 1)
        XCTAssertNotEqual(limits.generation, generation, "connections' cached buckets are looked up again")
        let aBucket = a.limiter(in: limits, at: later)
        XCTAssertEqual(limits.callerCount, 2, "a's connection found its bucket gone and made a new one")
        XCTAssertTrue(aBucket === CallerLimiterCache(identity: "a").limiter(in: limits, at: later))
    }

    func testARuntimeRefusesOneCallerAndServesTheNext() {
        var config = ServiceConfig(name: "s", endpoints: [])
        config.policy.rateLimit = RateLimitConfig(calls: 1, period: .seconds(1), burst: 1, per: .caller)
        let service = ServiceRuntime(config: config, health: ServiceHealth(service: config), sourceID: 1,
                                     endpoints: [Endpoint(host: "127.0.0.1", port: 1, weight: 1)], eventLoop: EmbeddedEventLoop(),
                                     loopIndex: 0, logger: Logger(label: "t", factory: { _ in SwiftLogNoOpLogHandler() }))
        XCTAssertTrue(service.limitsRate)
        let policy = service.policy(forPath: nil)
        let a = CallerLimiterCache(identity: "a"), b = CallerLimiterCache(identity: "b")
        let now = 5 * second
        XCTAssertNil(service.rateLimitRefusing(policy, at: now, caller: a))
        XCTAssertTrue(service.rateLimitRefusing(policy, at: now, caller: a) === policy, "a's second call in the second")
        XCTAssertNil(service.rateLimitRefusing(policy, at: now, caller: b))
        XCTAssertNil(service.rateLimitRefusing(policy, at: now, caller: nil))
        XCTAssertNotNil(service.rateLimitRefusing(policy, at: now, caller: nil), "the anonymous share one bucket")
        XCTAssertEqual(ProxyError.rateLimited(service: "s", limit: config.policy.rateLimit!, origin: "services.s").message,
                       "ferry: this caller is over its rate limit of 1/s (burst 1) per caller for service \"s\" (services.s.rate_limit)")
    }
}
