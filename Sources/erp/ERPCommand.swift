import ArgumentParser
import CMalloc
import ERPBenchmarks
import ERPConfiguration
import ERPCore
import ERPProduction
import ERPServices
import ERPReports
import ERPScenario
import ERPSimulationBackend
import ERPZeroMQBackend
import ERPSimulation
import ERPZeroMQ
import Foundation
import Logging
import ZeroMQ

@main
struct ERPCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "erp",
        abstract: "Testbed and chaos simulation harness for the retail ERP.",
        discussion: """
            Runs the retail ERP's services on a deterministic simulated network (virtual clock, \
            seeded randomness, latency, drops, duplicates, reordering, partitions, crashes) and \
            reports latency percentiles and whether stock, orders, payments and events stayed consistent. \
            The same services also run as real processes over ZeroMQ with an HTTP gateway (`erp up`, \
            `erp serve`), and a scenario can run on them (`erp run --mode zmq`).

            Exit codes of `erp run`: 0 all invariants held, 1 the run could not start (bad scenario, \
            bad option), 2 a consistency invariant failed, 3 a liveness check failed (an order never \
            finished; 2 when an invariant failed too), 4 the scenario's expectations were not met, 6 `--check-determinism` found the \
            second run's trace different, 130 interrupted (Ctrl-C or SIGTERM: no report kept).
            """,
        subcommands: [Run.self, Explore.self, Replay.self, Shrink.self, Calibrate.self, CrashMatrix.self, Soak.self, Bench.self, Keys.self, Serve.self, Up.self, Events.self, Check.self, Diff.self])

    /// ArgumentParser's `main`, with one exit status for every bad command line: 1, as this help
    /// and the README say (ArgumentParser answers 64 for what it checks itself and for a
    /// `ValidationError`, so one mistake exited 1 and the next 64). And a subcommand's own
    /// refusal names the subcommand: ArgumentParser printed the root's usage under it.
    static func main() async {
        // Lines reach a file or a pipe as they are printed (`erp up > log`: the gateway's address
        // arrived minutes late, behind the services' log lines, when fully buffered).
        erp_line_buffer_stdout()
        // A reader that went away (`erp run … | head -1`) ends a write with EPIPE instead of
        // killing the process with SIGPIPE: the run finishes, writes its reports and exits with
        // its own status (it exited 141, which a pipeline's gate read as neither pass nor fail).
        signal(SIGPIPE, SIG_IGN)
        var parsed: (any ParsableCommand)?
        do {
            var command = try parseAsRoot()
            parsed = command
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch let refusal as ValidationError where parsed != nil {
            let path = parsed.flatMap { Self.commandPath(to: type(of: $0)) } ?? "erp"
            FileHandle.standardError.put(Data("Error: \(refusal.message)\nSee '\(path) --help'.\n".utf8))
            Foundation.exit(ExitStatus.invalidInput)
        } catch {
            guard exitCode(for: error) == .validationFailure else { exit(withError: error) }
            FileHandle.standardError.put(Data((fullMessage(for: error) + "\n").utf8))
            Foundation.exit(ExitStatus.invalidInput)
        }
    }

    /// "erp bench e2e" for `Bench.E2E.self`: the words that run a subcommand.
    static func commandPath(to target: any ParsableCommand.Type) -> String? {
        func search(_ type: any ParsableCommand.Type, _ words: [String]) -> [String]? {
            if type == target { return words }
            for sub in type.configuration.subcommands {
                if let found = search(sub, words + [sub._commandName]) { return found }
            }
            return nil
        }
        return search(Self.self, ["erp"])?.joined(separator: " ")
    }
}

enum ExitStatus {
    static let invalidInput: Int32 = 1
    static let consistency: Int32 = 2
    static let liveness: Int32 = 3
    static let expectations: Int32 = 4
    /// A running system did not answer (or refused) a tool's call.
    static let unreachable: Int32 = 5
    /// A replay (or --check-determinism) gave another trace.
    static let diverged: Int32 = 6
}

/// Where `erp run` is, for its interrupt handler: the first run's report moved into place, the
/// second run (`--check-determinism`) started.
final class RunPhase: @unchecked Sendable {
    private let lock = NSLock()
    private var isMoved = false
    private var child: Process?
    private var isInterrupted = false
    var state: (moved: Bool, child: Process?) { lock.withLock { (isMoved, child) } }
    func moved() { lock.withLock { isMoved = true } }
    func started(_ process: Process) { lock.withLock { child = process } }
    /// The interrupt handler has begun: it stops the second run, says what is kept and exits 130.
    func interrupted() { lock.withLock { isInterrupted = true } }
    var wasInterrupted: Bool { lock.withLock { isInterrupted } }
}

struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a scenario (in simulation, or on real processes over ZeroMQ) and write its reports.",
        discussion: """
            Writes DIR/summary.json, DIR/summary.md, DIR/junit.xml, DIR/report.html and the services' \
            databases in DIR/db. In simulation also DIR/trace.log: the same scenario and seed give the \
            same trace hash in any process, and a failing run prints the command that reproduces it. \
            Exit status: 0 every invariant and expectation held, 2 an invariant broke, 3 an order was \
            left unfinished (liveness), 4 only expectations failed, 1 bad input or a run that could not \
            be made, 6 --check-determinism found another trace, 130 interrupted.

            --mode zmq starts every service as its own process (CURVE over ipc:// sockets in a \
            temporary folder, the gateway on a free loopback HTTP port), sends the workload as HTTP \
            requests, and plays the faults for real: crash = SIGKILL then respawn, pause = \
            SIGSTOP/SIGCONT, partitions, link faults, clock skew and provider faults through each \
            process's fault filter. Time is real there, so --duration shortens the chaos phase and \
            scales the fault schedule, the heal phase and the expected counts with it. It also writes \
            DIR/logs/<service>.log, DIR/metrics/<service>.prom, DIR/runner.log and DIR/topology.yaml; \
            there is no trace hash, and the seed only decides the workload's orders.

            --mode zmq --network kernel puts every service on a host of its own: a Linux network \
            namespace per service (erp<pid>-SERVICE), all on one bridge, TCP between them, the runner \
            joined to the bridge. A partition or isolation is then made by the kernel (a route to the \
            other's address made unreachable in the sender's namespace, deleted when the fault ends) \
            instead of the fault filter; one-way partitions, link faults and the rest stay with the \
            filter. Needs root and iproute2; the namespaces are removed when the run ends (and those \
            of a run killed with SIGKILL by the next such run). docs/two-hosts.md says more.
            """)

    @Argument(help: "The scenario file (YAML), e.g. scenarios/happy-path.yaml.")
    var scenario: String

    @Option(parsing: .unconditional, help: "Seed of the run (default: the scenario's seed). In zmq mode it seeds the workload only.")
    var seed: UInt64?

    @Option(name: .customLong("out"), help: "Output folder (default: a new folder under reports/). A folder erp wrote is replaced; a path holding anything else is refused.")
    var outputDirectory: String?

    @Flag(name: .customLong("files-on-disk"), help: ArgumentHelp(filesOnDiskHelp))
    var filesOnDisk = false

    @Option(help: "Backend: 'simulation' (virtual time, deterministic) or 'zmq' (real processes and sockets).")
    var mode: RunMode = .simulation

    @Option(help: "With --mode zmq: who makes partitions and isolations, 'filter' (each process's fault filter) or 'kernel' (a network namespace per service; root).")
    var network: NetworkFaults = .filter

    @Option(parsing: .unconditional, help: ArgumentHelp("Length of the chaos phase, e.g. 5s; scales the fault schedule, the heal phase (in simulation not below the scenario's heal floor, twice its longest breaker reset plus 10 s, unless the scenario's own heal is shorter) and the expectations.",
                               valueName: "duration"))
    var duration: String?

    @Option(parsing: .unconditional, help: "Orders per second offered over the chaos phase (default: the scenario's).")
    var rate: Double?

    @Option(parsing: .unconditional, help: "Simulation: multiply every shop's stock in the fixtures by this (default: the scenario's stockTimes, 1 unless it says), so that a load's orders run the whole saga instead of being cancelled out of stock. In zmq mode write stockTimes in the scenario: its services read the file.")
    var stock: Int?

    @Flag(help: "Print the services' log lines to standard error: their state transitions and errors (simulation: on virtual time).")
    var log = false

    @Flag(help: "Simulation: run it a second time and compare the traces line by line (exit 6 on the first difference).")
    var checkDeterminism = false

    @Option(name: .customLong("defect"), help: ArgumentHelp("Plant a defect (repeatable), to see the checker catch it: \(PlantedDefects.names.joined(separator: ", ")).",
                                                             valueName: "name"))
    var defects: [String] = []

    @Flag(help: "Stop as on Ctrl-C (no report kept) when the process that started this one exits: how `erp explore` starts its seeds, so that a killed exploration leaves no run behind.")
    var exitWithParent = false

    func run() async throws {
        if exitWithParent { ParentWatch.start() }
        if checkDeterminism, mode != .simulation { throw failure("--check-determinism compares traces: simulation only, not --mode \(mode.rawValue)") }
        if network == .kernel, mode != .zmq { throw failure("--network kernel places real processes in network namespaces: it needs --mode zmq") }
        var loaded: Scenario
        do { loaded = try ScenarioLoader.load(path: scenario) } catch { throw failure(error.description) }
        var reproduce = ["run", loaded.path.isEmpty ? scenario : loaded.path]
        if let duration {
            let chaos: Duration
            switch chaosDuration(duration) {
            case .success(let d): chaos = d
            case .failure(let refused): throw failure(refused.message)
            }
            // Real processes' heal phase waits for the flows still going (ZeroMQBackend.runHealPhase).
            loaded = loaded.scaled(toChaos: chaos, keepingHealFloor: mode == .simulation)
            reproduce += ["--duration", duration]
        }
        if let rate {
            if let problem = Scenario.Limits.rateProblem(rate, over: loaded.duration) { throw failure("--rate \(problem)") }
            loaded.workload.ratePerSecond = rate
            reproduce += ["--rate", "\(rate)"]
        }
        if let stock {
            if let problem = Scenario.Limits.stockTimesProblem(stock) { throw failure("--stock \(problem)") }
            // The services of a zmq run read the scenario file, not this command line.
            guard mode == .simulation else { throw failure("--stock is for simulation; in --mode zmq write stockTimes: \(stock) in the scenario file") }
            loaded.stockTimes = stock
            reproduce += ["--stock", "\(stock)"]
        }
        for name in defects {
            guard loaded.defects.enable(name) else {
                throw failure("--defect \(name): no such defect; known: \(PlantedDefects.names.joined(separator: ", "))")
            }
            reproduce += ["--defect", name]
        }
        for why in loaded.defectsThatCannotShow {
            FileHandle.standardError.put(Data("erp run: note: the planted defect \(why), so this run cannot show it\n".utf8))
        }
        let fixturesPath = resolve(loaded.fixturesPath, relativeTo: scenario)
        let fixtures: Fixtures, fixturesBytes: Data
        do {
            fixturesBytes = try Data(contentsOf: URL(fileURLWithPath: fixturesPath))
            fixtures = try JSONCoding.decode(Fixtures.self, from: fixturesBytes)
        } catch {
            throw failure("\(scenario): fixtures \(fixturesPath) cannot be read: \(whyUnreadable(fixturesPath, error))")
        }
        let seed = self.seed ?? loaded.seed
        let out = outputDirectory ?? newReportDirectory(for: loaded.name + (mode == .zmq ? "-zmq" : ""), seed: seed)
        // Write into a scratch folder and move it into place at the end: no half-written report.
        let partial = out + ".partial"
        let fm = FileManager.default
        // Both paths checked before the run, not after it: a path erp may not replace is refused
        // at once.
        do { try OutputFolder.check(out); try freshDirectory(partial) } catch { throw failure("--out \(error)") }
        let summary: RunSummary
        var interrupts: InterruptNotice?
        let secondRun = RunPhase()
        defer { interrupts?.cancel() }
        do {
            let backend: any ScenarioBackend
            switch mode {
            case .zmq:
                let zmq = ZeroMQBackend(scenario: loaded, scenarioPath: absolutePath(scenario), fixturesPath: absolutePath(fixturesPath),
                                        outputDirectory: partial, executable: erpExecutable)
                if !log { zmq.log = { _ in } }
                zmq.network = network
                backend = zmq
                // The seed draws the workload (which orders, when): without it the command ran the
                // scenario's own seed, another workload.
                reproduce += ["--mode", "zmq", "--seed", "\(seed)"] + (network == .kernel ? ["--network", "kernel"] : [])
            case .simulation:
                backend = try simulationBackend(loaded, seed: seed, fixtures: fixtures, outputDirectory: partial,
                                                logToStandardError: log, filesOnDisk: filesOnDisk)
                reproduce += ["--seed", "\(seed)"]
            }
            // Real processes stop theirs on Ctrl-C themselves (ZeroMQBackend). With
            // --check-determinism the notice stays for the second run (a second one in the same
            // process never heard its signals, libdispatch's source for them being spent).
            interrupts = mode == .simulation ? InterruptNotice("run") {
                secondRun.interrupted()
                let (moved, child) = secondRun.state
                if let child, child.isRunning { child.terminate(); child.waitUntilExit() }
                guard moved else {
                    try? FileManager.default.removeItem(atPath: partial)
                    return "no report kept (\(out) is as it was)"
                }
                try? FileManager.default.removeItem(atPath: out + "/replay.partial")
                return "the first run's report is kept in \(out); the second run was stopped, nothing compared"
            } : nil
            var runner = ScenarioRunner(scenario: loaded, fixtures: fixtures, seed: seed, outputDirectory: partial,
                                        reproduce: erpCommandLine(reproduce))
            // The report keeps what the run read: replay and shrink run these copies.
            runner.inputs = try recordInputs(scenario: Data(contentsOf: URL(fileURLWithPath: scenario)), fixtures: fixturesBytes, into: partial)
            summary = try await runner.run(on: backend)
        } catch {
            // No half-written report: what the failed run wrote goes away with it.
            try? fm.removeItem(atPath: partial)
            throw failure("the run failed: \(error)")
        }
        if fm.fileExists(atPath: out) { try fm.removeItem(atPath: out) }
        try fm.moveItem(atPath: partial, toPath: out)
        secondRun.moved()
        if !checkDeterminism { interrupts?.cancel(); interrupts = nil }
        print(summary.humanSummary)
        print("wall time: \(summary.wallSeconds)s; reports in \(out)")
        if checkDeterminism {
            // In a process of its own: hashing is seeded per process, so only another process shows
            // an order that depends on it.
            let again = out + "/replay"
            let child = Process()
            child.executableURL = URL(fileURLWithPath: erpExecutable)
            var arguments = ["run", scenario, "--seed", "\(seed)", "--out", again]
            if let duration { arguments += ["--duration", duration] }
            if let rate { arguments += ["--rate", "\(rate)"] }
            if let stock { arguments += ["--stock", "\(stock)"] }
            child.arguments = arguments + defects.flatMap { ["--defect", $0] }
            child.standardOutput = FileHandle.nullDevice
            // Ctrl-C or SIGTERM stops the second run too (it is in a process group of its own, so
            // a terminal's signal never reached it: it ran on, orphaned, and left replay.partial
            // behind), and says what is kept.
            secondRun.started(child)
            try child.run()
            child.waitUntilExit()
            // A Ctrl-C reaches both processes: the second run may end (its own handler exits 130)
            // before this one's handler has begun, which then says what is kept and exits 130.
            // Reported here instead, the stop was "the second run wrote no trace", exit 1 (a
            // fresh-clone CI saw it). Stopped by another's signal, that is still what is said,
            // after 2 s.
            let stopped = child.terminationReason == .uncaughtSignal ? [SIGINT, SIGTERM].contains(child.terminationStatus)
                                                                     : [130, 143].contains(child.terminationStatus)
            if stopped {
                let waitEnd = ContinuousClock.now + .seconds(2)
                while !secondRun.wasInterrupted && ContinuousClock.now < waitEnd { usleep(10_000) }
                while secondRun.wasInterrupted { sleep(1) }  // the handler ends the process
            }
            guard FileManager.default.fileExists(atPath: again + "/trace.log") else { throw failure("the second run wrote no trace (\(exitDescription(child.shellStatus)))") }
            try compare(expected: out + "/trace.log", actual: again + "/trace.log", labels: ("first run", "second run (another process)"), context: 3)
        }
        // A broken invariant is the graver finding: it decides the status when liveness failed too.
        let status = summary.verdictExitStatus
        if status != 0 { throw ExitCode(status) }
    }

    private func failure(_ message: String) -> Error {
        FileHandle.standardError.put(Data(("erp: " + message + "\n").utf8))
        return ExitCode(ExitStatus.invalidInput)
    }
}

