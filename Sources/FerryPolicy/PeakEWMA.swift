#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An endpoint's latency estimate, Finagle's and Linkerd's "peak EWMA": a sample slower than
/// the estimate replaces it at once (the peak), a faster one moves it by an exponentially
/// weighted step that depends on the time since the last update (decay constant `decay`).
/// Between samples the estimate decays toward zero, so an endpoint that was slow is tried
/// again after a while instead of being shunned forever. Times are nanoseconds from an
/// injected clock.
///
/// The initial estimate is a prior for an endpoint never measured: the first sample replaces
/// it whichever way it goes (otherwise, with a decay of seconds and samples every millisecond,
/// a fast endpoint would keep looking like the prior for several decay constants).
public struct PeakEWMA: Sendable {
    // Inlinable (with its storage) so a balancer's pick in another module is specialized.
    @usableFromInline var estimateStorage: Double
    /// The estimate as of the last sample (nanoseconds).
    @inlinable public var estimate: Double { estimateStorage }
    @usableFromInline var updatedAt: Int64
    @usableFromInline var sampled = false
    @usableFromInline let decay: Double

    public static let defaultInitial: Int64 = 30_000_000        // 30 ms
    public static let defaultDecay: Int64 = 10_000_000_000      // 10 s

    public init(initial: Int64 = defaultInitial, decay: Int64 = defaultDecay, now: Int64) {
        self.estimateStorage = Double(initial)
        self.updatedAt = now
        self.decay = Double(max(1, decay))
    }

    /// Records a round-trip sample taken at `now`.
    @inlinable
    public mutating func observe(_ rtt: Int64, at now: Int64) {
        let sample = Double(max(0, rtt))
        if !sampled || sample > estimate {
            sampled = true
            estimateStorage = sample
        } else {
            let weight = exp(-Double(max(0, now - updatedAt)) / decay)
            estimateStorage = estimateStorage * weight + sample * (1 - weight)
        }
        updatedAt = max(updatedAt, now)
    }

    /// The estimate at `now`, decayed toward zero for the time without samples.
    @inlinable
    public func current(at now: Int64) -> Double {
        let idle = Double(max(0, now - updatedAt))
        return idle == 0 ? estimate : estimate * exp(-idle / decay)
    }

    /// Linkerd's load: the estimate scaled by the calls already outstanding.
    @inlinable
    public func cost(pending: Int, at now: Int64) -> Double {
        current(at: now) * Double(pending + 1)
    }
}
