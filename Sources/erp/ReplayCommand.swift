import ArgumentParser
import ERPCore
import ERPReports
import ERPScenario
import ERPSimulationBackend
import ERPStorage
import Foundation

/// `erp replay REPORT`: runs a simulation report's scenario and seed again and compares the new
/// trace with the report's, line by line. A difference is printed as the first diverging line
/// with the lines around it from both runs, and exits 6.
struct Replay: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a simulation report's scenario and seed again and compare the traces line by line.",
        discussion: """
            REPORT is a folder `erp run` wrote in simulation (summary.json and trace.log). The run's \
            scenario and fixtures, as the report's copies of them in REPORT/inputs/ (reports of older \
            builds: the files its summary names; a note says when those have changed since the run), \
            are run again with the report's seed (scaled to its chaos phase when that differs) into \
            REPORT/replay, and the trace compared with the report's. Exit status: 0 the same trace, \
            6 a divergence (its first line is printed with context from both), 1 a report that \
            cannot be replayed, 130 interrupted.
            """)

    @Argument(help: "The report folder.") var report: String
    @Option(parsing: .unconditional, help: "Lines shown around the first difference.") var context = 3

    func run() async throws {
        let summaryPath = report + "/summary.json", tracePath = report + "/trace.log"
        let summary: RunSummary
        switch readRunSummary(report) {
        case .success(let s): summary = s
        case .failure(let refused): throw fail(refused.message)
        }
        guard summary.mode == RunMode.simulation.rawValue, FileManager.default.fileExists(atPath: tracePath) else {
            throw fail("\(report) is a \(summary.mode) run: only a simulation run has a trace to replay")
        }
        guard !summary.scenarioPath.isEmpty else { throw fail("\(summaryPath) does not name its scenario file") }
        // Interrupted: no half-written replay left inside the report.
        let interrupts = InterruptNotice("replay") {
            try? FileManager.default.removeItem(atPath: report + "/replay")
            return "nothing compared; \(report) is as it was"
        }
        let outcome = try await rerun(summary, report: report, into: report + "/replay")
        interrupts.cancel()
        if let recorded = summary.build, let now = RecordedBuild.current(), recorded != now {
            print("note: another build of erp wrote the report (\(recorded)) than runs this replay (\(now)): a divergence can be the build's")
        }
        if let recorded = summary.sqliteVersion, recorded != SQLiteTuning.libraryVersion {
            print("note: the report ran on SQLite \(recorded), this replay on \(SQLiteTuning.libraryVersion): a scenario with power cuts or disk faults "
                  + "can diverge on that alone (its trace counts SQLite's writes and quotes its errors)")
        }
        try compare(expected: tracePath, actual: outcome + "/trace.log", labels: ("\(report)/trace.log", "\(outcome)/trace.log"),
                    context: context)
    }

    private func fail(_ message: String) -> ExitCode {
        FileHandle.standardError.put(Data("erp replay: \(message)\n".utf8))
        return ExitCode(ExitStatus.invalidInput)
    }
}

/// Runs the run `summary` (of the folder `report`) records again in simulation, into `directory`
/// (replaced): its scenario and fixtures (the report's copies of them when it kept them:
/// `recordedRun`) and seed, as it ran them (`asRecorded`). Returns the directory.
func rerun(_ summary: RunSummary, report: String, into directory: String) async throws -> String {
    let scenarioPath = summary.scenarioPath, seed = summary.seed
    let loaded: Scenario, fixturesPath: String
    switch recordedRun(summary, report: report) {
    case .success(let run):
        (loaded, fixturesPath) = (run.scenario, run.fixturesPath)
        for note in run.notes { print("note: " + note) }
    case .failure(let refused):
        FileHandle.standardError.put(Data("erp: \(refused.message)\n".utf8))
        throw ExitCode(ExitStatus.invalidInput)
    }
    let (scenario, unknown) = asRecorded(loaded, by: summary)
    if let name = unknown.first {
        FileHandle.standardError.put(Data("erp: the run planted a defect this build does not know: \(name)\n".utf8))
        throw ExitCode(ExitStatus.invalidInput)
    }
    let fixtures = try loadFixtures(fixturesPath)
    try freshDirectory(directory)
    let backend = try simulationBackend(scenario, seed: seed, fixtures: fixtures, outputDirectory: directory)
    let runner = ScenarioRunner(scenario: scenario, fixtures: fixtures, seed: seed, outputDirectory: directory,
                                reproduce: erpCommandLine(["run", scenarioPath, "--seed", "\(seed)"]))
    _ = try await runner.run(on: backend)
    return directory
}

/// Compares two traces; prints the first divergence and exits 6 when they differ.
func compare(expected: String, actual: String, labels: (String, String), context: Int) throws {
    if let divergence = try TraceDiff.firstDivergence(expected: expected, actual: actual, context: max(0, context)) {
        print(divergence.rendered(expectedLabel: labels.0, actualLabel: labels.1))
        throw ExitCode(ExitStatus.diverged)
    }
    let lines = try String(contentsOfFile: expected, encoding: .utf8).reduce(0) { $1 == "\n" ? $0 + 1 : $0 }
    print("same trace, line for line (\(lines) lines)")
}
