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
    let backend = try simulationBackend(scenario, seed: seed, fixtures: fixtures, outputDirectory: directory, filesOnDisk: filesOnDisk)
    return try await ScenarioRunner(scenario: scenario, fixtures: fixtures, seed: seed, outputDirectory: directory,
                                    reproduce: reproduce).run(on: backend)
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

/// The fixtures at `path` with every shop's stock multiplied by `factor` (so that a load of orders
/// is not cancelled for want of it), written as `directory/fixtures.json` for the services to read.
func fixturesWithStock(_ path: String, times factor: Int, into directory: String) throws -> (fixtures: Fixtures, path: String) {
    var loaded = try loadFixtures(path)
    for s in loaded.shops.indices {
        for l in loaded.shops[s].stock.indices { loaded.shops[s].stock[l].quantity *= factor }
    }
    let written = directory + "/fixtures.json"
    try JSONCoding.encode(loaded).write(to: URL(fileURLWithPath: written))
    return (loaded, written)
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
    memory. A run offering more than 200,000 orders does so by itself, unless it has disk faults: \
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
