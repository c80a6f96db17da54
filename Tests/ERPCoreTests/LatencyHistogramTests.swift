import ERPReports
import Histogram
import Testing

/// `LatencyRecorder` keeps its own histogram (pages of counts made when used, one pass for all
/// percentiles); HdrHistogram, which it replaced, is the oracle: the same values recorded in both
/// must give the same buckets, percentiles, minimum, maximum and merges.
@Suite struct LatencyHistogramTests {
    /// SplitMix64: the same values on every run and machine.
    struct Values {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        /// Microseconds spread over every bucket: zero, unit resolution, milliseconds, seconds,
        /// near an hour, and past what either histogram tracks.
        mutating func latency() -> UInt64 {
            switch next() % 8 {
            case 0: return 0
            case 1: return next() % 2_048
            case 2: return next() % 100_000
            case 3: return 1_000 + next() % 60_000
            case 4: return next() % 10_000_000
            case 5: return next() % 3_600_000_000
            case 6: return 3_500_000_000 + next() % 1_000_000_000   // both sides of the last bucket
            default: return 1 << (next() % 34)
            }
        }
    }

    static let percentiles: [Double] = [-1, 0, 0.001, 1, 25, 33.3, 50, 90, 99, 99.9, 99.99, 100, 150]

    func oracle() -> Histogram<UInt64> { Histogram<UInt64>(highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: .three) }

    func expectSame(_ recorder: LatencyRecorder, _ hdr: Histogram<UInt64>, _ label: String) {
        #expect(recorder.count == hdr.totalCount, "\(label): count")
        let buckets = hdr.recordedValues().map { LatencyBucket(microseconds: $0.value, count: $0.count) }
        #expect(recorder.buckets == buckets, "\(label): buckets")
        for p in Self.percentiles {
            let expected: UInt64 = hdr.totalCount == 0 ? 0 : (p <= 0 ? hdr.min : hdr.valueAtPercentile(p))
            #expect(recorder.microseconds(atPercentile: p) == expected, "\(label): percentile \(p)")
        }
        func ms(_ us: UInt64) -> Double { (Double(us) / 1_000 * 1_000).rounded() / 1_000 }
        let summary = recorder.summary
        if hdr.totalCount == 0 {
            #expect(summary == LatencySummary(count: 0, p50: 0, p90: 0, p99: 0, p999: 0, max: 0), "\(label): empty summary")
        } else {
            let expected = LatencySummary(count: Int(hdr.totalCount), p50: ms(hdr.valueAtPercentile(50)), p90: ms(hdr.valueAtPercentile(90)),
                                          p99: ms(hdr.valueAtPercentile(99)), p999: ms(hdr.valueAtPercentile(99.9)),
                                          // The largest value recorded (HdrHistogram's 100th percentile), not
                                          // its bucket's top (`hdr.max`): no percentile reads above it.
                                          max: ms(hdr.valueAtPercentile(100)))
            #expect(summary == expected, "\(label): summary")
        }
    }

    @Test(arguments: [1, 2, 3, 5, 40, 1_000, 20_000])
    func recordsAsHdrHistogramDoes(samples: Int) {
        var values = Values(state: UInt64(samples))
        var recorder = LatencyRecorder(), hdr = oracle()
        for _ in 0..<samples {
            let us = values.latency()
            recorder.record(.microseconds(us))
            hdr.record(us)
        }
        expectSame(recorder, hdr, "\(samples) samples")
    }

    /// One sample is one number: its p50 and its max were 3.512 and 3.513 (a report reader's trial).
    @Test func aSingleSampleReadsTheSameEverywhere() {
        var recorder = LatencyRecorder()
        recorder.record(.microseconds(3_512))
        let summary = recorder.summary
        #expect(summary.p50 == 3.512 && summary.p99 == 3.512 && summary.max == 3.512, "\(summary)")
    }

    @Test func emptyAndZeroOnly() {
        expectSame(LatencyRecorder(), oracle(), "empty")
        var recorder = LatencyRecorder(), hdr = oracle()
        for _ in 0..<3 { recorder.record(.zero); hdr.record(0) }
        expectSame(recorder, hdr, "zeros")
        recorder.record(.microseconds(7)); hdr.record(7)
        expectSame(recorder, hdr, "zeros and a seven")
    }

    /// Counts are held a page (1,024 counts) at a time, made when a value first needs it: one
    /// page for everything under a millisecond, one more per doubling past 2 ms, 23 at most.
    @Test func holdsOnlyThePagesItUsed() {
        var recorder = LatencyRecorder()
        #expect(recorder.countBytes == 0)
        for us in [0, 1, 500, 1_023] { recorder.record(.microseconds(us)) }
        #expect(recorder.countBytes == 8_192)
        recorder.record(.milliseconds(100))
        recorder.record(.milliseconds(101))
        #expect(recorder.countBytes == 2 * 8_192)
        recorder.record(.seconds(3_000))
        #expect(recorder.countBytes == 3 * 8_192)
        for shift in 0..<32 { recorder.record(.microseconds(Int64(1) << shift)) }
        #expect(recorder.countBytes == 23 * 8_192, "every page: 184 KiB")
        let metrics = RequestMetrics.rpcServed()
        metrics.record("a", outcome: "ok", latency: .microseconds(10))
        metrics.record("a", outcome: "timeout", latency: .seconds(1))
        metrics.record("b", outcome: "ok", latency: .microseconds(10))
        #expect(metrics.histogramBytes == 3 * 8_192)
    }

    /// Merging recorders, and rebuilding one from its buckets (how another process merges it).
    @Test func mergesAsHdrHistogramAdds() {
        var values = Values(state: 99)
        var a = LatencyRecorder(), b = LatencyRecorder(), hdrA = oracle(), hdrB = oracle()
        for _ in 0..<500 { let us = values.latency(); a.record(.microseconds(us)); hdrA.record(us) }
        for _ in 0..<70 { let us = values.latency() % 5_000; b.record(.microseconds(us)); hdrB.record(us) }
        var merged = a, hdrMerged = hdrA
        merged.merge(b)
        hdrMerged.add(hdrB)
        expectSame(merged, hdrMerged, "merged")

        var rebuilt = LatencyRecorder(), hdrRebuilt = oracle()
        rebuilt.merge(merged.buckets)
        for value in hdrMerged.recordedValues() { hdrRebuilt.record(value.value, count: value.count) }
        expectSame(rebuilt, hdrRebuilt, "rebuilt from buckets")
        #expect(rebuilt.buckets == merged.buckets)

        // Merging into an empty recorder, and an empty one into a full one, changes nothing.
        var empty = LatencyRecorder()
        empty.merge(a)
        expectSame(empty, hdrA, "into empty")
        var full = a
        full.merge(LatencyRecorder())
        expectSame(full, hdrA, "empty into full")
    }
}