/// A path in a scenario is relative to the working directory if it exists there, else to the
/// scenario's folder's parent (scenarios/ sits beside fixtures/).
func resolve(_ path: String, relativeTo scenarioPath: String) -> String {
    if path.hasPrefix("/") || FileManager.default.fileExists(atPath: path) { return path }
    let scenarioDirectory = URL(fileURLWithPath: scenarioPath).deletingLastPathComponent()
    let besideScenarios = scenarioDirectory.deletingLastPathComponent().appendingPathComponent(path).path
    if FileManager.default.fileExists(atPath: besideScenarios) { return besideScenarios }
    return scenarioDirectory.appendingPathComponent(path).path
}

func newReportDirectory(for scenario: String, seed: UInt64) -> String {
    let base = "reports/\(scenario)-seed\(seed)"
    var candidate = base
    var n = 2
    while FileManager.default.fileExists(atPath: candidate) {
        candidate = "\(base)-\(n)"
        n += 1
    }
    return candidate
}

struct Keys: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "CURVE keys for a topology's services.", subcommands: [Generate.self])

    struct Generate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Make a CURVE key pair for every service of a topology.",
            discussion: """
                Writes <name>.key (the secret key, mode 0600) and <name>.pub for every service and every \
                client the topology admits (security.clients) into its curveKeys folder (or --out), and, \
                when the topology has a devices section, a pair per device of the fixtures into its \
                devices.keys folder (the device registry: each device has a key of its own). With --out \
                every key goes under that folder, the devices' into its devices/ subfolder, and the \
                topology's folders are left alone. Existing pairs are kept unless --replace.
                """)

        @Option(help: "The topology file.") var topology: String = "fixtures/topology.yaml"
        @Option(name: .customLong("out"), help: "Key folder (default: the topology's curveKeys).") var directory: String?
        @Flag(help: "Replace existing key pairs.") var replace = false
        @Option(help: "The fixtures whose devices get keys (with a devices section).") var fixtures: String = "fixtures/retail.json"

        func run() throws {
            let loaded = try loadTopology(topology)
            guard let folder = directory ?? loaded.keyDirectory else {
                FileHandle.standardError.put(Data("erp: \(topology) runs plaintext; give --out for a key folder\n".utf8))
                throw ExitCode(ExitStatus.invalidInput)
            }
            // The fixtures are read before any key is written: a run that cannot finish writes nothing.
            let devices = try loaded.deviceKeyDirectory.map { _ in try loadFixtures(fixtures).devices.map(\.id) }
            let made = try KeyStore(directory: folder).generate(named: loaded.services.map(\.rawValue) + loaded.clients, replace: replace)
            print("keys in \(folder): \(made.isEmpty ? "all present, none made" : "made for " + made.joined(separator: ", "))")
            // --out takes every key, so that trying the command elsewhere never replaces the registry's.
            if let registry = loaded.deviceKeyDirectory, let devices {
                let deviceFolder = directory.map { $0 + "/devices" } ?? registry
                let madeForDevices = try KeyStore(directory: deviceFolder).generate(named: devices, replace: replace)
                print("device keys in \(deviceFolder): \(madeForDevices.isEmpty ? "all present, none made" : "made for \(madeForDevices.count) devices")")
            }
        }
    }
}

