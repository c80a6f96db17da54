// ERPTestSupport: what every test target shares: where the package and the erp binary are, the
// fixtures, running the erp binary as a separate process, and a scenario run in simulation.
// Linked only by test targets.
import ERPCore
import ERPReports
import ERPScenario
import ERPSimulationBackend
import ERPZeroMQBackend
import Foundation
import Testing

extension Tag {
    /// Tests that start real processes and sockets (ZeroMQ mode): slower, and run in CI too.
    @Tag public static var zeromq: Self
}

/// The package's root folder, found from this file's path (Sources/ERPTestSupport/…).
public let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().path

/// The erp binary the cross-process tests run: `$ERP_BINARY` when set (a release build, another
/// build folder), else the debug build's. The one place that knows where it is.
public var erpBinary: String {
    ProcessInfo.processInfo.environment["ERP_BINARY"] ?? packageRoot + "/.build/debug/erp"
}

/// The fixtures every library scenario uses.
public func loadFixtures() throws -> Fixtures {
    try JSONCoding.decode(Fixtures.self, from: Data(contentsOf: URL(fileURLWithPath: packageRoot + "/fixtures/retail.json")))
}

/// A library scenario, by name.
public func library(_ name: String) throws -> Scenario {
    try ScenarioLoader.load(path: packageRoot + "/scenarios/" + name + ".yaml")
}

/// A fresh folder under the temporary directory (the caller removes it).
public func scratchDirectory(_ label: String) -> String {
    FileManager.default.temporaryDirectory.appendingPathComponent("erp-\(label)-\(UInt64.random(in: 0...UInt64.max))").path
}

/// A scratch folder holding `yaml` as the scenario file `s.yaml`, `FIXTURES` in it replaced by
/// the library's fixtures file: a test's own scenario, run with `runErp(["run", file, …])`.
public func scenarioFile(_ label: String, _ yaml: String) throws -> (file: String, directory: String) {
    let directory = scratchDirectory(label)
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    let file = directory + "/s.yaml"
    try yaml.replacingOccurrences(of: "FIXTURES", with: packageRoot + "/fixtures/retail.json").write(toFile: file, atomically: true, encoding: .utf8)
    return (file, directory)
}

/// Runs `scenario` in simulation (its own seed unless given) and returns the summary; the report
/// folder is removed afterwards. The world computes on a thread of its own.
public func runInSimulation(_ scenario: Scenario, seed: UInt64? = nil) async throws -> RunSummary {
    try await HeavyWork.shared.run { try await simulate(scenario, seed: seed) }
}

private func simulate(_ scenario: Scenario, seed: UInt64?) async throws -> RunSummary {
    let out = scratchDirectory("run-\(scenario.name)")
    try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: out) }
    let seed = seed ?? scenario.seed
    let backend = try SimulationBackend(scenario: scenario, seed: seed, fixtures: try loadFixtures(), outputDirectory: out)
    let runner = ScenarioRunner(scenario: scenario, fixtures: try loadFixtures(), seed: seed, outputDirectory: out,
                                reproduce: "erp run \(scenario.name) --seed \(seed)")
    return try await runner.run(on: backend)
}

/// Work that keeps a core busy for seconds (a simulated world, a scenario over real processes):
/// at most `countMax` at once in a test process. Without a bound, a test run starts every such
/// test at once, and the tests beside them that talk over real sockets wait seconds for a core.
public actor HeavyWork {
    public static let shared = HeavyWork(countMax: max(1, ProcessInfo.processInfo.activeProcessorCount - 1))
    let countMax: Int
    private var running = 0
    private var waiting: [CheckedContinuation<Void, Never>] = []

    init(countMax: Int) { self.countMax = countMax }

    /// Runs `body` once a place is free (first come, first served).
    public func run<T: Sendable>(_ body: @Sendable () async throws -> T) async rethrows -> T {
        if running < countMax {
            running += 1
        } else {
            // The place is handed over by the one that leaves, so `running` stays counted.
            await withCheckedContinuation { waiting.append($0) }
        }
        defer {
            if waiting.isEmpty { running -= 1 } else { waiting.removeFirst().resume() }
        }
        return try await body()
    }
}

/// Runs `body` on a thread of its own and waits for it: work that blocks for long (a simulated
/// world computing, waiting for a process) must not hold one of the cooperative pool's threads.
public func onThreadOfItsOwn<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await onThread { Result { try body() } }.get()
}

/// Waits for `process` to end on a thread of its own. `waitUntilExit()` in a test blocks one of
/// the cooperative pool's threads (two on a two-core machine) for as long as the process runs;
/// two such waits at once stop every other test's tasks, and a CI run saw calls with a 5 s
/// deadline time out beside a Chromium that ran for minutes.
///
/// And not `waitUntilExit()` on that thread either: off the main thread it spins an empty run
/// loop, a whole core for as long as the child runs (a 2-second `sleep` waited for so cost 2.0 s
/// of CPU; a test waiting on a service that did not stop held 99.8 % of a core for 15 minutes).
/// Foundation notes the child's end by itself; this looks every 10 ms (0.01 s of CPU over those
/// 2 seconds).
public func waitForExit(_ process: Process) async {
    await onThread { while process.isRunning { usleep(10_000) } }  // pool-exempt: the thread of its own
}

