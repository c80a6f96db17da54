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

    typealias ProcessSample = SoakJudge.ProcessSample
    typealias Sample = SoakJudge.Sample
    typealias Interval = SoakJudge.Interval
    typealias Verdict = SoakJudge.Verdict

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
        guard judgedSamples >= SoakJudge.judgedSampleCountMin else {
            throw ValidationError("--duration \(duration), --warm-up \(warmUp) and --every \(every) leave \(judgedSamples) sample(s) after the warm-up; growth is judged by the lowest sample of each half of them, which takes at least \(SoakJudge.judgedSampleCountMin) (a longer --duration or a shorter --every)")
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
        let verdict = SoakJudge.judge(samples: samples, intervals: intervals, warmUp: warm.seconds, every: interval.seconds, load: length.seconds,
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