/// The level a service process logs at: `--log-level`, else `$ERP_LOG_LEVEL` (which reaches the
/// services of `erp up`, `erp run --mode zmq`, `erp bench e2e` and `erp soak` through their
/// environment), else info, or debug with `--verbose`.
func serviceLogLevel(option: String?, verbose: Bool = false,
                     environment: [String: String] = ProcessInfo.processInfo.environment) throws -> Logger.Level {
    let fromEnvironment = environment["ERP_LOG_LEVEL"].flatMap { $0.isEmpty ? nil : $0 }
    guard let name = option ?? (verbose ? "debug" : fromEnvironment) else { return .info }
    guard let level = Logger.Level(rawValue: name.lowercased()) else {
        throw ValidationError("\(option != nil ? "--log-level" : "ERP_LOG_LEVEL") \(name) is not a level: give one of \(Logger.Level.allCases.map(\.rawValue).joined(separator: ", "))")
    }
    return level
}

/// `path` made absolute against the working folder (the services run with the same one, but a
/// path handed on should not depend on it).
func absolutePath(_ path: String) -> String {
    URL(fileURLWithPath: path, relativeTo: URL(fileURLWithPath: FileManager.default.currentDirectoryPath + "/")).standardizedFileURL.path
}

func loadTopology(_ path: String) throws -> Topology {
    do { return try Topology.load(path: path) } catch {
        FileHandle.standardError.put(Data(("erp: " + error.description + "\n").utf8))
        throw ExitCode(ExitStatus.invalidInput)
    }
}

