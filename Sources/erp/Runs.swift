import ERPCore
import ERPProduction
import ERPReports
import ERPScenario
import ERPSimulation
import ERPSimulationBackend
import ERPStorage
import ERPZeroMQBackend
import Foundation

/// This binary: what `erp serve` children and explore's workers are started from.
let erpExecutable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path

/// An empty folder at `path`, marked as erp's (`OutputFolder`). What was there goes only if erp
/// made it; anything else (a file, someone's folder) is refused and left as it is.
func freshDirectory(_ path: String) throws {
    try OutputFolder.check(path)
    try? FileManager.default.removeItem(atPath: path)
    try OutputFolder.make(path)
}

/// Which folders erp may replace: `--out` names a folder that a command empties before writing
/// into it (a run of the same seed again, a soak again), and a mistyped path must never cost the
/// user a file. A path may be replaced when nothing is there, when it is an empty folder, or when
/// it is a folder erp wrote: it holds the marker file (every folder `freshDirectory` makes), or,
/// from before the marker, a file erp writes at the top of one (`writtenBefore`).
enum OutputFolder {
    static let markerName = ".erp-output"
    /// What a folder of erp's held before the marker: a run's summary, a soak's, a crash
    /// matrix's, a calibration's, a shrink's result, the stock-multiplied fixtures of bench e2e
    /// and soak. A re-run into a folder an earlier version wrote is not refused for want of it.
    static let writtenBefore: Set<String> = ["summary.json", "soak.json", "matrix.json", "fidelity.json", "minimal.yaml", "fixtures.json"]

    /// Why a folder could not be made, in words: not Foundation's `NSCocoaErrorDomain Code=4`.
    static func whyNotMade(_ error: any Error) -> String {
        let ns = error as NSError
        if let underlying = ns.userInfo[NSUnderlyingErrorKey] as? NSError, underlying.domain == NSPOSIXErrorDomain {
            return String(cString: strerror(Int32(underlying.code)))
        }
        if ns.domain == NSPOSIXErrorDomain { return String(cString: strerror(Int32(ns.code))) }
        switch ns.code {
        case NSFileNoSuchFileError, NSFileWriteNoPermissionError, NSFileWriteUnknownError:
            return "nothing can be made there: a folder on the way is missing and cannot be made, or is not writable"
        case NSFileWriteOutOfSpaceError: return "no space left on the device"
        case NSFileWriteFileExistsError: return "a file is in the way"
        default: return ns.localizedDescription
        }
    }

    struct Refusal: Error, CustomStringConvertible {
        var path: String
        var why: String
        /// Whether the refusal is for what is there (rather than for a folder that cannot be made).
        var occupied = true
        var description: String {
            occupied ? "\(path): \(why); erp replaces only a folder of its own reports (choose another --out, or remove it yourself)"
                     : "\(path): \(why)"
        }
    }

    static func check(_ path: String) throws {
        let fm = FileManager.default
        var isDirectory: ObjCBool = false
        guard fm.fileExists(atPath: path, isDirectory: &isDirectory) else {
            // A dangling symbolic link is something too, and not ours.
            if (try? fm.destinationOfSymbolicLink(atPath: path)) != nil { throw Refusal(path: path, why: "a symbolic link is there") }
            return
        }
        if (try? fm.destinationOfSymbolicLink(atPath: path)) != nil { throw Refusal(path: path, why: "a symbolic link is there") }
        guard isDirectory.boolValue else { throw Refusal(path: path, why: "a file is there, not a folder") }
        let entries: [String]
        do { entries = try fm.contentsOfDirectory(atPath: path) } catch {
            throw Refusal(path: path, why: "the folder cannot be read (\(error.localizedDescription))")
        }
        if entries.isEmpty || entries.contains(markerName) || entries.contains(where: writtenBefore.contains) { return }
        let shown = entries.sorted().prefix(3).joined(separator: ", ") + (entries.count > 3 ? ", …" : "")
        throw Refusal(path: path, why: "a folder erp did not write is there (it holds \(shown))")
    }

    /// A folder at `path` that a command adds to (bench e2e's steps, a shrink, a calibration),
    /// kept as it is if erp wrote it; refused, as `check` refuses, if anything else is there.
    static func claim(_ path: String) throws {
        try check(path)
        try make(path)
    }

