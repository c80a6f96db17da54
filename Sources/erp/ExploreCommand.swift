import ArgumentParser
import ERPCore
import ERPProduction
import ERPReports
import ERPScenario
import ERPServices
import Foundation

/// `erp explore`: many seeds of one or more scenarios, each an `erp run` worker process, as many
/// at a time as there are cores. Writes a summary (per scenario: seeds run, failures by invariant,
/// the slowest seeds), a JUnit file (a case per seed) and the full report of every failing seed
/// with the command that reproduces it. Exit status 0 when every seed passed.
struct Explore: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run many seeds of scenarios in worker processes and report the failing ones.",
        discussion: """
            Each seed is `erp run SCENARIO --seed N` in a process of its own (--jobs at a time). DIR \
            (--out, default a new reports/explore-… folder) gets summary.json (its schema is in \
            docs/report-format.md), summary.md, junit.xml and runs/<scenario>/seed-<N>/ for every \
            failing seed (every seed with --keep-passing). On a terminal a progress line shows seeds \
            done, failures, seeds per minute and the time left; otherwise a line at each tenth of the \
            seeds, and one per failing seed. Ctrl-C stops the workers, writes the summary of the seeds \
            that finished and prints the --seeds that resume the rest. Exit status: 0 all passed, 2 \
            some seed broke an invariant or liveness, 1 bad arguments or some seed's run could not \
            be judged (and none broke anything), 4 only expectations failed, 130 interrupted.
            """)

    @Argument(help: "Scenario files (YAML).") var scenarios: [String]
    @Option(help: ArgumentHelp("Seeds: a range and/or single seeds, e.g. 1..100 or 1..5,9,20..30.", valueName: "seeds"))
    var seeds: String = "1..20"
    @Option(parsing: .unconditional, help: "Worker processes at a time (default: the machine's cores).") var jobs: Int?
    @Option(parsing: .unconditional, help: ArgumentHelp("Stop starting seeds after this long, e.g. 10m (the running ones finish).", valueName: "duration"))
    var time: String?
    @Option(name: .customLong("out"), help: "Output folder (default: a new folder under reports/).") var outputDirectory: String?
    @Option(help: "Backend of every run: simulation or zmq.") var mode: RunMode = .simulation
    @Option(parsing: .unconditional, help: ArgumentHelp("Passed to each run, in either mode: the chaos phase's length (fault times, heal and expected counts scale with it).", valueName: "duration")) var duration: String?
    @Flag(help: "Keep the full report of passing seeds too.") var keepPassing = false
    @Flag(help: "Swarm: each seed draws its own fault schedule and order rate from the scenario's vocabulary, written beside its report as seed-N.yaml (its reproduce command runs that file).")
    var swarm = false
    @Flag(help: "With --swarm: draw each seed's faults from the fault kinds of every scenario given (a random part of them per seed), over its own scenario's workload, instead of from its scenario's alone.")
    var mix = false
    @Option(name: .customLong("mix-from"), help: ArgumentHelp("With --mix: draw from the fault kinds of these scenario files (comma-separated) instead of those run; a resumed --mix run names its first run's files so.", valueName: "files"))
    var mixFrom: String?
    @Option(name: .customLong("defect"), help: ArgumentHelp("Plant a defect in every run (repeatable): does exploring find it?", valueName: "name"))
    var defects: [String] = []

    /// Bad arguments: the message names the argument, the exit status is 1 (as for `erp run`).
    /// Checked in `run`, not in `validate`: the argument parser validates before it reports an
    /// unknown option, so `--workers 1 s.yaml` was refused as "no scenario file 1" (the unknown
    /// option's value taken for a scenario) instead of naming `--workers` (a report reader's trial).
    func check() throws {
        guard !scenarios.isEmpty else { throw bad("name at least one scenario file") }
        for path in scenarios where !FileManager.default.fileExists(atPath: path) { throw bad("no scenario file \(path)") }
        do { _ = try Self.parseSeeds(seeds) } catch let error as ValidationError { throw bad(error.message) }
        if let jobs, !(1...256).contains(jobs) { throw bad("--jobs must be from 1 to 256, not \(jobs)") }
        if let time { guard let d = Duration(parsing: time), d > .zero else { throw bad("--time must be a duration such as 10m, not '\(time)'") } }
        if let duration, case .failure(let refused) = chaosDuration(duration) { throw bad(refused.message) }
        if mix && !swarm { throw bad("--mix draws swarm schedules: give --swarm too") }
        if let mixFrom {
            guard mix else { throw bad("--mix-from names where --mix draws from: give --swarm --mix too") }
            guard !vocabularyPaths.isEmpty else { throw bad("--mix-from names no scenario file") }
            for path in vocabularyPaths where !FileManager.default.fileExists(atPath: path) { throw bad("--mix-from \(mixFrom): no scenario file \(path)") }
        }
        for name in defects where !PlantedDefects.names.contains(name) {
            throw bad("--defect \(name): no such defect; known: \(PlantedDefects.names.joined(separator: ", "))")
        }
    }

    private func bad(_ message: String) -> ExitCode {
        FileHandle.standardError.put(Data("erp explore: \(message)\n".utf8))
        return ExitCode(ExitStatus.invalidInput)
    }

    /// `1..100` or `1..5,9,20..30` as a sorted list without repeats; refuses what is not.
    static func parseSeeds(_ text: String) throws -> [UInt64] {
        var out: [UInt64] = []
        for part in text.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !part.isEmpty {
            let bounds = part.components(separatedBy: "..")
            guard bounds.count <= 2, let low = UInt64(bounds[0]), let high = UInt64(bounds.last!) else {
                throw ValidationError("--seeds takes ranges and seeds such as 1..100 or 1..5,9; '\(part)' is neither")
            }
            guard low <= high else { throw ValidationError("--seeds: \(part) is an empty range (\(low) > \(high))") }
            guard high - low < 1_000_000, out.count + Int(high - low) < 1_000_000 else { throw ValidationError("--seeds: at most a million seeds") }
            out += Array(low...high)
        }
        guard !out.isEmpty else { throw ValidationError("--seeds names no seed") }
        return Array(Set(out)).sorted()
    }

    /// One unit of work.
    struct Job: Sendable { var scenarioPath: String; var scenario: String; var seed: UInt64; var loaded: Scenario }

    func run() async throws {
        try check()
        let seedList = try Self.parseSeeds(seeds)
        var named: [(path: String, name: String, loaded: Scenario)] = []
        for path in scenarios {
            do { let loaded = try ScenarioLoader.load(path: path); named.append((path, loaded.name, loaded)) } catch {
                FileHandle.standardError.put(Data("erp: \(error.description)\n".utf8))
                throw ExitCode(ExitStatus.invalidInput)
            }
        }
        // Each scenario's runs go under runs/<name>/ and its line in the summary by its name: two
        // files of one name (or one file given twice) were merged into one row and one folder.
        var byName: [String: String] = [:]
        for entry in named {
            if let earlier = byName[entry.name] {
                throw bad(earlier == entry.path ? "\(entry.path) is given twice"
                          : "\(earlier) and \(entry.path) are both named '\(entry.name)'; their runs would share runs/\(entry.name)/ and one line of the summary")
            }
            byName[entry.name] = entry.path
        }
        // The library's fault vocabulary for --mix; real processes get only what they can suffer.
        var sources = named.map(\.loaded)
        if mix && mixFrom != nil {
            do { sources = try vocabularyPaths.map { path throws(ScenarioError) in try ScenarioLoader.load(path: path) } } catch {
                FileHandle.standardError.put(Data("erp: \(error.description)\n".utf8))
                throw ExitCode(ExitStatus.invalidInput)
            }
        }
        let vocabulary = mix ? Swarm.vocabulary(of: sources).filter { mode == .simulation || !$0.simulationOnly } : nil
        if vocabulary?.isEmpty == true {
            FileHandle.standardError.put(Data("erp explore: --mix in zmq mode: every fault kind of \(vocabularyPaths.joined(separator: ", ")) is one only the simulator can cause\n".utf8))
            throw ExitCode(ExitStatus.invalidInput)
        }
        let out = outputDirectory ?? newExploreDirectory(named.map(\.name), seedList)
        // Afresh, as every --out: an earlier exploration's failing reports beside a new summary
        // that says none failed, or a run's trace beside an exploration's summary, misled; a
        // folder erp did not write is refused.
        do { try freshDirectory(out) } catch {
            FileHandle.standardError.put(Data("erp explore: --out \(error)\n".utf8))
            throw ExitCode(ExitStatus.invalidInput)
        }
        try FileManager.default.createDirectory(atPath: out + "/runs", withIntermediateDirectories: true)
        let jobs = named.flatMap { s in seedList.map { Job(scenarioPath: s.path, scenario: s.name, seed: $0, loaded: s.loaded) } }
        let started = ContinuousClock.now
        let startedAt = Date()
        let budget = time.flatMap(Duration.init(parsing:))
        let executable = erpExecutable
        let state = ExploreState(total: jobs.count, tty: isatty(STDOUT_FILENO) == 1, executable: executable)
        let interrupts = TerminationSignals { state.interrupt() }
        defer { interrupts.cancel() }
        FileHandle.standardOutput.put(Data("exploring \(named.count) scenario(s) × \(seedList.count) seeds = \(jobs.count) runs, \(workerCount()) at a time; reports in \(out)\n".utf8))
        if let vocabulary {
            let kinds = Swarm.orderedKinds(vocabulary)
            FileHandle.standardOutput.put(Data("mixing \(kinds.count) fault kind(s) (\(vocabulary.count) templates) from \(vocabularyPaths.count) scenario file(s): \(kinds.joined(separator: ", "))\n".utf8))
        }

        await withTaskGroup(of: Void.self) { group in
            var next = 0
            func launch() {
                guard next < jobs.count, !state.stopped else { return }
                if let budget, ContinuousClock.now - started > budget { state.timeUp(); return }
                if state.executableChanged() { return }
                let job = jobs[next]
                next += 1
                group.addTask { await runSeed(job, vocabulary: vocabulary, out: out, executable: executable, state: state) }
            }
            for _ in 0..<workerCount() { launch() }
            while await group.next() != nil { launch() }
        }
        state.endProgress()

        let finished = state.results
        var notRun: [String: String] = [:]
        for s in named {
            let done = Set(finished.filter { $0.scenario == s.name }.map(\.seed))
            let missing = seedList.filter { !done.contains($0) }
            if !missing.isEmpty { notRun[s.name] = ExploreSummary.ranges(missing) }
        }
        let summary = ExploreSummary(mode: mode.rawValue, experiment: ExploreSummary.Experiment(swarm: swarm, mix: mix, defects: defects, duration: duration),
                                     seeds: finished, notRun: notRun, interrupted: state.wasInterrupted,
                                     wallSeconds: (ContinuousClock.now - started).seconds)
        try summary.json().write(to: URL(fileURLWithPath: out + "/summary.json"))
        try Data(summary.markdown.utf8).write(to: URL(fileURLWithPath: out + "/summary.md"))
        try Data(summary.junit(startedAt: startedAt).utf8).write(to: URL(fileURLWithPath: out + "/junit.xml"))

        print("\(summary.seeds.count) seeds, \(summary.failures.count) failing, \(summary.seedsPerMinute) seeds per minute")
        for totals in summary.scenarios {
            let by = totals.failuresByInvariant.sorted { $0.key < $1.key }.map { "\($0.key) ×\($0.value)" }.joined(separator: ", ")
            print("  \(totals.scenario): \(totals.seedsRun) seeds, \(totals.failingSeeds.count) failing\(by.isEmpty ? "" : " (\(by))")")
        }
        for failure in summary.failures.prefix(10) { print("  failing: \(failure.reproduce)") }
        if summary.failures.count > 10 { print("  … \(summary.failures.count - 10) more in \(out)/summary.md") }
        print("summary: \(out)/summary.md")
        if !notRun.isEmpty {
            let why = state.wasInterrupted ? "interrupted"
                : state.wasReplaced ? "the erp binary changed under the run (rebuilt?), so no more seeds were started" : "time budget spent"
            print("\(why); to run the rest: " + notRun.sorted { $0.key < $1.key }.map { name, seeds in
                let path = named.first { $0.name == name }!.path
                let workers: [String] = self.jobs.map { ["--jobs", "\($0)"] } ?? []
                return erpCommandLine(["explore", path, "--seeds", seeds.replacingOccurrences(of: " ", with: "")] + experimentFlags + workers)
            }.joined(separator: "; "))
        }
        if state.wasInterrupted { throw ExitCode(130) }
        // A finding about the ERP outranks a run that could not be judged, which outranks missed
        // expectations; a run error is never counted as a broken invariant (a bad option passed to
        // every seed once made every seed a "regression", exit 2).
        if summary.failures.contains(where: { !$0.failedInvariants.isEmpty || [ExitStatus.consistency, ExitStatus.liveness].contains($0.exitStatus) }) {
            throw ExitCode(ExitStatus.consistency)
        }
        if summary.failures.contains(where: \.isRunError) { throw ExitCode(ExitStatus.invalidInput) }
        if !summary.failures.isEmpty { throw ExitCode(ExitStatus.expectations) }
    }

    /// The files `--mix` draws from: `--mix-from`'s, or the scenarios run.
    private var vocabularyPaths: [String] {
        mixFrom.map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty } } ?? scenarios
    }

    /// The options each `erp run` is given, as a seed's reproduce command repeats them.
    private var runFlags: [String] {
        (mode != .simulation ? ["--mode", mode.rawValue] : []) + (duration.map { ["--duration", $0] } ?? [])
            + defects.flatMap { ["--defect", $0] }
    }

    /// The options that make the experiment what it is, as a resume command must repeat them (a
    /// resumed --mix run draws from the first run's files, not from the one scenario it resumes).
    private var experimentFlags: [String] {
        runFlags + (swarm ? ["--swarm"] : []) + (mix ? ["--mix", "--mix-from", vocabularyPaths.joined(separator: ",")] : [])
    }

    private func workerCount() -> Int { jobs ?? max(1, ProcessInfo.processInfo.activeProcessorCount) }

    /// Runs one seed as `erp run` in its own process and reads what it wrote.
    private func runSeed(_ job: Job, vocabulary: [ScheduledFault.Kind]?, out: String, executable: String, state: ExploreState) async {
        let directory = "\(out)/runs/\(job.scenario)/seed-\(job.seed)"
        try? FileManager.default.createDirectory(atPath: "\(out)/runs/\(job.scenario)", withIntermediateDirectories: true)
        var scenarioPath = job.scenarioPath
        if swarm {
            // This seed's own schedule, as a file its reproduce command runs.
            let drawn = Swarm.draw(from: job.loaded, seed: job.seed, vocabulary: vocabulary)
            scenarioPath = directory + ".yaml"
            let fixtures = URL(fileURLWithPath: resolve(job.loaded.fixturesPath, relativeTo: job.scenarioPath)).standardizedFileURL.path
            let vocabularyText = vocabulary == nil ? "the scenario's fault vocabulary" : "the fault vocabulary of \(vocabularyPaths.count) scenarios (--mix)"
            let yaml = ScenarioWriter.yaml(drawn, header: ["Drawn by erp explore --swarm\(vocabulary == nil ? "" : " --mix") from \(job.scenarioPath), seed \(job.seed):",
                                                          "\(vocabularyText) on services, times and lengths of this seed's own."],
                                           fixturesPath: fixtures)
            try? yaml.write(toFile: scenarioPath, atomically: true, encoding: .utf8)
        }
        // --exit-with-parent: a worker whose explore was killed (SIGKILL, a CI's timeout) stops as on
        // Ctrl-C, keeping no report, instead of running on with no one to read it.
        let arguments = ["run", scenarioPath, "--seed", "\(job.seed)", "--out", directory, "--exit-with-parent"] + runFlags
        let log = directory + ".log"
        // A log that cannot be made (a full disk) costs the seed its log, not its run, and its
        // output does not spill into the progress line.
        let logHandle = FileManager.default.createFile(atPath: log, contents: nil) ? FileHandle(forWritingAtPath: log) : nil
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardOutput = logHandle ?? FileHandle.nullDevice
        process.standardError = process.standardOutput
        process.standardInput = FileHandle.nullDevice
        process.environment = ParentWatch.environmentForChild()
        let status: Int32 = await withCheckedContinuation { continuation in
            process.terminationHandler = { continuation.resume(returning: $0.shellStatus) }
            do {
                try process.run()
                state.started(process)
            } catch {
                process.terminationHandler = nil
                continuation.resume(returning: -1)
            }
        }
        state.ended(process)
        if (state.wasInterrupted || state.executableChanged()) && status != 0 && !FileManager.default.fileExists(atPath: directory + "/summary.json") {
            // Stopped half-way, or started from a binary being rebuilt (a run of 2,400 seeds
            // counted 193 such as failures): not a result, and nothing of it is left behind.
            for leftover in [directory, directory + ".partial", log] + (swarm ? [scenarioPath] : []) {
                try? FileManager.default.removeItem(atPath: leftover)
            }
            return
        }
        var seed = ExploreSummary.Seed(scenario: job.scenario, seed: job.seed, exitStatus: status, failedInvariants: [], expectationFailures: [],
                                       wallSeconds: 0, traceHash: nil,
                                       reproduce: erpCommandLine(["run", scenarioPath, "--seed", "\(job.seed)"] + runFlags),
                                       report: directory)
        if let data = FileManager.default.contents(atPath: directory + "/summary.json"),
           let summary = try? JSONDecoder().decode(RunSummary.self, from: data) {
            seed.failedInvariants = summary.failedInvariants
            seed.expectationFailures = summary.expectationFailures
            seed.wallSeconds = summary.wallSeconds
            seed.traceHash = summary.traceHash
            seed.counterExamples = summary.failedInvariants.compactMap { name in summary.counterExamples(of: name).first.map { "\(name): \($0)" } }
        } else if status == 0 {
            seed.exitStatus = -2   // it said it passed but wrote no summary
        }
        if seed.isRunError {
            // Why, in the run's own words: its log's last lines (an option it refused, a crash).
            let said = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            let lines = said.split(separator: "\n").map(String.init).filter { !$0.trimmingCharacters(in: .whitespaces).isEmpty }
            seed.error = lines.isEmpty ? (status == -1 ? "the run could not be started" : "the run wrote nothing") : lines.suffix(5).joined(separator: "\n")
            // A run killed by a signal says so in its last line, which the summaries quote (the
            // log's last lines before it are a backtrace).
            if status > 128 { seed.error = (lines.suffix(5) + ["the run was \(exitDescription(status))"]).joined(separator: "\n") }
            // Its report, when it got that far, is the folder it was writing.
            if !FileManager.default.fileExists(atPath: directory) {
                seed.report = FileManager.default.fileExists(atPath: directory + ".partial") ? directory + ".partial" : nil
            }
        }
        if !seed.failed && !keepPassing {
            try? FileManager.default.removeItem(atPath: directory)
            try? FileManager.default.removeItem(atPath: log)
            if swarm {
                try? FileManager.default.removeItem(atPath: scenarioPath)
                // Its drawn file is gone with its report: the command that draws it again.
                seed.reproduce = erpCommandLine(["explore", job.scenarioPath, "--seeds", "\(job.seed)", "--keep-passing"] + experimentFlags)
            }
            seed.report = nil
        }
        state.finished(seed)
    }

    private func newExploreDirectory(_ names: [String], _ seeds: [UInt64]) -> String {
        let label = names.count == 1 ? names[0] : "\(names[0])-and-\(names.count - 1)-more"
        let base = "reports/explore-\(label)-seeds\(seeds.first!)-\(seeds.last!)"
        var candidate = base
        var n = 2
        while FileManager.default.fileExists(atPath: candidate) { candidate = "\(base)-\(n)"; n += 1 }
        return candidate
    }
}

