// ERPReports: what a run produced, as data (`RunSummary`) and as text for people and machines:
// summary.json, summary.md and the short summary printed at the end of a run.
import ERPCore

/// Records latencies (HdrHistogram's buckets, microsecond resolution, three significant digits,
/// up to an hour) and summarises them as percentiles in milliseconds.
public struct LatencyRecorder: Sendable {
    private var histogram = LatencyHistogram()

    public init() {}

    public mutating func record(_ latency: Duration) {
        let us = max(0, latency.nanoseconds / 1_000)
        _ = histogram.record(UInt64(us))
    }

    public var count: UInt64 { histogram.totalCount }

    /// Bytes of counts the recorder holds. It grows as latencies fall in ranges not seen before
    /// (a page per doubling past 2 ms) up to 184 KiB, so a long run's tail adds to it.
    public var countBytes: Int { histogram.countBytes }

    /// The recorded values (microseconds) with their counts: what another process needs to merge
    /// this recorder into its own (percentiles cannot be averaged; histograms can be added).
    public var buckets: [LatencyBucket] {
        histogram.buckets()
    }

    /// Adds `other`'s recordings, losslessly (as if they had been recorded here).
    public mutating func merge(_ other: LatencyRecorder) { histogram.add(other.histogram) }

    public mutating func merge(_ buckets: [LatencyBucket]) {
        for bucket in buckets where bucket.count > 0 {
            _ = histogram.record(bucket.microseconds, count: bucket.count)
        }
    }

    /// The latency at `percentile` (0...100), in microseconds; 0 when nothing was recorded.
    public func microseconds(atPercentile percentile: Double) -> UInt64 {
        guard histogram.totalCount > 0 else { return 0 }
        return percentile <= 0 ? histogram.min : histogram.values(atPercentiles: [percentile])[0]
    }

    public var summary: LatencySummary {
        func ms(_ us: UInt64) -> Double { (Double(us) / 1_000 * 1_000).rounded() / 1_000 }
        guard histogram.totalCount > 0 else { return LatencySummary(count: 0, p50: 0, p90: 0, p99: 0, p999: 0, max: 0) }
        let p = histogram.values(atPercentiles: [50, 90, 99, 99.9])
        // The largest value recorded, not its bucket's top: the percentiles are clamped to it, and a
        // maximum that read 3.513 beside a single sample's p50 of 3.512 showed one sample as two
        // numbers (a report reader's trial).
        return LatencySummary(count: Int(histogram.totalCount), p50: ms(p[0]), p90: ms(p[1]), p99: ms(p[2]), p999: ms(p[3]),
                              max: ms(histogram.maxRecorded))
    }
}

/// Percentiles in milliseconds.
public struct LatencySummary: Codable, Sendable, Hashable {
    public var count: Int
    public var p50: Double
    public var p90: Double
    public var p99: Double
    public var p999: Double
    public var max: Double
    public init(count: Int, p50: Double, p90: Double, p99: Double, p999: Double, max: Double) {
        self.count = count; self.p50 = p50; self.p90 = p90; self.p99 = p99; self.p999 = p999; self.max = max
    }
}

/// A histogram bucket as it travels between processes.
public struct LatencyBucket: Codable, Sendable, Hashable {
    public var microseconds: UInt64
    public var count: UInt64
    public init(microseconds: UInt64, count: UInt64) { self.microseconds = microseconds; self.count = count }
}

/// The latency histograms one node recorded over a run, its process incarnations merged, by RPC
/// method, over the requests that ended `ok`: the round trips of the calls it made, the time its
/// handlers took on the requests it served, and their own share of it (less waits on calls and
/// sleeps). What `erp calibrate` fits.
public struct NodeLatency: Sendable {
    public var node: String
    public var calls: [String: LatencyRecorder] = [:]
    public var served: [String: LatencyRecorder] = [:]
    public var own: [String: LatencyRecorder] = [:]

    public init(node: String) { self.node = node }

    public mutating func add(calls: [String: [LatencyBucket]], served: [String: [LatencyBucket]], own: [String: [LatencyBucket]]) {
        for (method, buckets) in calls { self.calls[method, default: LatencyRecorder()].merge(buckets) }
        for (method, buckets) in served { self.served[method, default: LatencyRecorder()].merge(buckets) }
        for (method, buckets) in own { self.own[method, default: LatencyRecorder()].merge(buckets) }
    }
}
