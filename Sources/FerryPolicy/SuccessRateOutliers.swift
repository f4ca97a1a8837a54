/// Outlier detection by success rate (Envoy's `success_rate` mode): once per interval, among
/// the endpoints that took at least `minimumRequests` calls in it, those whose success rate is
/// more than `stdevFactor` standard deviations below the mean of all of them, and at least
/// `minimumDistance` below it, are outliers. (The second keeps a near-zero spread from making
/// one failure in a hundred an outlier when the others had none.) With fewer than `minimumEndpoints` such endpoints nothing is judged (the statistic means
/// little). Pure: the counts come in, the verdict goes out; ejecting (within the service's
/// `max_ejected_percent`) is the caller's.
public enum SuccessRateOutliers {
    public struct Settings: Sendable, Equatable {
        public var minimumRequests: Int
        public var minimumEndpoints: Int
        public var stdevFactor: Double
        /// A share (0...1): how far below the mean an outlier is at least.
        public var minimumDistance: Double

        public init(minimumRequests: Int = 100, minimumEndpoints: Int = 5, stdevFactor: Double = 1.9, minimumDistance: Double = 0.05) {
            self.minimumRequests = max(1, minimumRequests)
            self.minimumEndpoints = max(1, minimumEndpoints)
            self.stdevFactor = stdevFactor
            self.minimumDistance = max(0, minimumDistance)
        }
    }

    /// One endpoint's calls in the interval.
    public struct Sample: Sendable, Equatable {
        public var successes: Int
        public var failures: Int

        public init(successes: Int, failures: Int) {
            self.successes = successes
            self.failures = failures
        }

        public var total: Int { successes + failures }
        /// Successes over calls, 0...1 (1 with no call).
        public var successRate: Double { total == 0 ? 1 : Double(successes) / Double(total) }
    }

    public struct Verdict: Sendable, Equatable {
        /// Over the endpoints judged (0...1).
        public var mean: Double
        public var standardDeviation: Double
        /// Below this success rate an endpoint is an outlier.
        public var threshold: Double
        /// Indices into the samples of the endpoints judged.
        public var judged: [Int]
        /// Indices of the outliers, the lowest success rate first.
        public var outliers: [Int]
    }

    /// The verdict on one interval's samples, or nil when too few endpoints had enough calls.
    public static func evaluate(_ samples: [Sample], settings: Settings) -> Verdict? {
        let judged = samples.indices.filter { samples[$0].total >= settings.minimumRequests }
        guard judged.count >= settings.minimumEndpoints, !judged.isEmpty else { return nil }
        let rates = judged.map { samples[$0].successRate }
        let mean = rates.reduce(0, +) / Double(rates.count)
        let variance = rates.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(rates.count)
        let deviation = variance.squareRoot()
        let threshold = min(mean - settings.stdevFactor * deviation, mean - settings.minimumDistance)
        let outliers = judged.filter { samples[$0].successRate < threshold }
            .sorted { samples[$0].successRate < samples[$1].successRate }
        return Verdict(mean: mean, standardDeviation: deviation, threshold: threshold, judged: judged, outliers: outliers)
    }
}