    /// The folder (made if missing), marked as erp's.
    fileprivate static func make(_ path: String) throws {
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        } catch {
            throw Refusal(path: path, why: "the folder cannot be made (\(whyNotMade(error)))", occupied: false)
        }
        _ = FileManager.default.createFile(atPath: path + "/" + markerName,
                                       contents: Data("Written by erp: a later --out naming this folder may replace it.\n".utf8))
    }
}

/// The run summary in `report` (a folder `erp run` wrote), or why there is none, in words: an
/// exploration's folder is named as such (its summary is not a run's).
func readRunSummary(_ report: String) -> Result<RunSummary, Refused> {
    let path = report + "/summary.json"
    guard let data = FileManager.default.contents(atPath: path) else {
        return .failure(Refused(message: "no summary.json in \(report): give the folder of one run (erp run writes one)"))
    }
    if let summary = try? JSONDecoder().decode(RunSummary.self, from: data) { return .success(summary) }
    if (try? JSONSerialization.jsonObject(with: data) as? [String: Any])?["seeds"] is [Any] {
        return .failure(Refused(message: "\(report) is an exploration's folder, not a run's: give one of its runs, "
                                + "such as \(report)/runs/<scenario>/seed-<N> (failing seeds are kept; passing ones with --keep-passing)"))
    }
    return .failure(Refused(message: "\(path) is not a run summary this build reads"))
}

/// A refusal's words.
struct Refused: Error { var message: String }

/// The scenario file a run recorded, loaded again. A relative path is read from the folder the run
/// was started in (`startedIn`), wherever this command runs; a summary without one (older
/// builds) is read from here, and a path not there is said to be relative to that folder.
func loadRecordedScenario(_ summary: RunSummary) -> Result<Scenario, Refused> {
    let path = recordedScenarioPath(summary)
    do { return .success(try ScenarioLoader.load(path: path)) } catch {
        guard !summary.scenarioPath.hasPrefix("/") && !FileManager.default.fileExists(atPath: path) else {
            return .failure(Refused(message: error.description))
        }
        let folder = summary.startedIn.map { "it was started in \($0)" }
            ?? "run this from there, \(FileManager.default.currentDirectoryPath) is not it"
        return .failure(Refused(message: error.description + " (the run named it relative to the folder it was started in: \(folder))"))
    }
}

/// Where a report keeps copies of the files its run read (`recordInputs`).
func inputsFolder(of report: String) -> String { report + "/inputs" }

/// The copies of a report's scenario and fixtures files, in its inputs/ folder.
func inputCopies(of report: String) -> (scenario: String, fixtures: String) {
    (inputsFolder(of: report) + "/scenario.yaml", inputsFolder(of: report) + "/fixtures.json")
}

/// Copies a run's scenario and fixtures files (their bytes, as read) into its report's inputs/
/// folder and returns their digests for the summary: a report handed on, or kept while the files
/// change, still replays what ran.
func recordInputs(scenario: Data, fixtures: Data, into report: String) throws -> RecordedInputs {
    let copies = inputCopies(of: report)
    try FileManager.default.createDirectory(atPath: inputsFolder(of: report), withIntermediateDirectories: true)
    try scenario.write(to: URL(fileURLWithPath: copies.scenario))
    try fixtures.write(to: URL(fileURLWithPath: copies.fixtures))
    return RecordedInputs(scenarioSHA256: ContentDigest.sha256Hex(scenario), fixturesSHA256: ContentDigest.sha256Hex(fixtures))
}

