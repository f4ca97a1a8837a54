import Atomics
import FerryPolicy
import NIOConcurrencyHelpers

/// A rate limit written with `per: caller`: one `RateLimiter` per verified client identity,
/// made on the identity's first call and shared by every loop; calls with no identity share
/// one of their own. At most `maxCallers` identities hold a bucket: when a new one would pass
/// that, the buckets that are full again (idle for long enough; a fresh bucket would be no
/// different) are forgotten, and if none is, new identities share one overflow bucket until
/// some are. Memory stays bounded whatever certificates callers present.
///
/// The lock is taken when a connection first calls with an identity (and after a forgetting);
/// each connection keeps what it got in a `CallerLimiterCache`, checked against `generation`
/// (one atomic load), so a call takes no lock.
package final class CallerRateLimits: Sendable {
    package let settings: RateLimiter.Settings
    package let maxCallers: Int
    /// The bucket of calls with no verified identity.
    package let anonymous: RateLimiter
    private let overflow: RateLimiter
    private let callers = NIOLockedValueBox<[String: RateLimiter]>([:])
    /// Moves on whenever buckets are forgotten: a connection's cached bucket may be stale.
    private let generationCounter = ManagedAtomic<Int>(0)

    package init(_ settings: RateLimiter.Settings, maxCallers: Int) {
        self.settings = settings
        self.maxCallers = max(1, maxCallers)
        anonymous = RateLimiter(settings)
        overflow = RateLimiter(settings)
    }

    package var generation: Int { generationCounter.load(ordering: .acquiring) }
    package var callerCount: Int { callers.withLockedValue { $0.count } }

    /// The bucket of `identity` (made now if it has none).
    package func limiter(for identity: String, at now: Int64) -> RateLimiter {
        callers.withLockedValue { callers in
            if let existing = callers[identity] { return existing }
            if callers.count >= maxCallers {
                let before = callers.count
                callers = callers.filter { !$0.value.isFull(at: now) }
                if callers.count < before { generationCounter.wrappingIncrement(ordering: .releasing) }
                guard callers.count < maxCallers else { return overflow }
            }
            let limiter = RateLimiter(settings)
            callers[identity] = limiter
            return limiter
        }
    }
}

/// One client connection's buckets for its identity, by the limit they belong to: found once
/// per connection and limit, then read without a lock. Confined to the connection's loop.
package final class CallerLimiterCache {
    package let identity: String
    private var entries: [(limits: CallerRateLimits, generation: Int, limiter: RateLimiter)] = []

    package init(identity: String) {
        self.identity = identity
    }

    package func limiter(in limits: CallerRateLimits, at now: Int64) -> RateLimiter {
        let generation = limits.generation
        if let index = entries.firstIndex(where: { $0.limits === limits }) {
            if entries[index].generation == generation { return entries[index].limiter }
            entries.remove(at: index)
        }
        let limiter = limits.limiter(for: identity, at: now)
        // A handful of limits at most (a service's and its methods'); reloads make new ones.
        if entries.count >= 8 { entries.removeFirst() }
        entries.append((limits, generation, limiter))
        return limiter
    }
}
