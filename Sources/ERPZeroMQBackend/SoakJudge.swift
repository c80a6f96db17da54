import ERPProduction
import ERPReports
import Foundation

/// What `erp soak` judges from its samples, apart from the command so that tests reach it: memory
/// and descriptors by their floors (`SampleFloor`), a heap's growth by `LeakRule`, and p99 per
/// interval against its median.
public enum SoakJudge {
    /// One sample of one process.
    public struct ProcessSample: Sendable {
        public var pid: Int32
        public var probe: ProcessProbe
        public var databaseBytes: Int
        /// What its allocator said in the newest control report (at most a second old).
        public var heap: HeapUsage?

        public init(pid: Int32, probe: ProcessProbe, databaseBytes: Int, heap: HeapUsage?) {
            self.pid = pid; self.probe = probe; self.databaseBytes = databaseBytes; self.heap = heap
        }
    }

    public struct Sample: Sendable {
        /// Seconds since the services answered.
        public var at: Double
        public var processes: [String: ProcessSample]
        public var rssKiB: Int { processes.values.reduce(0) { $0 + $1.probe.rssKiB } }
        public var anonymousKiB: Int { processes.values.reduce(0) { $0 + $1.probe.anonymousKiB } }
        public var fileDescriptors: Int { processes.values.reduce(0) { $0 + $1.probe.descriptors } }
        public var clientConnections: Int { processes.values.reduce(0) { $0 + $1.probe.clientConnections } }
        public var databaseBytes: Int { processes.values.reduce(0) { $0 + $1.databaseBytes } }

        public init(at: Double, processes: [String: ProcessSample]) { self.at = at; self.processes = processes }
    }

    public struct Interval: Sendable {
        public var index: Int
        public var orders: Int
        public var p50: Double
        public var p99: Double

        public init(index: Int, orders: Int, p50: Double, p99: Double) { self.index = index; self.orders = orders; self.p50 = p50; self.p99 = p99 }
    }

    public struct Verdict: Sendable {
        public var rssGrowthPercentMax = 0.0
        public var rssGrowthWorst = ""
        public var anonymousGrowthPercentMax = 0.0
        public var anonymousGrowthWorst = ""
        /// Heap in use besides SQLite's, per process (by floor).
        public var heapGrowthPercentMax = 0.0
        public var heapGrowthWorst = ""
        /// The same floors' growth per order taken between the halves' first samples (`LeakRule`).
        public var heapBytesPerOrderMax = 0.0
        public var heapBytesPerOrderWorst = ""
        /// Processes that did not report their heap at every sample (judged by private memory).
        public var unreportedHeaps: [String] = []
        public var totalRSSGrowthPercent = 0.0
        public var fileDescriptorGrowthMax = 0
        public var fileDescriptorGrowthWorst = ""
        public var p99Median = 0.0
        public var p99Max = 0.0
        public var failures: [String] = []
        public var pass: Bool { failures.isEmpty }

        public init() {}
    }

    /// Two samples in each half after the warm-up: a floor of one sample is that sample.
    public static let judgedSampleCountMin = 4

