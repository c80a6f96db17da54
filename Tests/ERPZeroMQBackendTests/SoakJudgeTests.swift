import ERPProduction
import ERPReports
import ERPZeroMQBackend
import Testing

/// What `erp soak` concludes from its samples (`SoakJudge.judge`): the leak rule applied to each
/// process's heap, and the other bounds, on series made for the purpose.
@Suite struct SoakJudgeTests {
    /// Eight samples ten seconds apart at 100 orders/s: 4,000 orders between the halves' first
    /// samples (0 s and 40 s).
    static let times: [Double] = [0, 10, 20, 30, 40, 50, 60, 70]
    static let rate = 100.0

    static func sample(at: Double, heaps: [String: Int]) -> SoakJudge.Sample {
        var probe = ProcessProbe()
        probe.rssKiB = 20_000; probe.anonymousKiB = 10_000; probe.descriptors = 30
        var processes: [String: SoakJudge.ProcessSample] = [:]
        for (service, own) in heaps {
            processes[service] = .init(pid: 100, probe: probe, databaseBytes: 0,
                                       heap: HeapUsage(inUseBytes: own + 500_000, heldBytes: own + 2_000_000, sqliteBytes: 500_000))
        }
        return .init(at: at, processes: processes)
    }

    static let steadyIntervals = (0..<7).map { SoakJudge.Interval(index: $0, orders: 1_000, p50: 5, p99: 10) }

    static func judge(_ heaps: (Double) -> [String: Int], leaks: LeakRule = LeakRule()) -> SoakJudge.Verdict {
        SoakJudge.judge(samples: times.map { sample(at: $0, heaps: heaps($0)) }, intervals: steadyIntervals,
                        warmUp: 0, every: 10, load: 70, rate: rate, leaks: leaks)
    }

    /// Order keeps 40 bytes an order (15 % in 4,000 orders over 1 MiB); the bus's heap grows 20 %
    /// in a step of 20 KB, 5 bytes an order.
    static let orderLeaksBusSteps: @Sendable (Double) -> [String: Int] = { t in
        ["order": 1_048_576 + Int(40 * rate * t), "bus": t >= 30 ? 120_000 : 100_000]
    }

    /// Order's is a leak, and the verdict names it with its bytes per order. The bus's is not,
    /// though the old rule (per cent alone) failed it.
    @Test func theJudgeAppliesTheLeakRuleToEachHeap() {
        let verdict = Self.judge(Self.orderLeaksBusSteps)
        #expect(!verdict.pass)
        #expect(verdict.failures.count == 1, "\(verdict.failures)")
        #expect(verdict.failures.first?.hasPrefix("order: its heap in use besides SQLite's grew 15.3 %") == true, "\(verdict.failures)")
        #expect(verdict.failures.first?.contains("40.0 bytes per order") == true)
        #expect(verdict.heapBytesPerOrderWorst == "order")
        #expect(abs(verdict.heapBytesPerOrderMax - 40) < 0.01)
        #expect(verdict.heapGrowthWorst == "bus")
        #expect(abs(verdict.heapGrowthPercentMax - 20) < 0.01)
    }

    /// The same series pass when the rule allows 50 bytes an order, and both fail when it allows
    /// none (per cent alone): the bound given on the command line is the one applied.
    @Test func theBoundGivenIsTheOneApplied() {
        #expect(Self.judge(Self.orderLeaksBusSteps, leaks: LeakRule(bytesPerOrderMax: 50)).pass)
        let strict = Self.judge(Self.orderLeaksBusSteps, leaks: LeakRule(bytesPerOrderMax: 0))
        #expect(strict.failures.map { $0.prefix(while: { $0 != ":" }) }.sorted() == ["bus", "order"])
    }

    /// A flat system with a steady p99 is steady; one interval's p99 above twice the median is not.
    @Test func aFlatSystemIsSteadyAndAStallIsNot() {
        let flat: (Double) -> [String: Int] = { _ in ["order": 1_048_576, "bus": 100_000] }
        #expect(Self.judge(flat).pass)
        var intervals = Self.steadyIntervals
        intervals[4].p99 = 25
        let stalled = SoakJudge.judge(samples: Self.times.map { Self.sample(at: $0, heaps: flat($0)) }, intervals: intervals,
                                      warmUp: 0, every: 10, load: 70, rate: Self.rate)
        #expect(stalled.failures == ["p99 not steady: one interval at 25.0 ms against a median of 10.0 ms"])
    }
}