/// What the workers share: results, the running processes (to stop them on Ctrl-C) and the
/// progress line. Touched from the workers' tasks and the signal handler, hence the lock.
final class ExploreState: @unchecked Sendable {
    private let lock = NSLock()
    private var done: [ExploreSummary.Seed] = []
    private var running: [ObjectIdentifier: Process] = [:]
    private var interrupted = false
    private var outOfTime = false
    private var replaced = false
    private let total: Int
    private let tty: Bool
    private let started = ContinuousClock.now
    /// The workers' binary as it was at the start (device, inode, modification time, size).
    private let executable: String
    private let identity: [Int]?

    init(total: Int, tty: Bool, executable: String) {
        self.total = total; self.tty = tty; self.executable = executable
        identity = Self.identity(of: executable)
    }

    var results: [ExploreSummary.Seed] { lock.withLock { done } }
    var wasInterrupted: Bool { lock.withLock { interrupted } }
    var wasReplaced: Bool { lock.withLock { replaced } }
    var stopped: Bool { lock.withLock { interrupted || outOfTime || replaced } }

    /// Whether the binary the workers start from is no longer the one this run started with
    /// (`swift build` replaced it): a worker started from it would be another program, or none.
    /// Once true, no further seed starts.
    func executableChanged() -> Bool {
        if lock.withLock({ replaced }) { return true }
        guard let identity, Self.identity(of: executable) != identity else { return false }
        lock.withLock { replaced = true }
        return true
    }