func loadFixtures(_ path: String) throws -> Fixtures {
    do { return try JSONCoding.decode(Fixtures.self, from: Data(contentsOf: URL(fileURLWithPath: path))) } catch {
        FileHandle.standardError.put(Data("erp: fixtures \(path) cannot be read: \(whyUnreadable(path, error))\n".utf8))
        throw ExitCode(ExitStatus.invalidInput)
    }
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run one service over ZeroMQ (production mode) until SIGTERM or Ctrl-C.",
        discussion: """
            The service binds its endpoint from the topology (ERP_<SERVICE>_ENDPOINT overrides it), \
            speaks CURVE with the topology's keys, keeps its SQLite database in the topology's \
            dataDirectory, and, for the gateway, serves HTTP on the topology's http address.
            """)

    @Argument(help: "The service: \(ServiceCatalog.startOrder.map(\.rawValue).joined(separator: ", ")).")
    var service: String
    @Option(help: "The topology file.") var topology: String = "fixtures/topology.yaml"
    @Option(help: "The fixtures (catalogue, shops, stock).") var fixtures: String = "fixtures/retail.json"
    @Option(help: "Take the settings of this scenario file: planted defects, the payment provider's behaviour, resilience policies.")
    var scenario: String?
    @Option(name: .customLong("defect"), help: ArgumentHelp("Plant a defect in this service (repeatable; how `erp run --mode zmq --defect` reaches every process).",
                                                             valueName: "name"))
    var defects: [String] = []
    @Flag(help: "Serve the fault-control methods (used by `erp run --mode zmq`; never in production).")
    var faultControl = false
    @Flag(help: "Stop when the process that started this one exits (how `erp up` and `erp run --mode zmq` start services).")
    var exitWithParent = false
    @Flag(help: "Log at debug level.") var verbose = false
    @Option(name: .customLong("log-level"),
            help: ArgumentHelp("Log at this level and above: trace, debug, info, notice, warning, error or critical. Default: $ERP_LOG_LEVEL, else info (every state transition, a few lines an order); warning keeps the anomalies only.",
                               valueName: "level"))
    var logLevel: String?
    @Option(name: .customLong("data"), help: ArgumentHelp("Keep the databases here instead of the topology's dataDirectory.", valueName: "folder"))
    var dataDirectory: String?
    @Option(name: .customLong("service-keys"),
            help: ArgumentHelp("Read the services' own key pairs from this folder instead of the topology's curveKeys (erp up passes the pairs in force at its start; clients' and devices' keys still come from their folders).", valueName: "folder"))
    var serviceKeyDirectory: String?
    @Flag(help: "Lift every request-rate limit of the topology (per API key, at the gateway, per service): how erp up --no-rate-limits starts services for a load test.")
    var noRateLimits = false

    func run() async throws {
        guard let name = ServiceName(named: service), ServiceCatalog.startOrder.contains(name) else {
            FileHandle.standardError.put(Data("erp: unknown service '\(service)'; known: \(ServiceCatalog.startOrder.map(\.rawValue).joined(separator: ", "))\n".utf8))
            throw ExitCode(ExitStatus.invalidInput)
        }
        let level: Logger.Level
        do { level = try serviceLogLevel(option: logLevel, verbose: verbose) } catch let error as ValidationError {
            FileHandle.standardError.put(Data("erp serve: \(error.message)\n".utf8))
            throw ExitCode(ExitStatus.invalidInput)
        }
        var loaded = try loadTopology(topology)
        if noRateLimits { loaded = loaded.withoutRateLimits() }
        if let dataDirectory { loaded.dataDirectory = absolutePath(dataDirectory) }
        if let serviceKeyDirectory { loaded.serviceKeyDirectory = absolutePath(serviceKeyDirectory) }
        guard loaded.endpoint(of: name) != nil else {
            FileHandle.standardError.put(Data("erp: \(topology) gives no endpoint for \(name)\n".utf8))
            throw ExitCode(ExitStatus.invalidInput)
        }
        var settings = ServiceSettings(fixtures: try loadFixtures(fixtures))
        settings.resilience = loaded.resilience
        if let scenario {
            do { settings = try ScenarioLoader.load(path: scenario).serviceSettings(fixtures: settings.fixtures) } catch {
                FileHandle.standardError.put(Data(("erp: " + error.description + "\n").utf8))
                throw ExitCode(ExitStatus.invalidInput)
            }
        }
        for defect in defects where !settings.defects.enable(defect) {
            FileHandle.standardError.put(Data("erp: --defect \(defect): no such defect; known: \(PlantedDefects.names.joined(separator: ", "))\n".utf8))
            throw ExitCode(ExitStatus.invalidInput)
        }
        if !settings.defects.enabled.isEmpty { FileHandle.standardError.put(Data("erp: planted defects: \(settings.defects.enabledNames.joined(separator: ", "))\n".utf8)) }
        // One process per service: its log escapes the control characters clients can put in ids.
        EscapingLogHandler.bootstrap()
        var host = ServiceHost(service: name, topology: loaded, settings: settings)
        host.logLevel = level
        host.faultControl = faultControl
        host.exitWithParent = exitWithParent
        do { try await ServiceHost.serve(host) } catch let error as ZeroMQError where error.errno == EADDRINUSE {
            // As `erp up` says it before starting anything (libzmq's words alone named no cause).
            FileHandle.standardError.put(Data("erp serve: \(name)'s endpoint is taken (\(error.message)): another process listens there (another erp up or erp serve of this topology?)\n".utf8))
            throw ExitCode(ExitStatus.invalidInput)
        }
    }
}

