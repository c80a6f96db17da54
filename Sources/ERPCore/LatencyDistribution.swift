/// A latency distribution given by its quantiles: `min` (quantile 0), any of p50, p90, p99 and
/// p99.9, and `max` (quantile 1), with the inverse CDF linear between them. Two points are the
/// uniform distribution the simulator always had; more points follow a measured shape (the long
/// tail of a real link or of a service's own work) that a uniform range cannot.
///
/// Sampled from one uniform draw, so a run with a given seed draws the same latencies anywhere.
public struct LatencyDistribution: Sendable, Hashable, CustomStringConvertible {
    /// Quantiles in (0, 1), strictly increasing, between min and max; the names scenarios use.
    public static let namedQuantiles: [(name: String, quantile: Double)] = [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p999", 0.999)]

    /// Probabilities, strictly increasing from 0 to 1.
    public private(set) var probabilities: [Double]
    /// Nanoseconds at each probability, never decreasing.
    public private(set) var nanoseconds: [Int64]

    /// Uniform in `[min, max]`.
    public static func uniform(_ low: Duration, _ high: Duration) -> LatencyDistribution {
        LatencyDistribution(probabilities: [0, 1], nanoseconds: [low.nanoseconds, Swift.max(low, high).nanoseconds])
    }

    /// `points` are (probability, latency) pairs strictly inside (0, 1). Nil when they are not
    /// increasing in probability or decrease in latency, or fall outside `[min, max]`.
    public init?(min: Duration, points: [(quantile: Double, latency: Duration)], max: Duration) {
        var probabilities = [0.0], nanoseconds = [min.nanoseconds]
        for point in points {
            guard point.quantile > probabilities.last!, point.quantile < 1, point.latency.nanoseconds >= nanoseconds.last! else { return nil }
            probabilities.append(point.quantile)
            nanoseconds.append(point.latency.nanoseconds)
        }
        guard max.nanoseconds >= nanoseconds.last!, min >= .zero else { return nil }
        probabilities.append(1)
        nanoseconds.append(max.nanoseconds)
        self.init(probabilities: probabilities, nanoseconds: nanoseconds)
    }

    private init(probabilities: [Double], nanoseconds: [Int64]) {
        self.probabilities = probabilities
        self.nanoseconds = nanoseconds
    }

    public var min: Duration { .nanoseconds(nanoseconds[0]) }
    public var max: Duration { .nanoseconds(nanoseconds[nanoseconds.count - 1]) }
    public var isUniform: Bool { probabilities.count == 2 }

    /// The latency at quantile `u` in [0, 1): the inverse CDF, linear between the points.
    /// For a uniform distribution exactly `min + u·(max − min)`, as the simulator drew it before.
    @inlinable public func sample(_ u: Double) -> Int64 {
        var i = 1
        while i < probabilities.count - 1 && u >= probabilities[i] { i += 1 }
        let p0 = probabilities[i - 1], p1 = probabilities[i]
        let lo = nanoseconds[i - 1], hi = nanoseconds[i]
        guard hi > lo else { return lo }
        return lo + Int64((u - p0) / (p1 - p0) * Double(hi - lo))
    }

    /// The points strictly between min and max, as (name, latency), for writing a scenario.
    public var innerPoints: [(name: String, latency: Duration)] {
        (1..<probabilities.count - 1).map { i in
            let name = Self.namedQuantiles.first { $0.quantile == probabilities[i] }?.name ?? "p\(probabilities[i])"
            return (name, .nanoseconds(nanoseconds[i]))
        }
    }

    public var description: String {
        isUniform ? "\(min.shortDescription)..\(max.shortDescription)"
            : "min \(min.shortDescription) " + innerPoints.map { "\($0.name) \($0.latency.shortDescription)" }.joined(separator: " ")
                + " max \(max.shortDescription)"
    }
}