/// The scenario a report's run ran and the fixtures file to run it on: the report's own copies
/// (inputs/) when it kept them, checked against the digests its summary recorded; else (reports
/// of older builds) the files its summary names; the fixtures' path absolute. `notes` are for
/// the user: the named files have changed since the run, so what is replayed is the copy.
func recordedRun(_ summary: RunSummary, report: String) -> Result<(scenario: Scenario, fixturesPath: String, notes: [String]), Refused> {
    let named = recordedScenarioPath(summary)
    guard let inputs = summary.inputs else {
        switch loadRecordedScenario(summary) {
        case .failure(let refused): return .failure(refused)
        case .success(let scenario):
            let fixtures = URL(fileURLWithPath: resolve(scenario.fixturesPath, relativeTo: named)).standardizedFileURL.path
            return .success((scenario, fixtures, []))
        }
    }
    let (scenarioCopy, fixturesCopy) = inputCopies(of: report)
    for (copy, digest) in [(scenarioCopy, inputs.scenarioSHA256), (fixturesCopy, inputs.fixturesSHA256)] {
        guard let bytes = FileManager.default.contents(atPath: copy) else {
            return .failure(Refused(message: "\(copy) is missing: the report kept a copy of each file its run read, and without it the run cannot be replayed as it ran"))
        }
        guard ContentDigest.sha256Hex(bytes) == digest else {
            return .failure(Refused(message: "\(copy) is not what the run read (its summary records SHA-256 \(digest)): the report's copy was changed since"))
        }
    }
    var scenario: Scenario
    do { scenario = try ScenarioLoader.load(path: scenarioCopy) } catch { return .failure(Refused(message: error.description)) }
    // The run's own name for its file, for what the replay writes (its reproduce command).
    scenario.path = summary.scenarioPath
    var notes: [String] = []
    if let now = FileManager.default.contents(atPath: named), ContentDigest.sha256Hex(now) != inputs.scenarioSHA256 {
        notes.append("\(named) has changed since the run: its copy in \(scenarioCopy) is what runs")
    }
    let namedFixtures = URL(fileURLWithPath: resolve(scenario.fixturesPath, relativeTo: named)).standardizedFileURL.path
    if let now = FileManager.default.contents(atPath: namedFixtures), ContentDigest.sha256Hex(now) != inputs.fixturesSHA256 {
        notes.append("\(namedFixtures) has changed since the run: its copy in \(fixturesCopy) is what runs")
    }
    return .success((scenario, URL(fileURLWithPath: fixturesCopy).standardizedFileURL.path, notes))
}

/// The scenario file a run recorded, as a path that reads from here.
func recordedScenarioPath(_ summary: RunSummary) -> String {
    guard !summary.scenarioPath.hasPrefix("/"), let folder = summary.startedIn, !summary.scenarioPath.isEmpty else { return summary.scenarioPath }
    return URL(fileURLWithPath: summary.scenarioPath, relativeTo: URL(fileURLWithPath: folder, isDirectory: true)).standardizedFileURL.path
}

/// The chaos phase `--duration` asks for, or why it cannot be one: the same words from every
/// command that takes it (explore once passed 25h on to each seed's run, which refused it, and
/// counted every seed as failing).
func chaosDuration(_ text: String) -> Result<Duration, Refused> {
    guard let chaos = Duration(parsing: text), chaos > .zero else {
        // Out of range reads as unreadable here (1e308s overflows): say the range too.
        return .failure(Refused(message: "--duration must be a positive duration such as 5s or 1500ms, at most \(Scenario.Limits.phaseDurationMax.shortDescription), not '\(text)'"))
    }
    guard chaos <= Scenario.Limits.phaseDurationMax else {
        return .failure(Refused(message: "--duration must be at most \(Scenario.Limits.phaseDurationMax.shortDescription), as in a scenario file, not '\(text)'"))
    }
    return .success(chaos)
}

/// `word` as a POSIX shell reads it back: as it is when it holds nothing a shell treats
/// specially, else in single quotes. A reproduce command with a scenario path holding a space
/// broke when pasted.
func shellQuoted(_ word: String) -> String {
    let plain = !word.isEmpty && word.unicodeScalars.allSatisfy {
        ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0) || "_./:=,@%+-".unicodeScalars.contains($0)
    }
    return plain ? word : "'" + word.replacingOccurrences(of: "'", with: "'\\''") + "'"
}

/// The tool as it was invoked (`.build/debug/erp`, say): every reproduce command it prints starts
/// with it, so that it runs as printed.
let erpCommand = shellQuoted(CommandLine.arguments.first ?? "erp")

/// A command line of this tool (`words` after the binary) as a shell reads it back: what every
/// reproduce and resume command prints, each word quoted where it must be.
func erpCommandLine(_ words: [String]) -> String {
    ([erpCommand] + words.map(shellQuoted)).joined(separator: " ")
}

