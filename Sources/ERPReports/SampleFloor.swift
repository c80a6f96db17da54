/// How much a process's memory (or its count of descriptors) grew over a run of samples, judged
/// as a leak shows it: the lowest value of the later half of the samples against the lowest of the
/// earlier half (with an odd count the middle sample is in both halves; with two samples it is the
/// first against the last).
///
/// A leak raises the floor: what it keeps is never given back, so even the lowest later sample is
/// higher. An allocator's swings do not: glibc's per-thread arenas keep freed memory for a while
/// and give it back in steps, so single samples rise and fall with the moment they are taken
/// (a soak saw one service's private memory go 18 → 48 → 41 MiB, another's 14 → 17 → 14 MiB),
/// and a verdict of the first sample against the last measured those swings (docs/soak.md).
/// Descriptors swing too when they are counted while connections come and go.
public struct SampleFloor: Sendable, Hashable {
    /// The lowest value of the earlier half, and of the later half.
    public var earlier: Int
    public var later: Int

    public init?(_ samples: [Int]) {
        guard samples.count >= 2 else { return nil }
        let half = (samples.count + 1) / 2
        earlier = samples.prefix(half).min()!
        later = samples.suffix(half).min()!
    }

    /// The floor's growth in percent of the earlier floor (0 when that is 0).
    public var growthPercent: Double {
        earlier > 0 ? Double(later - earlier) / Double(earlier) * 100 : 0
    }

    /// The lowest sample of each third of `samples` (thirds as even as the count allows; nil
    /// under three samples). Beside the halves' floors they tell a slope from a step: a leak
    /// raises every third's floor, a backlog's storage kept or a table finding its size raises
    /// one and then holds.
    public static func thirds(_ samples: [Int]) -> [Int]? {
        guard samples.count >= 3 else { return nil }
        return (0..<3).map { third in samples[(third * samples.count / 3)..<((third + 1) * samples.count / 3)].min()! }
    }

    /// The index of the later half's first sample among `count` samples. Under a steady leak the
    /// earlier floor is the first sample and the later floor this one: the floor grows by what the
    /// leak kept between the two.
    public static func laterHalfStart(count: Int) -> Int { count - (count + 1) / 2 }
}

/// When a memory floor's growth is judged a leak: by more than `percentMax` of the earlier floor
/// **and** by more than `bytesPerOrderMax` for every order the system took between the two halves'
/// first samples (`SampleFloor.laterHalfStart`).
///
/// A leak is memory kept per unit of work, so it is measured per order as well as in per cent. A
/// percentage alone judged the small heaps of the services (2 – 6 MiB) by what work in flight,
/// histograms widening and tables finding their size move them: sixteen-minute soaks at 250 orders/s
/// each named a different set of services over 10 %, at 4 – 8 bytes per order, while heaptrack saw
/// their live heaps flat (docs/soak.md). Keeping even a short string per order is 32 bytes or more,
/// and keeps on growing with the orders: a soak twice as long shows the same bytes per order, where
/// a level reached early shows half.
public struct LeakRule: Sendable, Hashable {
    public var percentMax: Double
    public var bytesPerOrderMax: Double

    public init(percentMax: Double = 10, bytesPerOrderMax: Double = 32) {
        self.percentMax = percentMax
        self.bytesPerOrderMax = bytesPerOrderMax
    }

    /// The floor's growth in bytes per order: `unitBytes` the size of a sample's unit (1024 for
    /// KiB), `orders` how many the system took between the halves' first samples. Without orders,
    /// the growth itself (any growth then counts in full).
    public static func bytesPerOrder(_ floor: SampleFloor, unitBytes: Int, orders: Double) -> Double {
        let bytes = Double(floor.later - floor.earlier) * Double(unitBytes)
        return orders >= 1 ? bytes / orders : bytes
    }

    public func isLeak(_ floor: SampleFloor, unitBytes: Int, orders: Double) -> Bool {
        floor.growthPercent > percentMax && Self.bytesPerOrder(floor, unitBytes: unitBytes, orders: orders) > bytesPerOrderMax
    }
}

/// Which of a soak's latency intervals its steadiness verdict judges: interval `i` covers
/// `[i × every, (i + 1) × every)` seconds from the load's first order; those that start past the
/// warm-up and end by the time the load stopped (`load` seconds). An interval the load stopped
/// inside is partial and left out; one that ends with the load is whole. (The soak left out its
/// last interval always, which hid a whole interval's p99 of 180 ms when the length was a
/// multiple of `every`.)
public func soakIntervalIsJudged(_ index: Int, every: Double, warmUp: Double, load: Double) -> Bool {
    Double(index) * every >= warmUp && Double(index + 1) * every <= load + 1e-6
}
