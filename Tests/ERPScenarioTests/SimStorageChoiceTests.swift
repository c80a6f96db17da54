import ERPScenario
import ERPSimulation
import ERPSimulationBackend
import ERPTestSupport
import Testing

/// Where a simulated run keeps its databases, by what it offers: whole sagas take about 10 KB of
/// database an order, so a run past `ordersInMemoryMax` keeps files (100,000 orders held
/// 1,014 MiB on the simulated disks), unless a disk fault needs the simulated disks.
@Suite struct SimStorageChoiceTests {
    static func scenario(_ file: String, orders: Double) throws -> Scenario {
        var scenario = try ScenarioLoader.load(path: packageRoot + "/scenarios/" + file)
        scenario.workload.ratePerSecond = orders / scenario.duration.seconds
        return scenario
    }

    @Test func largeRunsKeepFilesUnlessADiskFaultNeedsTheSimulatedDisks() throws {
        #expect(SimulationBackend.ordersInMemoryMax == 50_000)
        #expect(try SimulationBackend.storage(for: Self.scenario("happy-path.yaml", orders: 40_000), filesOnDisk: false) == .memoryWithoutDiskFaults)
        #expect(try SimulationBackend.storage(for: Self.scenario("happy-path.yaml", orders: 60_000), filesOnDisk: false) == .files)
        #expect(try SimulationBackend.storage(for: Self.scenario("happy-path.yaml", orders: 100), filesOnDisk: true) == .files)
        #expect(try SimulationBackend.storage(for: Self.scenario("power-loss.yaml", orders: 60_000), filesOnDisk: false) == .memory(modelsPowerLoss: true))
        #expect(throws: (any Error).self) { try SimulationBackend.storage(for: Self.scenario("power-loss.yaml", orders: 100), filesOnDisk: true) }
    }
}
