import ERPCore
import ERPReports
import ERPScenario
import ERPSimulationBackend
import ERPStorage
import ERPZeroMQBackend
import Foundation

/// This binary: what `erp serve` children and explore's workers are started from.
let erpExecutable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path

/// An empty folder at `path`; whatever was there goes.
func freshDirectory(_ path: String) throws {
    try? FileManager.default.removeItem(atPath: path)
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
}

/// One simulated run of `scenario` at `seed`, its reports written into `directory` (made afresh).
func simulate(_ scenario: Scenario, seed: UInt64, fixtures: Fixtures, into directory: String, reproduce: String,
              filesOnDisk: Bool = false) async throws -> RunSummary {
    try freshDirectory(directory)
    let backend = try SimulationBackend(scenario: scenario, seed: seed, fixtures: fixtures, outputDirectory: directory, filesOnDisk: filesOnDisk)
    return try await ScenarioRunner(scenario: scenario, fixtures: fixtures, seed: seed, outputDirectory: directory,
                                    reproduce: reproduce).run(on: backend)
}

/// The help of `--files-on-disk`, which `erp run` and `erp bench scenario` share.
let filesOnDiskHelp = """
    In simulation, keep the services' databases in files from the start instead of on the simulated \
    in-memory disks (which are written out when the run ends): for runs whose databases outgrow \
    memory. A run offering more than 200,000 orders does so by itself, unless it has disk faults: \
    power loss and the other disk faults need the simulated disks.
    """

/// One run of `scenario` on real processes (every service an `erp serve` child of this binary,
/// reading `scenarioPath` and `fixturesPath`), its reports written into `directory`, which the
/// caller has made (the scenario file often lives there); quiet unless `log`. The backend comes
/// back too, for what only it measured.
func runOverZeroMQ(_ scenario: Scenario, scenarioPath: String, fixturesPath: String, fixtures: Fixtures, seed: UInt64,
                   into directory: String, reproduce: String, log: Bool = false,
                   synchronous: SynchronousMode = .full) async throws -> (summary: RunSummary, backend: ZeroMQBackend) {
    let backend = ZeroMQBackend(scenario: scenario, scenarioPath: scenarioPath, fixturesPath: fixturesPath,
                                outputDirectory: directory, executable: erpExecutable)
    backend.synchronous = synchronous
    if !log { backend.log = { _ in } }
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