struct Up: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Start every service of a topology as supervised processes; Ctrl-C or SIGTERM stops them all.",
        discussion: """
            A service that dies is restarted (after 0.2 s; past 5 deaths a minute each restart waits twice as long, up to 30 s; never given up on). Prints where the gateway \
            listens. SIGHUP (kill -HUP) makes every service read its keys again: the topology's \
            clients and key folder and the device keys; a new key is admitted at its next connection, \
            a removed one refused, with no restart. The services' own key pairs are those of erp up's \
            start until it stops (a service restarted alone keeps them): after `erp keys generate \
            --replace`, stop and start erp up.

            ERP_WRAP='SERVICE=COMMAND' in the environment runs a service under a tool (several: \
            separated by ';'), e.g. ERP_WRAP='order=heaptrack -o /tmp/order' erp up, or \
            'payment=perf record -g -o /tmp/payment.data'. It applies to erp soak and erp bench e2e too.

            ERP_LOG_LEVEL (or --log-level here) sets the services' log level, for erp run --mode \
            zmq, erp soak and erp bench e2e too: info (the default) logs every state transition, a \
            few lines an order; warning keeps the anomalies only.
            """)

    @Option(help: "The topology file.") var topology: String = "fixtures/topology.yaml"
    @Option(help: "The fixtures (catalogue, shops, stock). Default: fixtures/retail.json; on a data folder erp up seeded before, the fixtures.json it recorded there.")
    var fixtures: String?
    @Option(name: .customLong("data"), help: ArgumentHelp("Keep every service's database here instead of the topology's dataDirectory (made if missing).",
                                                          valueName: "folder"))
    var dataDirectory: String?
    @Option(parsing: .unconditional, help: "Multiply every shop's stock in the fixtures by this, for a load test whose orders should not run out of stock. New databases only: the data folder must hold none yet.")
    var stock: Int?
    @Flag(help: "Lift every request-rate limit of the topology (per API key, at the gateway, per service), for a load test: with the shipped limits, load past 25 orders a second per key is answered 429.")
    var noRateLimits = false
    @Option(name: .customLong("log-level"),
            help: ArgumentHelp("The services log at this level and above: trace, debug, info, notice, warning, error or critical. Default: $ERP_LOG_LEVEL, else info (every state transition: a few lines and about 2 KB of logs an order across the services); warning keeps the anomalies only.",
                               valueName: "level"))
    var logLevel: String?

    func run() throws {
        if logLevel != nil { _ = try serviceLogLevel(option: logLevel) }
        var loaded = try loadTopology(topology)
        if noRateLimits { loaded = loaded.withoutRateLimits() }
        let data = dataDirectory.map(absolutePath)
        if let data { loaded.dataDirectory = data }
        let file = try loadFixtures(fixtures ?? "fixtures/retail.json")
        if let stock, let problem = Scenario.Limits.stockTimesProblem(stock) { throw ValidationError("--stock \(problem)") }
        let problems = loaded.preflightProblems() + (ServiceCatalog.databaseFolderProblem(loaded.dataDirectory).map { ["the data folder \($0)"] } ?? [])
        guard problems.isEmpty else {
            for problem in problems { FileHandle.standardError.put(Data("erp up: \(problem)\n".utf8)) }
            FileHandle.standardError.put(Data("erp up: nothing started\n".utf8))
            throw ExitCode(ExitStatus.invalidInput)
        }
        // The fixtures the services seed new databases from, recorded beside them for `erp check`
        // (which judges each stock row's initial against them). A folder seeded before keeps its
        // stock: --stock there would record fixtures its databases do not hold.
        let seeded = ServiceCatalog.startOrder.compactMap(ServiceCatalog.databaseFileName(of:))
            .filter { FileManager.default.fileExists(atPath: loaded.dataDirectory + "/" + $0) }
        var fixturesPath = seededFixtures(in: loaded.dataDirectory, given: fixtures)
        if seeded.isEmpty {
            try FileManager.default.createDirectory(atPath: loaded.dataDirectory, withIntermediateDirectories: true)
            fixturesPath = try fixturesWithStock(file, times: stock ?? 1, into: loaded.dataDirectory).path
        } else if let stock {
            throw ValidationError("--stock \(stock) seeds new databases, and \(loaded.dataDirectory) holds \(seeded.count) already (\(seeded[0]) among them): give a new --data folder")
        }
        for warning in loaded.insecureSettings() { FileHandle.standardError.put(Data("erp up: warning: \(warning)\n".utf8)) }
        // The services' pairs as they are now, for every start of every service until erp up
        // stops: a service restarted alone after `erp keys generate --replace` came back with a
        // pair its running peers did not know, and was cut off (an on-call trial).
        let pairsInForce = try loaded.keyDirectory.map {
            try KeyStore(directory: $0).copies(of: loaded.services, into: FileManager.default.temporaryDirectory.appendingPathComponent("erp-up-\(getpid())-service-keys").path).directory
        }
        defer { if let pairsInForce { try? FileManager.default.removeItem(atPath: pairsInForce) } }
        let supervisor = Supervisor(children: loaded.services.map { service in
            .init(name: service.rawValue, executable: erpExecutable,
                  arguments: ["serve", service.rawValue, "--topology", topology, "--fixtures", fixturesPath, "--exit-with-parent"]
                    + (data.map { ["--data", $0] } ?? []) + (pairsInForce.map { ["--service-keys", $0] } ?? [])
                    + (noRateLimits ? ["--no-rate-limits"] : []) + (logLevel.map { ["--log-level", $0] } ?? []))
        })
        // Stop on SIGINT/SIGTERM: handled here, not by the default action, so children are stopped.
        let stop = DispatchSemaphore(value: 0)
        let signals = TerminationSignals { stop.signal() }
        // SIGHUP: every service reads its keys again (added keys admitted, removed ones refused).
        signal(SIGHUP, SIG_IGN)
        let reload = DispatchSource.makeSignalSource(signal: SIGHUP, queue: .global())
        reload.setEventHandler {
            for service in loaded.services { _ = supervisor.send(SIGHUP, to: service.rawValue) }
        }
        reload.resume()
        defer { reload.cancel() }
        try supervisor.wrapAsEnvironmentSays()
        try supervisor.start()
        // The process to signal, so that nobody has to find it (and find another's `erp up`).
        print("erp up: pid \(getpid()); databases in \(loaded.dataDirectory); kill -HUP \(getpid()) reloads every service's keys")
        if let stock { print("stock: every shop's × \(stock) (\(fixturesPath), which erp check \(loaded.dataDirectory) reads)") }
        if noRateLimits { print("rate limits: none (--no-rate-limits)") }
        if loaded.endpoint(of: .gateway) != nil {
            print("gateway: http://\(loaded.httpHost):\(loaded.httpPort)  (send X-API-Key; keys are in \(topology)); metrics at /metrics")
        }
        for service in loaded.services {
            if let m = loaded.metricsAddresses[service] { print("\(service) metrics: http://\(m.host):\(m.port)/metrics") }
        }
        stop.wait()
        print("stopping every service")
        supervisor.stop()
        signals.cancel()
    }
}

extension RunMode: ExpressibleByArgument {}
extension NetworkFaults: ExpressibleByArgument {}
