/// A log-linear histogram of microseconds with HdrHistogram's layout (lowest discernible value 1,
/// three significant digits, values up to an hour), whose counts are kept in 1,024-slot pages
/// allocated when a value first falls in them.
///
/// Why not HdrHistogram's own type: its counts are one array of 23,552 slots (184 KiB) made and
/// zeroed for every histogram, and its generic code is not specialised across modules, so each
/// percentile walks that array through generic integer witnesses. A simulated chaos-mix run keeps a
/// histogram per node, method and outcome, and per event hop, and reads five percentiles of each:
/// 4 % of the run's CPU (perf: 3.1 % in summaries, 0.8 % making histograms). Here a histogram of latencies between 1 and 65 ms holds about seven pages
/// (56 KiB), and a summary reads every percentile in one pass over the pages it has.
///
/// Buckets, percentiles, minimum and maximum are HdrHistogram's, value for value (the tests
/// compare the two on random data), so summaries and merged buckets are what they were.
struct LatencyHistogram: Sendable {
    /// Sub-buckets per bucket: 2,048 (resolution of 1 up to 2 × 10³, three digits).
    static let subBucketCountMagnitude = 11
    static let subBucketHalfCountMagnitude = subBucketCountMagnitude - 1
    static let subBucketHalfCount = 1 << subBucketHalfCountMagnitude
    static let subBucketMask = UInt64((1 << subBucketCountMagnitude) - 1)
    static let leadingZeroCountBase = 64 - subBucketCountMagnitude
    /// Buckets needed for an hour in microseconds (2,048 × 2²¹ > 3.6 × 10⁹): 22, so 23 pages.
    static let highestTrackableValue: UInt64 = 3_600_000_000
    static let pageCount: Int = {
        var smallestUntrackable = UInt64(1) << subBucketCountMagnitude
        var buckets = 1
        while smallestUntrackable <= highestTrackableValue { smallestUntrackable <<= 1; buckets += 1 }
        return buckets + 1
    }()
    static let pageSize = subBucketHalfCount

    /// Page `p` holds the counts of slots `p × 1024 ..< (p + 1) × 1024`; empty until used.
    private var pages: [[UInt64]] = Array(repeating: [], count: LatencyHistogram.pageCount)
    private(set) var totalCount: UInt64 = 0
    private var maxValue: UInt64 = 0
    private var minNonZeroValue: UInt64 = .max

    /// Records `value` `count` times; false (and nothing recorded) beyond the trackable range.
    @discardableResult
    mutating func record(_ value: UInt64, count: UInt64 = 1) -> Bool {
        let index = Self.index(of: value)
        let page = index >> Self.subBucketHalfCountMagnitude
        guard page < Self.pageCount else { return false }
        if pages[page].isEmpty { pages[page] = Array(repeating: 0, count: Self.pageSize) }
        pages[page][index & (Self.pageSize - 1)] &+= count
        totalCount &+= count
        if value > maxValue { maxValue = value }
        if value != 0, value < minNonZeroValue { minNonZeroValue = value }
        return true
    }

    /// Adds `other`'s counts, as if its values had been recorded here.
    mutating func add(_ other: LatencyHistogram) {
        for page in 0..<Self.pageCount where !other.pages[page].isEmpty {
            if pages[page].isEmpty {
                pages[page] = other.pages[page]
            } else {
                other.pages[page].withUnsafeBufferPointer { source in
                    pages[page].withUnsafeMutableBufferPointer { target in
                        for slot in 0..<Self.pageSize { target[slot] &+= source[slot] }
                    }
                }
            }
        }
        totalCount &+= other.totalCount
        if other.maxValue > maxValue { maxValue = other.maxValue }
        if other.minNonZeroValue < minNonZeroValue { minNonZeroValue = other.minNonZeroValue }
    }

    /// The smallest value recorded (0 when a zero was, or nothing was; slot 0 counts the zeros).
    var min: UInt64 { totalCount == 0 || (!pages[0].isEmpty && pages[0][0] > 0) ? 0 : minNonZeroValue }
    /// The largest value recorded, exactly.
    var maxRecorded: UInt64 { maxValue }
    /// The highest value equivalent to the largest recorded (what HdrHistogram calls `max`).
    var max: UInt64 { maxValue == 0 ? 0 : Self.highestEquivalent(maxValue) }