    /// `load`: how long orders were sent, in seconds, at `rate` a second; `leaks`: when a heap's
    /// growth is a leak.
    public static func judge(samples: [Sample], intervals: [Interval], warmUp: Double, every: Double, load: Double,
                      rate: Double, leaks: LeakRule = LeakRule()) -> Verdict {
        var verdict = Verdict()
        let judged = samples.filter { $0.at >= warmUp }
        if let first = judged.first, judged.count >= judgedSampleCountMin {
            // The orders sent between the halves' first samples: what a steady leak's floor grows
            // by (the load is open-loop, so its rate is what was sent).
            let ordersBetween = rate * (judged[SampleFloor.laterHalfStart(count: judged.count)].at - first.at)
            for service in first.processes.keys.sorted() {
                let series = judged.compactMap { $0.processes[service] }
                guard let a = series.first, let b = series.last, series.count == judged.count else { continue }
                if let other = series.first(where: { $0.pid != a.pid }) {
                    verdict.failures.append("\(service) restarted during the soak (pid \(a.pid) then \(other.pid))")
                    continue
                }
                // Private memory and the resident set are shown for every process, but judged only
                // for one that did not report its heap: private memory also holds what glibc keeps
                // after frees, and the resident set counts pages of the binary the thirteen
                // processes share. Everything is judged by its floor (the lowest sample of the
                // later half against the earlier half's): single samples swing with the instant.
                let rssFloor = SampleFloor(series.map(\.probe.rssKiB))!, anonymousFloor = SampleFloor(series.map(\.probe.anonymousKiB))!
                let rss = rssFloor.growthPercent, anonymous = anonymousFloor.growthPercent
                if rss > verdict.rssGrowthPercentMax { verdict.rssGrowthPercentMax = rss; verdict.rssGrowthWorst = service }
                if anonymous > verdict.anonymousGrowthPercentMax { verdict.anonymousGrowthPercentMax = anonymous; verdict.anonymousGrowthWorst = service }
                let heaps = series.compactMap(\.heap)
                if heaps.count == series.count {
                    // The process said what its allocator holds: a leak of ours grows the heap in
                    // use besides SQLite's (whose page caches grow with the databases until full).
                    // Private memory also holds what glibc keeps after frees, which swings.
                    let ownBytes = heaps.map(\.ownBytes)
                    let ownFloor = SampleFloor(ownBytes)!
                    let own = ownFloor.growthPercent
                    let perOrder = LeakRule.bytesPerOrder(ownFloor, unitBytes: 1, orders: ordersBetween)
                    if own > verdict.heapGrowthPercentMax { verdict.heapGrowthPercentMax = own; verdict.heapGrowthWorst = service }
                    if perOrder > verdict.heapBytesPerOrderMax { verdict.heapBytesPerOrderMax = perOrder; verdict.heapBytesPerOrderWorst = service }
                    if leaks.isLeak(ownFloor, unitBytes: 1, orders: ordersBetween) {
                        let thirds = SampleFloor.thirds(ownBytes)!.map { String($0 / 1024) }.joined(separator: " → ")
                        verdict.failures.append(String(format: "%@: its heap in use besides SQLite's grew %.1f %% after the warm-up, %.1f bytes per order (floor of the earlier half of the samples %d KiB, of the later half %d KiB, %.0f orders apart; by thirds %@ KiB; first and last sample %d → %d KiB)",
                                                       service, own, perOrder, ownFloor.earlier / 1024, ownFloor.later / 1024, ordersBetween, thirds,
                                                       heaps.first!.ownBytes / 1024, heaps.last!.ownBytes / 1024))
                    }
                } else {
                    verdict.unreportedHeaps.append(service)
                    if leaks.isLeak(anonymousFloor, unitBytes: 1024, orders: ordersBetween) {
                        verdict.failures.append(String(format: "%@: private memory's floor grew %.1f %% after the warm-up, %.1f bytes per order, and its heap was not reported (lowest of the earlier half of the samples %d KiB, of the later half %d KiB, %.0f orders apart; first and last sample %d → %d KiB; resident set's floor %d → %d KiB)",
                                                       service, anonymous, LeakRule.bytesPerOrder(anonymousFloor, unitBytes: 1024, orders: ordersBetween),
                                                       anonymousFloor.earlier, anonymousFloor.later, ordersBetween, a.probe.anonymousKiB, b.probe.anonymousKiB,
                                                       rssFloor.earlier, rssFloor.later))
                    }
                }
                // Descriptors by their floor too: a connection a client closes between the look at
                // the descriptors and the look at the connection table counts as the process's own
                // for that sample (a gateway at 155 connections a second: 42, 45, 42, 44 …);
                // a descriptor leak raises the floor.
                let fdFloor = SampleFloor(series.map(\.probe.ownDescriptors))!
                let fds = fdFloor.later - fdFloor.earlier
                if fds > verdict.fileDescriptorGrowthMax { verdict.fileDescriptorGrowthMax = fds; verdict.fileDescriptorGrowthWorst = service }
                if fds > 0 {
                    verdict.failures.append("\(service): open file descriptors (clients' connections left out) rose from at least \(fdFloor.earlier) in the earlier half of the samples after the warm-up to at least \(fdFloor.later) in the later half (first and last sample \(a.probe.ownDescriptors) → \(b.probe.ownDescriptors))")
                }
            }
            // The resident set of the whole system: what the machine gives the services.
            let totalFloor = SampleFloor(judged.map(\.rssKiB))!
            verdict.totalRSSGrowthPercent = totalFloor.growthPercent
            if verdict.totalRSSGrowthPercent > 10 {
                verdict.failures.append(String(format: "the resident set of all the processes grew %.1f %% after the warm-up (floor of the earlier half of the samples %.1f MiB, of the later half %.1f MiB)",
                                               verdict.totalRSSGrowthPercent, Double(totalFloor.earlier) / 1024, Double(totalFloor.later) / 1024))
            }
        } else {
            verdict.failures.append("\(judged.count) sample(s) after the warm-up: growth is judged by the lowest sample of each half of them, which takes at least \(judgedSampleCountMin)")
        }
        // Whole intervals past the warm-up (`soakIntervalIsJudged`).
        let steady = intervals.filter { soakIntervalIsJudged($0.index, every: every, warmUp: warmUp, load: load) }
        let p99s = steady.map(\.p99).sorted()
        if !p99s.isEmpty {
            verdict.p99Median = p99s[p99s.count / 2]
            verdict.p99Max = p99s.last!
            if verdict.p99Max > 2 * verdict.p99Median {
                verdict.failures.append(String(format: "p99 not steady: one interval at %.1f ms against a median of %.1f ms", verdict.p99Max, verdict.p99Median))
            }
        } else {
            verdict.failures.append("no whole interval of orders after the warm-up")
        }
        return verdict
    }
}