extension Process {
    /// How the process ended, as a shell's `$?` says it: its exit status, or 128 + the signal that
    /// killed it. Foundation's `terminationStatus` is the signal's number for a killed process, so
    /// a run that trapped (SIGILL, 4) read as exit 4, "an expectation not met".
    var shellStatus: Int32 {
        terminationReason == .uncaughtSignal ? 128 + terminationStatus : terminationStatus
    }
}

/// A child's shell status in words: "exit 2", or "killed by SIGILL (a trap: the run crashed)".
func exitDescription(_ status: Int32) -> String {
    guard status > 128 else { return "exit \(status)" }
    let names: [Int32: String] = [4: "SIGILL (a trap: the run crashed)", 5: "SIGTRAP (a trap: the run crashed)",
                                  6: "SIGABRT (the run aborted)", 9: "SIGKILL", 11: "SIGSEGV (the run crashed)", 15: "SIGTERM"]
    return "killed by " + (names[status - 128] ?? "signal \(status - 128)")
}

/// One simulated run of `scenario` at `seed`, its reports written into `directory` (made afresh).
func simulate(_ scenario: Scenario, seed: UInt64, fixtures: Fixtures, into directory: String, reproduce: String,
              filesOnDisk: Bool = false) async throws -> RunSummary {
    try freshDirectory(directory)
    let backend = try simulationBackend(scenario, seed: seed, fixtures: fixtures, outputDirectory: directory, filesOnDisk: filesOnDisk)
    return try await ScenarioRunner(scenario: scenario, fixtures: fixtures, seed: seed, outputDirectory: directory,
                                    reproduce: reproduce).run(on: backend)
}

/// `scenario` as the run `summary` records ran it: its chaos phase (the schedule scaled to it),
/// heal phase, order rate and planted defects, what `erp run --duration/--rate/--defect` and the
/// bench changed. `erp replay` and `erp shrink` start from it: without it a run with `--defect`
/// or `--rate` replayed as another run, and "diverged". Also returns the defects this build does
/// not know.
func asRecorded(_ scenario: Scenario, by summary: RunSummary) -> (scenario: Scenario, unknownDefects: [String]) {
    var scenario = scenario
    let chaos = Duration.milliseconds(summary.chaosMilliseconds)
    if scenario.duration != chaos { scenario = scenario.scaled(toChaos: chaos) }
    let unknown = summary.defects.filter { !scenario.defects.enable($0) }
    if summary.openLoop.targetPerSecond > 0 { scenario.workload.ratePerSecond = summary.openLoop.targetPerSecond }
    scenario.heal = .milliseconds(summary.healMilliseconds)
    scenario.stockTimes = summary.stockTimes ?? 1
    return (scenario, unknown)
}

/// The simulation backend every erp command runs a scenario on. Such a process only simulates, so
/// SQLite need not count its memory (a mutex per allocation; `SQLiteTuning`): switched off here,
/// before the world opens its first database.
func simulationBackend(_ scenario: Scenario, seed: UInt64, fixtures: Fixtures, outputDirectory: String,
                       logToStandardError: Bool = false, filesOnDisk: Bool = false) throws -> SimulationBackend {
    SQLiteTuning.disableMemoryStatistics()
    return try SimulationBackend(scenario: scenario, seed: seed, fixtures: fixtures, outputDirectory: outputDirectory,
                                 logToStandardError: logToStandardError, filesOnDisk: filesOnDisk)
}

/// `fixtures` with every shop's stock multiplied by `factor` (so that a load of orders is not
/// cancelled for want of it), written as `directory/fixtures.json` for the services to read. The
/// caller reads the fixtures before it claims `directory`: a missing file then leaves no folder.
func fixturesWithStock(_ fixtures: Fixtures, times factor: Int, into directory: String) throws -> (fixtures: Fixtures, path: String) {
    let loaded = fixtures.withStock(times: factor)
    let written = recordedFixturesPath(in: directory)
    try JSONCoding.encode(loaded).write(to: URL(fileURLWithPath: written))
    return (loaded, written)
}

/// Where `fixturesWithStock` writes the fixtures a folder's databases were seeded from
/// (`erp up` on new databases, `bench e2e`, `soak`).
func recordedFixturesPath(in directory: String) -> String { directory + "/fixtures.json" }