    private static func identity(of path: String) -> [Int]? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return [Int(info.st_dev), Int(info.st_ino), info.st_mtim.tv_sec, info.st_mtim.tv_nsec, Int(info.st_size)]
    }

    func started(_ process: Process) {
        let stop = lock.withLock { () -> Bool in
            running[ObjectIdentifier(process)] = process
            return interrupted
        }
        if stop { process.terminate() }
    }
    func ended(_ process: Process) { _ = lock.withLock { running.removeValue(forKey: ObjectIdentifier(process)) } }
    func timeUp() { lock.withLock { outOfTime = true } }

    /// Ctrl-C: no new seeds; the running workers are stopped (their runs are not counted).
    func interrupt() {
        let victims = lock.withLock { () -> [Process] in
            interrupted = true
            return Array(running.values)
        }
        for process in victims where process.isRunning { process.terminate() }
    }

    func finished(_ seed: ExploreSummary.Seed) {
        let (count, failures) = lock.withLock { () -> (Int, Int) in
            done.append(seed)
            return (done.count, done.filter(\.failed).count)
        }
        let elapsed = (ContinuousClock.now - started).seconds
        let perMinute = elapsed > 0 ? Double(count) / elapsed * 60 : 0
        let left = perMinute > 0 ? Double(total - count) / perMinute * 60 : 0
        let line = String(format: "%d/%d seeds, %d failing, %.1f seeds/min, ETA %@", count, total, failures, perMinute, Self.clock(left))
        if tty {
            FileHandle.standardOutput.put(Data("\r\u{1B}[K\(line)".utf8))
        } else if seed.failed || count == total || count % max(1, total / 10) == 0 {
            // Written at once (print is buffered when not on a terminal): a log shows progress live.
            FileHandle.standardOutput.put(Data((line + (seed.failed ? " — \(seed.scenario) seed \(seed.seed) failed" : "") + "\n").utf8))
        }
        if tty && seed.failed {
            FileHandle.standardOutput.put(Data("\r\u{1B}[K\(seed.scenario) seed \(seed.seed) failed: \((seed.failedInvariants + seed.expectationFailures).joined(separator: "; "))\n".utf8))
        }
    }

    func endProgress() { if tty { FileHandle.standardOutput.put(Data("\n".utf8)) } }

    static func clock(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        return s >= 3600 ? String(format: "%dh%02dm", s / 3600, s / 60 % 60) : String(format: "%dm%02ds", s / 60, s % 60)
    }
}
