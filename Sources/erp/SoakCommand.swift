import ArgumentParser
import ERPCore
import ERPProduction
import ERPReports
import ERPScenario
import ERPServices
import ERPStorage
import ERPZeroMQBackend
import Foundation

/// `erp soak`: every service as a process under a steady open-loop load for a long time, sampled
/// each interval: resident memory and open files per process, database sizes, and the orders'
/// latency per interval. It judges what a leak or a slow degradation would show: memory growth
/// after the warm-up, file descriptors that only go up, a p99 that drifts.
struct Soak: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run every service as a process under steady load for a long time; memory, open files, database sizes and p99 per interval.",
        discussion: """
            Starts the topology `erp up` runs (as `erp bench e2e` does: ipc:// sockets, the HTTP \
            gateway, stock multiplied so that orders are not cancelled for want of it) and sends \
            POST /orders open-loop for --duration at --rate, or at --share of --capacity (the \
            highest rate `erp bench e2e --find-max` reported). Every --every it samples each \
            service process: resident set (VmRSS) and its private part (RssAnon: heap and stacks), \
            its heap in use as its allocator counts it (mallinfo2, from the process's control \
            report) and SQLite's part of that, open file descriptors (/proc/PID/fd), and the \
            size of its database files (WAL included). Afterwards it judges, over the samples after \
            --warm-up: no process's heap in use besides SQLite's grew by more than 10 % and by more \
            than --leak-bytes-per-order for each order sent between the two halves of the samples \
            (a leak is memory kept per order; a small heap moves by 10 % with the work in flight), \
            and the resident set of all the processes grew by no more than 10 %. Growth is judged \
            by the floor (the lowest sample of \
            the later half against the lowest of the earlier half: a leak raises the floor, the \
            allocator's swings do not). Private memory is shown beside them: it also holds what \
            glibc keeps after frees, which comes and goes; SQLite's page caches grow with the \
            databases until they are full. No process's descriptors rose, \
            judged by their floor the same way (connections its clients opened, such as the load's \
            HTTP connections to the gateway, are counted apart), and no interval's p99 is more than twice the median \
            interval's; and the invariants, from the databases.

            Nothing is removed while it runs: the databases and logs take about 7 KB an order, \
            and a soak that would not fit on the output folder's disk is refused before it starts. \
            Writes DIR/samples.txt (each sample as it is taken: kept when a soak is stopped \
            early), DIR/soak.md (the tables), DIR/soak.json and the run's own reports. Exit status \
            0 when everything holds, 2 when something did not.
            """)

    @Option(parsing: .unconditional, help: ArgumentHelp("How long to send orders.", valueName: "duration")) var duration = "10m"
    @Option(parsing: .unconditional, help: "Orders per second (instead of --share of --capacity).") var rate: Double?
    @Option(parsing: .unconditional, help: "The share of --capacity to run at.") var share = 0.5
    @Option(parsing: .unconditional, help: "Orders per second the system sustains (erp bench e2e --find-max).") var capacity: Double?
    @Option(parsing: .unconditional, help: ArgumentHelp("How often to sample.", valueName: "duration")) var every = "1m"
    @Option(name: .customLong("warm-up"), parsing: .unconditional, help: ArgumentHelp("Samples before this are the warm-up, not judged.", valueName: "duration"))
    var warmUp = "2m"
    @Option(parsing: .unconditional, help: "Multiply every shop's stock by this.") var stock = 1000
    @Option(name: .customLong("leak-bytes-per-order"), parsing: .unconditional,
            help: ArgumentHelp("A heap that grew by more than 10 % is a leak only if it grew by more than this many bytes per order.", valueName: "bytes"))
    var leakBytesPerOrder = 32.0
    @Option(help: "The fixtures the services run with.") var fixtures = "fixtures/retail.json"
    @Option(help: ArgumentHelp("When the databases wait for the disk: before-send (production's), full, normal or off (docs/durability.md).", valueName: "mode")) var synchronous = "before-send"
    @Option(name: .customLong("out"), help: "Output folder.") var outputDirectory = "reports/soak"
    @Flag(help: "Print one JSON object with the figures as the last line.") var json = false

    /// One sample of one process.
    struct ProcessSample {
        var pid: Int32
        var probe: ProcessProbe
        var databaseBytes: Int
        /// What its allocator said in the newest control report (at most a second old).
        var heap: HeapUsage?
    }

    struct Sample {
        /// Seconds since the services answered.
        var at: Double
        var processes: [String: ProcessSample]
        var rssKiB: Int { processes.values.reduce(0) { $0 + $1.probe.rssKiB } }
        var anonymousKiB: Int { processes.values.reduce(0) { $0 + $1.probe.anonymousKiB } }
        var fileDescriptors: Int { processes.values.reduce(0) { $0 + $1.probe.descriptors } }
        var clientConnections: Int { processes.values.reduce(0) { $0 + $1.probe.clientConnections } }
        var databaseBytes: Int { processes.values.reduce(0) { $0 + $1.databaseBytes } }
    }

    struct Interval {
        var index: Int
        var orders: Int
        var p50: Double
        var p99: Double
    }

    func run() async throws {
        guard let length = Duration(parsing: duration), length >= .seconds(10), length <= .seconds(86_400) else {
            throw ValidationError("--duration must be from 10s to 24h, such as 10m")
        }
        guard let interval = Duration(parsing: every), interval >= .seconds(1), interval <= length else {
            throw ValidationError("--every must be at least 1s and at most --duration")
        }
        guard let warm = Duration(parsing: warmUp), warm >= .zero, warm < length else { throw ValidationError("--warm-up must be shorter than --duration") }
        // Samples are taken at 0, --every, 2 × --every … up to --duration; growth is judged by the
        // floors of two halves of those after the warm-up, so each half needs two.
        let judgedSamples = Int((length.seconds / interval.seconds).rounded(.down)) - Int((warm.seconds / interval.seconds).rounded(.up)) + 1
        guard judgedSamples >= Self.judgedSampleCountMin else {
            throw ValidationError("--duration \(duration), --warm-up \(warmUp) and --every \(every) leave \(judgedSamples) sample(s) after the warm-up; growth is judged by the lowest sample of each half of them, which takes at least \(Self.judgedSampleCountMin) (a longer --duration or a shorter --every)")
        }
        let target: Double
        if let rate {
            target = rate
        } else if let capacity {
            guard share > 0, share <= 1 else { throw ValidationError("--share must be in (0, 1]") }
            target = (capacity * share).rounded()
        } else {
            throw ValidationError("give --rate, or --capacity (what erp bench e2e --find-max reports) and --share")
        }
        guard leakBytesPerOrder >= 0, leakBytesPerOrder.isFinite else { throw ValidationError("--leak-bytes-per-order must be 0 or more") }
        guard target > 0, target <= 20_000 else { throw ValidationError("the rate must be above 0 and at most 20000 orders per second, not \(target)") }
        if let problem = Scenario.Limits.stockTimesProblem(stock) { throw ValidationError("--stock \(problem)") }
        guard let mode = SynchronousMode(rawValue: synchronous) else { throw ValidationError("--synchronous must be one of \(SynchronousMode.choices)") }

        if let problem = Self.diskProblem(orders: target * length.seconds, directory: outputDirectory) { throw ValidationError(problem) }
        let base = try loadFixtures(fixtures)
        try freshDirectory(outputDirectory)
        let out = URL(fileURLWithPath: outputDirectory).standardizedFileURL.path
        let (loaded, fixturesPath) = try fixturesWithStock(base, times: stock, into: out)
        let scenario = orderLoad(name: "soak", description: "erp soak: open-loop POST /orders at \(target)/s for \(length.shortDescription)",
                                 rate: target, duration: length, heal: .seconds(10), fixturesPath: fixturesPath)
        let runDirectory = out + "/run"
        try freshDirectory(runDirectory)
        let scenarioPath = runDirectory + "/scenario.yaml"
        try ScenarioWriter.yaml(scenario, header: ["Written by erp soak"]).write(toFile: scenarioPath, atomically: true, encoding: .utf8)
        print(String(format: "soak: %.0f orders/s for %@, sampled every %@ (%@ warm-up), reports in %@",
                     target, length.shortDescription, interval.shortDescription, warm.shortDescription, out))
        // Each sample is also on disk as soon as it is taken: a soak stopped early (Ctrl-C, a
        // machine going down) keeps what it measured.
        let samplesPath = out + "/samples.txt"
        _ = FileManager.default.createFile(atPath: samplesPath, contents: nil)
        let samplesFile = FileHandle(forWritingAtPath: samplesPath)
        defer { try? samplesFile?.close() }
        let databaseDirectory = runDirectory + "/db"
        var sampler: Task<[Sample], Never>?
        let (summary, backend) = try await runOverZeroMQ(
            scenario, scenarioPath: scenarioPath, fixturesPath: fixturesPath, fixtures: loaded, seed: 1, into: runDirectory,
            reproduce: erpCommandLine(["run", scenarioPath, "--mode", "zmq"]), synchronous: mode
        ) { backend in
            sampler = Task {
                var samples: [Sample] = []
                // The clock starts when every service answers (the workload starts a moment later).
                while backend.processIdentifiers.count < ServiceCatalog.startOrder.count, !Task.isCancelled {
                    try? await Task.sleep(for: .milliseconds(200))
                }
                let start = ContinuousClock.now
                var next = start
                while !Task.isCancelled, next - start <= length {
                    let sample = Self.sample(backend.serviceProcessIdentifiers, databaseDirectory: databaseDirectory, at: (ContinuousClock.now - start).seconds,
                                             heap: { backend.heap(of: $0, processId: $1) })
                    samples.append(sample)
                    print(Self.line(sample))
                    samplesFile?.put(Data((Self.line(sample) + "\n").utf8))
                    next += interval
                    try? await Task.sleep(until: next)
                }
                return samples
            }
        }
        sampler?.cancel()
        let samples = await sampler?.value ?? []
        let intervals = Self.intervals(backend.history, every: interval)
        let leaks = LeakRule(bytesPerOrderMax: leakBytesPerOrder)
        let verdict = Self.judge(samples: samples, intervals: intervals, warmUp: warm.seconds, every: interval.seconds, load: length.seconds,
                                 rate: target, leaks: leaks)
        let text = Self.report(samples: samples, intervals: intervals, verdict: verdict, summary: summary, target: target,
                               length: length, interval: interval, warm: warm, synchronous: mode, leaks: leaks)
        print(text)
        try text.write(toFile: out + "/soak.md", atomically: true, encoding: .utf8)
        let figures: [String: Any] = [
            "bench": "soak", "rate_per_s": target, "duration_s": length.seconds, "orders": summary.orders.submitted,
            "confirmed": summary.orders.confirmed, "rss_growth_percent_max": verdict.rssGrowthPercentMax,
            "anon_growth_percent_max": verdict.anonymousGrowthPercentMax, "heap_growth_percent_max": verdict.heapGrowthPercentMax,
            "heap_growth_worst": verdict.heapGrowthWorst, "heap_bytes_per_order_max": (verdict.heapBytesPerOrderMax * 10).rounded() / 10,
            "heap_bytes_per_order_worst": verdict.heapBytesPerOrderWorst, "leak_bytes_per_order": leakBytesPerOrder,
            "total_rss_growth_percent": verdict.totalRSSGrowthPercent,
            "fd_growth_max": verdict.fileDescriptorGrowthMax, "p99_ms_median": verdict.p99Median, "p99_ms_max": verdict.p99Max,
            "invariants_pass": summary.invariantsPass, "pass": verdict.pass && summary.invariantsPass, "synchronous": mode.rawValue,
        ]
        // The file keeps every sample and interval too, for a closer look at what grew.
        var file = figures
        file["samples"] = samples.map { sample in
            ["at_s": sample.at, "processes": sample.processes.mapValues { p in
                // A heap figure, or null before the process's first control report.
                func heap(_ figure: KeyPath<HeapUsage, Int>) -> Any { p.heap.map { $0[keyPath: figure] as Any } ?? NSNull() }
                return ["pid": p.pid, "rss_kib": p.probe.rssKiB, "anon_kib": p.probe.anonymousKiB, "file_kib": p.probe.fileKiB,
                        "fds": p.probe.descriptors, "client_connections": p.probe.clientConnections, "db_bytes": p.databaseBytes,
                        "heap_in_use_bytes": heap(\.inUseBytes), "heap_held_bytes": heap(\.heldBytes),
                        "heap_sqlite_bytes": heap(\.sqliteBytes), "heap_histogram_bytes": heap(\.histogramBytes)] as [String: Any]
            }] as [String: Any]
        }
        file["intervals"] = intervals.map { ["index": $0.index, "orders": $0.orders, "p50_ms": $0.p50, "p99_ms": $0.p99] as [String: Any] }
        try JSONSerialization.data(withJSONObject: file, options: [.sortedKeys, .prettyPrinted]).write(to: URL(fileURLWithPath: out + "/soak.json"))
        if json { printJSON(figures) }
        if !(verdict.pass && summary.invariantsPass) { throw ExitCode(ExitStatus.consistency) }
    }

    static func sample(_ pids: [String: Int32], databaseDirectory: String, at seconds: Double,
                       heap: (String, Int32) -> HeapUsage?) -> Sample {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: databaseDirectory)) ?? []
        var processes: [String: ProcessSample] = [:]
        for (service, pid) in pids {
            var bytes = 0
            for file in files where file.hasPrefix(service + "-") && file.contains(".sqlite") {
                let size = (try? FileManager.default.attributesOfItem(atPath: databaseDirectory + "/" + file)[.size] as? Int) ?? nil
                bytes += size ?? 0
            }
            processes[service] = ProcessSample(pid: pid, probe: ProcessProbe.read(pid: pid), databaseBytes: bytes, heap: heap(service, pid))
        }
        return Sample(at: seconds, processes: processes)
    }

    static func line(_ s: Sample) -> String {
        String(format: "  %6.0fs: RSS %.1f MiB in %d processes, %d open files, databases %.1f MiB", s.at, Double(s.rssKiB) / 1024,
               s.processes.count, s.fileDescriptors, Double(s.databaseBytes) / 1_048_576)
    }

    /// The orders by the interval they were due in, with their latency from when they were due.
    static func intervals(_ history: [ClientRecord], every: Duration) -> [Interval] {
        guard let first = history.map(\.scheduledAt).min() else { return [] }
        var buckets: [Int: LatencyRecorder] = [:]
        for record in history {
            guard let done = record.completedAt, record.outcome == .confirmed || record.outcome == .cancelled else { continue }
            let index = Int((record.scheduledAt - first).seconds / every.seconds)
            buckets[index, default: LatencyRecorder()].record(done - record.scheduledAt)
        }
        return buckets.keys.sorted().map { index in
            let summary = buckets[index]!.summary
            return Interval(index: index, orders: summary.count, p50: summary.p50, p99: summary.p99)
        }
    }

    struct Verdict {
        var rssGrowthPercentMax = 0.0
        var rssGrowthWorst = ""
        var anonymousGrowthPercentMax = 0.0
        var anonymousGrowthWorst = ""
        /// Heap in use besides SQLite's, per process (by floor).
        var heapGrowthPercentMax = 0.0
        var heapGrowthWorst = ""
        /// The same floors' growth per order taken between the halves' first samples (`LeakRule`).
        var heapBytesPerOrderMax = 0.0
        var heapBytesPerOrderWorst = ""
        /// Processes that did not report their heap at every sample (judged by private memory).
        var unreportedHeaps: [String] = []
        var totalRSSGrowthPercent = 0.0
        var fileDescriptorGrowthMax = 0
        var fileDescriptorGrowthWorst = ""
        var p99Median = 0.0
        var p99Max = 0.0
        var failures: [String] = []
        var pass: Bool { failures.isEmpty }
    }

    /// What a soak writes to its folder per order, the databases and the services' logs together:
    /// 6.3 KB in a ten-minute soak at 250 orders/s (948 MB for 150,304 orders, 2026-12-07), rounded
    /// up. Nothing is removed while the soak runs (docs/soak.md).
    static let bytesWrittenPerOrder = 7_000.0

    /// Why a soak of `orders` cannot be written under `directory` (or the nearest folder of it
    /// that exists): its file system has less room than the soak would write. A full disk fails
    /// every service's commits at once, and with them everything else the machine runs. Nil when
    /// it fits, or when the free space cannot be read.
    static func diskProblem(orders: Double, directory: String) -> String? {
        var folder = URL(fileURLWithPath: directory).standardizedFileURL
        while !FileManager.default.fileExists(atPath: folder.path), folder.path != "/" { folder.deleteLastPathComponent() }
        guard let free = (try? FileManager.default.attributesOfFileSystem(forPath: folder.path))?[.systemFreeSize] as? NSNumber else { return nil }
        let needed = orders * bytesWrittenPerOrder
        guard needed > free.doubleValue * 0.9 else { return nil }
        return String(format: "a soak of %.0f orders writes about %.1f GB (databases and logs, about %.0f KB an order), and %@ has %.1f GB free: shorten --duration, lower the rate, or give --out on a larger disk",
                      orders, needed / 1e9, bytesWrittenPerOrder / 1000, folder.path, free.doubleValue / 1e9)
    }

    /// Two samples in each half after the warm-up: a floor of one sample is that sample.
    static let judgedSampleCountMin = 4

    /// `load`: how long orders were sent, in seconds, at `rate` a second; `leaks`: when a heap's
    /// growth is a leak.
    static func judge(samples: [Sample], intervals: [Interval], warmUp: Double, every: Double, load: Double,
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

    /// `ours (of which latency histograms) + SQLite's` in MiB, summed over `heaps`; "–" when one
    /// is missing.
    static func heapText(_ heaps: [HeapUsage?]) -> String {
        guard heaps.allSatisfy({ $0 != nil }) else { return "–" }
        let own = heaps.reduce(0) { $0 + $1!.ownBytes }, sqlite = heaps.reduce(0) { $0 + $1!.sqliteBytes }
        let histograms = heaps.reduce(0) { $0 + $1!.histogramBytes }
        return String(format: "%.2f (%.2f) + %.2f", Double(own) / 1_048_576, Double(histograms) / 1_048_576, Double(sqlite) / 1_048_576)
    }

    static func report(samples: [Sample], intervals: [Interval], verdict: Verdict, summary: RunSummary, target: Double, length: Duration,
                       interval: Duration, warm: Duration, synchronous: SynchronousMode, leaks: LeakRule) -> String {
        var out = ["# Soak: \(Int(target)) orders/s for \(length.shortDescription)", ""]
        out.append("Sampled every \(interval.shortDescription); the first \(warm.shortDescription) are the warm-up. durability `\(synchronous.rawValue)`. "
                   + "\(summary.orders.submitted) orders, \(summary.orders.confirmed) confirmed, \(summary.orders.cancelled) cancelled, "
                   + "\(summary.orders.clientGaveUp) given up; invariants " + (summary.invariantsPass ? "hold" : "FAILED: " + summary.failedInvariants.joined(separator: ", ")) + ".")
        out += ["", "| at | orders due in the interval from then | p50 ms | p99 ms | RSS, all processes (MiB) | of which private (MiB) | heap in use: ours (of which latency histograms) + SQLite's (MiB) | open files (of which clients' connections) | databases (MiB) |", "|---|---|---|---|---|---|---|---|---|"]
        let byIndex = Dictionary(uniqueKeysWithValues: intervals.map { ($0.index, $0) })
        for (i, s) in samples.enumerated() {
            // Interval i ends at sample i + 1: the orders due between the two samples.
            let orders = byIndex[i].map { String($0.orders) } ?? "–"
            let p50 = byIndex[i].map { String(format: "%.1f", $0.p50) } ?? "–", p99 = byIndex[i].map { String(format: "%.1f", $0.p99) } ?? "–"
            out.append(String(format: "| %.0f s%@ | %@ | %@ | %@ | %.1f | %.1f | %@ | %d (%d) | %.1f |", s.at, s.at < warm.seconds ? " (warm-up)" : "", orders, p50, p99,
                              Double(s.rssKiB) / 1024, Double(s.anonymousKiB) / 1024, heapText(s.processes.values.map(\.heap)),
                              s.fileDescriptors, s.clientConnections, Double(s.databaseBytes) / 1_048_576))
        }
        if let first = samples.first(where: { $0.at >= warm.seconds }), let last = samples.last {
            out += ["", "Per process, first sample after the warm-up and last:", "",
                    "| process | RSS (KiB) | private (KiB) | heap in use: ours (of which latency histograms) + SQLite's (MiB) | open files (of which clients' connections) | database (KiB) |", "|---|---|---|---|---|---|"]
            for service in first.processes.keys.sorted() {
                guard let a = first.processes[service], let b = last.processes[service] else { continue }
                let (p, q) = (a.probe, b.probe)
                out.append("| \(service) | \(p.rssKiB) → \(q.rssKiB) | \(p.anonymousKiB) → \(q.anonymousKiB) | \(heapText([a.heap])) → \(heapText([b.heap])) | \(p.descriptors) (\(p.clientConnections)) → \(q.descriptors) (\(q.clientConnections)) | \(a.databaseBytes / 1024) → \(b.databaseBytes / 1024) |")
            }
        }
        out += ["", String(format: "Largest growth after the warm-up (the lowest sample of the later half against the lowest of the earlier half): heap in use besides SQLite's %.1f %% (%@), per order %.1f bytes (%@); resident set of all the processes %.1f %%; for comparison, private memory %.1f %% (%@), resident set %.1f %% (%@); largest growth in open files (clients' connections left out): %d (%@); p99 per interval: median %.1f ms, highest %.1f ms.",
                           verdict.heapGrowthPercentMax, verdict.heapGrowthWorst.isEmpty ? "none" : verdict.heapGrowthWorst,
                           verdict.heapBytesPerOrderMax, verdict.heapBytesPerOrderWorst.isEmpty ? "none" : verdict.heapBytesPerOrderWorst, verdict.totalRSSGrowthPercent,
                           verdict.anonymousGrowthPercentMax, verdict.anonymousGrowthWorst.isEmpty ? "none" : verdict.anonymousGrowthWorst,
                           verdict.rssGrowthPercentMax, verdict.rssGrowthWorst.isEmpty ? "none" : verdict.rssGrowthWorst, verdict.fileDescriptorGrowthMax,
                           verdict.fileDescriptorGrowthWorst.isEmpty ? "none" : verdict.fileDescriptorGrowthWorst, verdict.p99Median, verdict.p99Max)]
        if !verdict.unreportedHeaps.isEmpty {
            out.append("Judged by private memory, having not reported their heap at every sample: " + verdict.unreportedHeaps.joined(separator: ", ") + ".")
        }
        out.append(verdict.pass ? String(format: "Verdict: steady (no process's heap in use besides SQLite's grew by both more than %g %% and more than %g bytes per order, the resident set of all of them grew ≤ 10 %%, by their floors; the descriptors' floor did not rise; p99 within twice its median).", leaks.percentMax, leaks.bytesPerOrderMax)
                                : "Verdict: NOT steady:\n" + verdict.failures.map { "- " + $0 }.joined(separator: "\n"))
        return out.joined(separator: "\n") + "\n"
    }
}