/// Reads `handle` to its end on a thread of its own (a pipe's reader blocks until every writer
/// has closed it: for a child process, until it ends), for the reason `waitForExit` gives.
public func readToEnd(_ handle: FileHandle) async -> Data {
    await onThread { handle.readDataToEndOfFile() }  // pool-exempt: the thread of its own
}

/// The three above: `body` on a new thread, awaited.
private func onThread<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { (done: CheckedContinuation<T, Never>) in
        let thread = Thread { done.resume(returning: body()) }
        thread.stackSize = 8 << 20
        thread.start()
    }
}

/// What a finished erp process left.
public struct ProcessResult: Sendable {
    public var status: Int32
    public var output: String
}

/// Runs the erp binary with `arguments` in the package's root and waits for it on a thread of its
/// own (blocking one of the cooperative pool's threads for half a minute starves other tests), as
/// heavy work. Standard output and error are collected together; `environment` adds to (or, with
/// a nil value, removes from) this process's environment.
/// `directory`: where it runs (the package's root unless given).
public func runErp(_ arguments: [String], environment: [String: String?] = [:], directory: String? = nil) async throws -> ProcessResult {
    try await HeavyWork.shared.run { try await runErpNow(arguments, environment: environment, directory: directory ?? packageRoot) }
}

private func runErpNow(_ arguments: [String], environment: [String: String?], directory: String) async throws -> ProcessResult {
    guard FileManager.default.isExecutableFile(atPath: erpBinary) else {
        throw TestSupportError("no erp binary at \(erpBinary): build it first (swift build) or set ERP_BINARY")
    }
    return try await runNow(erpBinary, arguments, environment: environment, directory: directory)
}

/// Runs `executable` (a script of the package's, say) as `runErp` runs the erp binary.
public func runProgram(_ executable: String, _ arguments: [String], environment: [String: String?] = [:], directory: String? = nil) async throws -> ProcessResult {
    try await HeavyWork.shared.run { try await runNow(executable, arguments, environment: environment, directory: directory ?? packageRoot) }
}

private func runNow(_ executable: String, _ arguments: [String], environment: [String: String?], directory: String) async throws -> ProcessResult {
    let log = scratchDirectory("process") + ".log"
    FileManager.default.createFile(atPath: log, contents: nil)
    defer { try? FileManager.default.removeItem(atPath: log) }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    process.currentDirectoryURL = URL(fileURLWithPath: directory)
    var merged = ProcessInfo.processInfo.environment
    for (name, value) in environment { merged[name] = value }
    process.environment = merged
    process.standardOutput = FileHandle(forWritingAtPath: log)
    process.standardError = process.standardOutput
    try process.run()
    await waitForExit(process)
    return ProcessResult(status: process.terminationStatus,
                         output: String(decoding: FileManager.default.contents(atPath: log) ?? Data(), as: UTF8.self))
}

public struct TestSupportError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Runs a library scenario on `mode`'s backend and returns the summary; the report folder is
/// removed afterwards. Over ZeroMQ the scenario is scaled to a chaos phase of `zmqChaos` (real
/// time), its services are `erp serve` children of the binary at `erpBinary`.
public func runScenario(_ scenario: Scenario, on mode: RunMode, seed: UInt64? = nil, zmqChaos: Duration = .seconds(4)) async throws -> RunSummary {
    switch mode {
    case .simulation:
        return try await runInSimulation(scenario, seed: seed)
    case .zmq:
        return try await HeavyWork.shared.run { try await overZeroMQ(scenario, seed: seed, chaos: zmqChaos) }
    }
}

private func overZeroMQ(_ scenario: Scenario, seed: UInt64?, chaos zmqChaos: Duration) async throws -> RunSummary {
    guard !scenario.path.isEmpty else { throw TestSupportError("a scenario runs over ZeroMQ from its file; \(scenario.name) has none") }
    guard FileManager.default.isExecutableFile(atPath: erpBinary) else {
        throw TestSupportError("no erp binary at \(erpBinary): build it first (swift build) or set ERP_BINARY")
    }
    let scaled = scenario.scaled(toChaos: zmqChaos, keepingHealFloor: false) // as `erp run --mode zmq --duration` does
    let out = scratchDirectory("zmq-\(scenario.name)")
    try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
    let seed = seed ?? scenario.seed
    let backend = ZeroMQBackend(scenario: scaled, scenarioPath: scenario.path, fixturesPath: packageRoot + "/fixtures/retail.json",
                                outputDirectory: out, executable: erpBinary)
    backend.log = { _ in }
    let runner = ScenarioRunner(scenario: scaled, fixtures: try loadFixtures(), seed: seed, outputDirectory: out,
                                reproduce: "erp run \(scenario.path) --mode zmq --duration \(zmqChaos.shortDescription)")
    let summary: RunSummary
    do { summary = try await runner.run(on: backend) } catch {
        FileHandle.standardError.put(Data("zmq run of \(scenario.name) failed (\(error)); what it wrote is kept in \(out)\n".utf8))
        throw error
    }
    // A run that broke an invariant keeps its report, logs and databases for whoever reads the failure.
    if summary.invariantsPass && summary.orders.pending == 0 {
        try? FileManager.default.removeItem(atPath: out)
    } else {
        FileHandle.standardError.put(Data("zmq run of \(scenario.name) failed its checks; report, logs and databases kept in \(out)\n".utf8))
    }
    return summary
}