/// The fixtures file of a data folder: `given` when there is one, else the one `erp up` recorded
/// there when it seeded the databases, else the repository's. What `erp up` restarted on the
/// folder seeds nothing from and `erp check` judges stock rows against.
func seededFixtures(in directory: String, given: String?) -> String {
    if let given { return given }
    let recorded = recordedFixturesPath(in: directory)
    return FileManager.default.fileExists(atPath: recorded) ? recorded : "fixtures/retail.json"
}

/// Open-loop POST /orders and nothing else: one line of quantity 1 per order, no faults, no
/// latency added, no expectations (what `erp bench e2e` and `erp soak` send).
func orderLoad(name: String, description: String, rate: Double, duration: Duration, heal: Duration, fixturesPath: String) -> Scenario {
    var scenario = Scenario(name: name)
    scenario.description = description
    scenario.duration = duration
    scenario.heal = heal
    scenario.fixturesPath = fixturesPath
    scenario.network.link = LinkBehaviour(latencyMin: .zero, latencyMax: .zero)
    scenario.workload.ratePerSecond = rate
    scenario.workload.itemsPerOrder = 1...1
    scenario.workload.quantity = 1...1
    scenario.expect = Scenario.Expectations()
    return scenario
}

/// The help of `--files-on-disk`, which `erp run` and `erp bench scenario` share.
let filesOnDiskHelp = """
    In simulation, keep the services' databases in files from the start instead of on the simulated \
    in-memory disks (which are written out when the run ends): for runs whose databases outgrow \
    memory. A run offering more than 50,000 orders does so by itself, unless it has disk faults: \
    power loss and the other disk faults need the simulated disks.
    """

/// One run of `scenario` on real processes (every service an `erp serve` child of this binary,
/// reading `scenarioPath` and `fixturesPath`), its reports written into `directory`, which the
/// caller has made (the scenario file often lives there); quiet unless `log`. The backend comes
/// back too, for what only it measured.
/// `prepare` sees the backend before the run starts (to watch its processes while it runs).
func runOverZeroMQ(_ scenario: Scenario, scenarioPath: String, fixturesPath: String, fixtures: Fixtures, seed: UInt64,
                   into directory: String, reproduce: String, log: Bool = false, synchronous: SynchronousMode = .beforeSend,
                   prepare: (ZeroMQBackend) -> Void = { _ in }) async throws -> (summary: RunSummary, backend: ZeroMQBackend) {
    let backend = ZeroMQBackend(scenario: scenario, scenarioPath: scenarioPath, fixturesPath: fixturesPath,
                                outputDirectory: directory, executable: erpExecutable)
    backend.synchronous = synchronous
    if !log { backend.log = { _ in } }
    prepare(backend)
    let summary = try await ScenarioRunner(scenario: scenario, fixtures: fixtures, seed: seed, outputDirectory: directory,
                                           reproduce: reproduce).run(on: backend)
    return (summary, backend)
}

/// `value` as indented JSON, keys sorted, at `path`.
func writeJSON<T: Encodable>(_ value: T, to path: String) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    try encoder.encode(value).write(to: URL(fileURLWithPath: path))
}

/// Ctrl-C (or SIGTERM) during a command that runs a simulation: `cleanUp` says what it did with
/// what the command was writing (a half-written report removed, the smallest failing scenario so
/// far kept), the line is printed, and the process exits 130. A simulation holds nothing that
/// must be stopped gracefully; without this the command ended silently and left half a report.
final class InterruptNotice: @unchecked Sendable {
    private let lock = NSLock()
    private var signals: TerminationSignals?

    init(_ command: String, cleanUp: @escaping @Sendable () -> String) {
        let signals = TerminationSignals {
            let said = cleanUp()
            FileHandle.standardError.put(Data("\nerp \(command): interrupted; \(said)\n".utf8))
            exit(130)  // 128 + SIGINT, as a shell reports it
        }
        lock.withLock { self.signals = signals }
    }

    /// Back to the default action (the command finished, or goes on to something of its own).
    func cancel() { lock.withLock { signals?.cancel(); signals = nil } }
}