    /// Bytes of counts this histogram holds: its pages made so far (up to `pageCount`).
    var countBytes: Int { pages.reduce(0) { $0 + $1.count } * MemoryLayout<UInt64>.stride }

    /// Each non-empty bucket, as its highest equivalent value and its count, in increasing order.
    func buckets() -> [LatencyBucket] {
        var out: [LatencyBucket] = []
        forEachCount { index, count in out.append(LatencyBucket(microseconds: Self.highestEquivalent(Self.value(at: index)), count: count)) }
        return out
    }

    /// The values at `percentiles` (each in 0...100, any order), in one pass. A percentile's value
    /// is the highest value equivalent to the bucket where the running count first reaches that
    /// share of the total, held between `min` and `maxRecorded`.
    func values(atPercentiles percentiles: [Double]) -> [UInt64] {
        guard totalCount > 0 else { return percentiles.map { _ in 0 } }
        var answers = [UInt64](repeating: 0, count: percentiles.count)
        // (count to reach, answer's position), for the percentiles that need the walk.
        var targets: [(count: UInt64, position: Int)] = []
        for (position, percentile) in percentiles.enumerated() {
            if percentile == 0 { answers[position] = min; continue }
            if percentile >= 100 { answers[position] = maxRecorded; continue }
            // HdrHistogram's rounding: one ulp down, then the count rounded up, at least 1.
            let requested = Swift.min(Swift.max(percentile.nextDown, 0), 100)
            targets.append((Swift.max(1, UInt64((requested * Double(totalCount) / 100).rounded(.up))), position))
        }
        guard !targets.isEmpty else { return answers }
        targets.sort { ($0.count, $0.position) < ($1.count, $1.position) }
        var next = 0
        var running: UInt64 = 0
        let low = min, high = maxRecorded
        forEachCount { index, count in
            guard next < targets.count else { return }
            running &+= count
            guard running >= targets[next].count else { return }
            let value = Swift.max(Swift.min(Self.highestEquivalent(Self.value(at: index)), high), low)
            while next < targets.count, running >= targets[next].count {
                answers[targets[next].position] = value
                next += 1
            }
        }
        return answers
    }

    /// Calls `body` with each slot's index and count, skipping empty pages and slots, in order.
    private func forEachCount(_ body: (Int, UInt64) -> Void) {
        for page in 0..<Self.pageCount where !pages[page].isEmpty {
            pages[page].withUnsafeBufferPointer { counts in
                for slot in 0..<Self.pageSize where counts[slot] != 0 {
                    body(page << Self.subBucketHalfCountMagnitude + slot, counts[slot])
                }
            }
        }
    }

    // HdrHistogram's index arithmetic, with unit magnitude 0.

    static func index(of value: UInt64) -> Int {
        let bucket = leadingZeroCountBase - (value | subBucketMask).leadingZeroBitCount
        let subBucket = Int(value >> UInt64(bucket))
        return ((bucket + 1) << subBucketHalfCountMagnitude) + subBucket - subBucketHalfCount
    }

    static func value(at index: Int) -> UInt64 {
        var bucket = (index >> subBucketHalfCountMagnitude) - 1
        var subBucket = (index & (subBucketHalfCount - 1)) + subBucketHalfCount
        if bucket < 0 { subBucket -= subBucketHalfCount; bucket = 0 }
        return UInt64(subBucket) << UInt64(bucket)
    }

    static func highestEquivalent(_ value: UInt64) -> UInt64 {
        let bucket = leadingZeroCountBase - (value | subBucketMask).leadingZeroBitCount
        let subBucket = Int(value >> UInt64(bucket))
        let lowest = UInt64(subBucket) << UInt64(bucket)
        let size = UInt64(1) << UInt64(subBucket >= (1 << subBucketCountMagnitude) ? bucket + 1 : bucket)
        return lowest + size - 1
    }
}
