import ArgumentParser
import ERPCore
import ERPReports
import ERPScenario
import ERPSimulationBackend
import Foundation

/// `erp shrink REPORT`: from a failing simulation run, a smaller scenario that still breaks the
/// same invariant. Delta debugging over the fault schedule (ddmin: drop chunks of faults, then
/// single faults), then halving the chaos phase, the order rate and the heal phase (down to the
/// scenario's `healFloor`), then dropping
/// the workloads the failure does not need; every candidate is run with the report's seed and
/// kept only when the invariant still fails. Writes minimal.yaml, runs it again to prove it, and
/// prints the sizes before and after.
struct Shrink: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Shrink a failing simulation run to a smaller scenario that still breaks the same invariant.",
        discussion: """
            REPORT is a folder `erp run` or `erp explore` wrote for a failing simulation run. The \
            invariant kept broken is --invariant, or the report's first failing one. Writes \
            DIR/minimal.yaml (DIR: --out, default REPORT/shrink) and DIR/run/, the proof run of it. \
            Exit status: 0 shrunk and proven, 1 a report that cannot be shrunk (not a failing \
            simulation run, or one whose failure does not reproduce), 130 interrupted (the \
            smallest failing scenario found so far is written, not proven).
            """)

    @Argument(help: "The failing run's report folder.") var report: String
    @Option(help: "The invariant that must stay broken (default: the report's first failing one).") var invariant: String?
    @Option(name: .customLong("out"), help: "Output folder (default: REPORT/shrink).") var outputDirectory: String?
    @Option(parsing: .unconditional, help: "At most this many candidate runs.") var budget = 200

    func run() async throws {
        guard budget >= 1 else { throw fail("--budget must be at least 1 (the first run checks that the report's scenario still fails), not \(budget)") }
        let summary: RunSummary
        switch readRunSummary(report) {
        case .success(let s): summary = s
        case .failure(let refused): throw fail(refused.message)
        }
        guard summary.mode == RunMode.simulation.rawValue else { throw fail("\(report) is a \(summary.mode) run; shrinking runs in simulation") }
        let failing = summary.failedInvariants
        guard let target = invariant ?? failing.first else {
            throw fail("\(report): no invariant failed, nothing to shrink"
                       + (summary.expectationFailures.isEmpty ? "" : " (its expectations failed: shrink reduces a run that broke an invariant, not one that missed an expectation)"))
        }
        guard !failing.isEmpty else {
            throw fail("\(report): \(target) did not fail there: no invariant did"
                       + (summary.expectationFailures.isEmpty ? "" : " (its expectations failed: shrink reduces a run that broke an invariant, not one that missed an expectation)"))
        }
        guard failing.contains(target) else { throw fail("\(report): \(target) did not fail there (failing: \(failing.joined(separator: ", ")))") }
        guard !summary.scenarioPath.isEmpty else { throw fail("\(report)/summary.json does not name its scenario file") }
        var scenario: Scenario, fixturesPath: String
        switch recordedRun(summary, report: report) {
        case .success(let run):
            (scenario, fixturesPath) = (run.scenario, run.fixturesPath)
            for note in run.notes { print("note: " + note) }
        case .failure(let refused): throw fail(refused.message)
        }
        scenario = asRecorded(scenario, by: summary).scenario
        scenario.expect = Scenario.Expectations()
        let fixtures = try loadFixtures(fixturesPath)
        let out = outputDirectory ?? report + "/shrink"
        do { try OutputFolder.claim(out) } catch { throw fail("--out \(error)") }

        var runs = 0
        // The smallest scenario found failing so far: what Ctrl-C keeps.
        let smallest = SmallestSoFar()
        let header: @Sendable (Int) -> [String] = { runs in ["Shrunk by erp shrink from \(report) (\(runs) candidate runs):", "still breaks \(target) at seed \(summary.seed)."] }
        let minimalName = scenario.name + "-minimal"
        let interrupts = InterruptNotice("shrink") { [out, fixturesPath] in
            try? FileManager.default.removeItem(atPath: out + "/candidate")
            guard var (best, runs) = smallest.value else { return "nothing shrunk yet" }
            best.name = minimalName  // as a finished shrink names it
            let path = out + "/minimal.yaml"
            let yaml = ScenarioWriter.yaml(best, header: header(runs) + ["Interrupted: the smallest failing scenario so far, not run again to prove it."],
                                           fixturesPath: fixturesPath)
            guard (try? yaml.write(toFile: path, atomically: true, encoding: .utf8)) != nil else { return "\(path) could not be written" }
            return "the smallest failing scenario so far (\(runs) candidate runs) is in \(path)"
        }
        defer { interrupts.cancel() }
        /// Whether `candidate` still breaks `target` with the report's seed.
        func fails(_ candidate: Scenario, _ what: String) async -> Bool {
            guard runs < budget else { return false }
            runs += 1
            do {
                let result = try await simulate(candidate, seed: summary.seed, fixtures: fixtures, into: out + "/candidate", reproduce: "")
                let broken = result.invariants[target] == .fail
                if broken { smallest.set(candidate, runs: runs) }
                print("  \(runs). \(what): \(broken ? "still fails" : "passes")")
                return broken
            } catch {
                print("  \(runs). \(what): cannot run (\(error))")
                return false
            }
        }

        print("shrinking \(summary.scenario) seed \(summary.seed), keeping \(target) broken")
        let before = Self.size(scenario)
        guard await fails(scenario, "the report's scenario as is") else {
            throw fail("\(target) does not fail when the report's scenario runs again: nothing to shrink")
        }
        // The file says the failing seed: with the scenario's own (the report's may be another,
        // given with --seed) the written file, run alone, broke something else or nothing.
        var best = scenario
        best.seed = summary.seed

        // 1. The fault schedule: ddmin over the list (drop complements of n chunks, then chunks).
        var granularity = 2
        while best.faults.count >= 1 {
            let chunks = Self.split(best.faults.indices.map { $0 }, into: min(granularity, best.faults.count))
            var reduced = false
            for chunk in chunks {
                var candidate = best
                candidate.faults = best.faults.enumerated().filter { !chunk.contains($0.offset) }.map(\.element)
                if await fails(candidate, "drop \(chunk.count) of \(best.faults.count) faults") {
                    best = candidate
                    granularity = max(granularity - 1, 2)
                    reduced = true
                    break
                }
            }
            if !reduced {
                if granularity >= best.faults.count { break }
                granularity = min(best.faults.count, granularity * 2)
            }
        }
        // 2. A shorter chaos phase (the schedule scales with it, and the heal phase too, but not
        //    below its floor: `scaled(toChaos:)` keeps it there, see 4).
        while best.duration > .seconds(1) {
            let candidate = best.scaled(toChaos: max(.seconds(1), best.duration / 2))
            let heal = candidate.heal == best.heal ? "" : " (heal \(best.heal.shortDescription) → \(candidate.heal.shortDescription) with it)"
            guard await fails(candidate, "chaos \(best.duration.shortDescription) → \(candidate.duration.shortDescription)" + heal) else { break }
            best = candidate
        }
        // 3. A lower order rate.
        while best.workload.ratePerSecond > 1 {
            var candidate = best
            candidate.workload.ratePerSecond = max(1, (best.workload.ratePerSecond / 2).rounded())
            guard await fails(candidate, "order rate \(best.workload.ratePerSecond)/s → \(candidate.workload.ratePerSecond)/s") else { break }
            best = candidate
        }
        // 4. A shorter heal phase, never below the floor under which a breaker still open or a
        //    device not yet heard from would fail the run for its schedule, not its services (nor
        //    below the report's own heal phase, when that was already under the floor).
        while max(best.healFloor, best.heal / 2) < best.heal {
            var candidate = best
            candidate.heal = max(best.healFloor, best.heal / 2)
            guard await fails(candidate, "heal \(best.heal.shortDescription) → \(candidate.heal.shortDescription)") else { break }
            best = candidate
        }
        // 5. Workloads the failure does not need.
        if !best.store.isEmpty {
            var candidate = best
            candidate.store = Scenario.StoreWorkload()
            if await fails(candidate, "no vends, campaigns or reads") { best = candidate }
        }
        if best.devices.enabled {
            var candidate = best
            candidate.devices.enabled = false
            if await fails(candidate, "no devices") { best = candidate }
        }

        best.name = minimalName
        best.description = "Shrunk by erp shrink from \(report): still breaks \(target) at seed \(summary.seed)"
        interrupts.cancel()
        let yaml = ScenarioWriter.yaml(best, header: header(runs), fixturesPath: fixturesPath)
        let minimal = out + "/minimal.yaml"
        try yaml.write(toFile: minimal, atomically: true, encoding: .utf8)
        try? FileManager.default.removeItem(atPath: out + "/candidate")

        // The proof: the written file, loaded and run afresh.
        let proof = try ScenarioLoader.load(path: minimal)
        let proven = try await simulate(proof, seed: summary.seed, fixtures: fixtures, into: out + "/run",
                                        reproduce: erpCommandLine(["run", minimal, "--seed", "\(summary.seed)"]))
        guard proven.invariants[target] == .fail else { throw fail("the written \(minimal) no longer breaks \(target)") }
        let after = Self.size(best)
        print("before: \(before)")
        print("after:  \(after)")
        print("\(target) still fails: \(proven.counterExamples(of: target).first ?? "")")
        print("minimal scenario: \(minimal)  (reproduce: \(erpCommandLine(["run", minimal, "--seed", "\(summary.seed)"])))")
    }

    static func size(_ s: Scenario) -> String {
        "\(s.faults.count) faults, chaos \(s.duration.shortDescription), heal \(s.heal.shortDescription), \(s.workload.ratePerSecond) orders/s"
            + (s.devices.enabled ? ", devices" : "") + (s.store.isEmpty ? "" : ", vends/campaigns/reads")
    }

    /// `items` in `n` nearly equal consecutive chunks.
    static func split(_ items: [Int], into n: Int) -> [[Int]] {
        guard n > 0, !items.isEmpty else { return [] }
        var out: [[Int]] = []
        var start = 0
        for i in 0..<n {
            let end = start + (items.count - start) / (n - i)
            out.append(Array(items[start..<end]))
            start = end
        }
        return out.filter { !$0.isEmpty }
    }

    private func fail(_ message: String) -> ExitCode {
        FileHandle.standardError.put(Data("erp shrink: \(message)\n".utf8))
        return ExitCode(ExitStatus.invalidInput)
    }
}

/// The last candidate a shrink found still failing (each is smaller than the one before).
final class SmallestSoFar: @unchecked Sendable {
    private let lock = NSLock()
    private var kept: (Scenario, Int)?
    func set(_ scenario: Scenario, runs: Int) { lock.withLock { kept = (scenario, runs) } }
    var value: (Scenario, Int)? { lock.withLock { kept } }
}
