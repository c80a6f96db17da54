import ArgumentParser
import ERPCore
import ERPReports
import ERPScenario
import ERPSimulationBackend
import ERPZeroMQBackend
import Foundation

/// `erp calibrate SCENARIO`: the simulator's latency model fitted to real processes, and how close
/// the simulation then comes. Runs the scenario over ZeroMQ on this machine with no latency added
/// (the machine's own network and services), fits one-way latency per pair and service time per
/// method (`Calibration.fit`), writes the scenario with the fitted `network:` block, runs it in
/// simulation, and prints the fidelity table: p50 and p99 per RPC method and per flow, simulated
/// against real, with their ratio, beside the ratio the uncalibrated simulation gave.
struct Calibrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Fit the simulator's latency model to a run over ZeroMQ and print how close the simulation comes.",
        discussion: """
            Writes into DIR (--out, default reports/calibrate-SCENARIO): real/ (the ZeroMQ run), \
            calibrated.yaml (the scenario with the fitted network block: a latency distribution per \
            link and a service time per RPC method), sim/ (the simulated run of calibrated.yaml), \
            uncalibrated/ (the scenario simulated as written), fidelity.md and fidelity.json. \
            The ZeroMQ run adds no latency of its own (the scenario's base latency is set to zero; \
            its faults still play). What the simulator cannot model is in docs/calibration.md. \
            Exit status: 0 calibrated, 1 bad input or a run that could not start.
            """)

    @Argument(help: "The scenario file (YAML), e.g. scenarios/happy-path.yaml.") var scenario: String
    @Option(parsing: .unconditional, help: ArgumentHelp("Length of the chaos phase of both runs (real time over ZeroMQ).", valueName: "duration"))
    var duration = "10s"
    @Option(parsing: .unconditional, help: "Seed of the workload (default: the scenario's).") var seed: UInt64?
    @Option(name: .customLong("out"), help: "Output folder (default: reports/calibrate-SCENARIO).") var outputDirectory: String?
    @Flag(help: "Print the services' log lines of the ZeroMQ run to standard error.") var log = false

    func run() async throws {
        var loaded: Scenario
        do { loaded = try ScenarioLoader.load(path: scenario) } catch { throw fail(error.description) }
        guard let chaos = Duration(parsing: duration), chaos > .zero else {
            throw fail("--duration must be a positive duration such as 10s, not '\(duration)'")
        }
        loaded = loaded.scaled(toChaos: chaos)
        let seed = self.seed ?? loaded.seed
        let fixturesPath = URL(fileURLWithPath: resolve(loaded.fixturesPath, relativeTo: scenario)).standardizedFileURL.path
        let fixtures = try loadFixtures(fixturesPath)
        let out = outputDirectory ?? "reports/calibrate-\(loaded.name)"
        do { try OutputFolder.claim(out) } catch { throw fail("--out \(error)") }

        // 1. Reality: the services as processes, nothing added to their network.
        var measured = loaded
        measured.network.link.latency = .uniform(.zero, .zero)
        print("1/3 running \(loaded.name) over ZeroMQ for \(chaos.shortDescription) of chaos (+ heal)…")
        let realDirectory = out + "/real"
        try freshDirectory(realDirectory)
        let real: RunSummary, zmq: ZeroMQBackend
        do {
            (real, zmq) = try await runOverZeroMQ(measured, scenarioPath: URL(fileURLWithPath: scenario).standardizedFileURL.path,
                                                  fixturesPath: fixturesPath, fixtures: fixtures, seed: seed, into: realDirectory,
                                                  reproduce: erpCommandLine(["run", scenario, "--mode", "zmq", "--duration", duration]), log: log)
        } catch { throw fail("the ZeroMQ run failed: \(error)") }

        // 2. The fit, written as a scenario and read back (the file is what the simulation runs).
        let fit: Calibration.Fit
        do { fit = try Calibration.fit(zmq.measuredLatency, base: loaded.network) } catch { throw fail("\(error)") }
        var calibrated = loaded
        calibrated.network = fit.network
        calibrated.name = loaded.name + "-calibrated"
        let calibratedPath = out + "/calibrated.yaml"
        let header = ["Written by erp calibrate from \(scenario) over ZeroMQ on this machine (\(chaos.shortDescription) of chaos):",
                      "one-way latency per link and service time per RPC method, fitted; simulation only."]
        try ScenarioWriter.yaml(calibrated, header: header, fixturesPath: fixturesPath).write(toFile: calibratedPath, atomically: true, encoding: .utf8)
        let reloaded: Scenario
        do { reloaded = try ScenarioLoader.load(path: calibratedPath) } catch { throw fail("the written \(calibratedPath) does not load: \(error)") }
        print("2/3 fitted \(fit.links.count) pairs of services and \(fit.network.serviceTimes.count) methods' service times → \(calibratedPath)")
        for link in fit.links { print("    \(link.from) ↔ \(link.to) (\(link.calls) calls): \(link.latency)") }
        for (method, time) in fit.network.serviceTimes { print("    \(method) (\(fit.serviceSamples[method] ?? 0) served): \(time)") }

        // 3. The simulation, calibrated and as written, at the same seed.
        print("3/3 simulating it, and the scenario as written, at seed \(seed)…")
        let simulated = try await simulation(reloaded, seed: seed, fixtures: fixtures, into: out + "/sim", path: calibratedPath)
        let uncalibrated = try await simulation(loaded, seed: seed, fixtures: fixtures, into: out + "/uncalibrated", path: scenario)

        let rows = Calibration.fidelity(real: real, simulated: simulated, uncalibrated: uncalibrated)
        let table = Calibration.fidelityTable(rows)
        let text = "# Fidelity of \(loaded.name), seed \(seed), \(chaos.shortDescription) of chaos\n\n"
            + "Latency in ms; ratio = simulated / real (1.00 is exact). Real: \(realDirectory); simulated: \(out)/sim.\n\n" + table
        try text.write(toFile: out + "/fidelity.md", atomically: true, encoding: .utf8)
        try writeJSON(rows, to: out + "/fidelity.json")
        print("")
        print(table)
        let within = rows.filter { (0.5...2).contains($0.p50Ratio) }.count
        print("\(within) of \(rows.count) figures have a simulated p50 within 0.5×–2× of the real one. Reports in \(out)")
    }

    private func simulation(_ scenario: Scenario, seed: UInt64, fixtures: Fixtures, into directory: String, path: String) async throws -> RunSummary {
        do {
            return try await simulate(scenario, seed: seed, fixtures: fixtures, into: directory, reproduce: erpCommandLine(["run", path, "--seed", "\(seed)"]))
        } catch { throw fail("the simulation of \(path) failed: \(error)") }
    }

    private func fail(_ message: String) -> ExitCode {
        FileHandle.standardError.put(Data("erp calibrate: \(message)\n".utf8))
        return ExitCode(ExitStatus.invalidInput)
    }
}
