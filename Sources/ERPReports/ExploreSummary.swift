import Foundation

/// What `erp explore` found over many seeds: the shape of its `summary.json` (documented in
/// docs/report-format.md; `version` changes when a field changes meaning or goes away).
public struct ExploreSummary: Codable, Sendable {
    public static let currentVersion = 1

    /// One finished seed.
    public struct Seed: Codable, Sendable, Hashable {
        public var scenario: String
        public var seed: UInt64
        /// `erp run`'s exit status: 0 pass, 2 an invariant failed, 3 liveness, 4 expectations, else an error.
        public var exitStatus: Int32
        public var failedInvariants: [String]
        public var expectationFailures: [String]
        public var wallSeconds: Double
        public var traceHash: String?
        public var reproduce: String
        /// Where its full report is (kept for failing seeds, or all with --keep-passing).
        public var report: String?
        /// For a run that could not be judged (its exit status not 0, 2, 3 or 4: it could not
        /// start, or ended without a summary): the last lines it wrote, saying why.
        public var error: String?
        /// Each broken invariant's first counter-example, `invariant: example`, in report order:
        /// what a CI's test view shows of the failure without opening the report.
        public var counterExamples: [String] = []
        public init(scenario: String, seed: UInt64, exitStatus: Int32, failedInvariants: [String], expectationFailures: [String],
                    wallSeconds: Double, traceHash: String?, reproduce: String, report: String?) {
            self.scenario = scenario; self.seed = seed; self.exitStatus = exitStatus; self.failedInvariants = failedInvariants
            self.expectationFailures = expectationFailures; self.wallSeconds = wallSeconds; self.traceHash = traceHash
            self.reproduce = reproduce; self.report = report
        }
        public var failed: Bool { exitStatus != 0 }
        /// Whether the run could not be judged: an error of the run, not a finding about the ERP.
        public var isRunError: Bool { ![0, 2, 3, 4].contains(exitStatus) }
    }

    /// Per scenario: seeds run, failing seeds, failures by invariant, the slowest seeds.
    public struct ScenarioTotals: Codable, Sendable, Hashable {
        public var scenario: String
        public var seedsRun: Int
        public var failingSeeds: [UInt64]
        public var failuresByInvariant: [String: Int]
        public var slowest: [Seed]
    }

    /// What every seed of the exploration ran with beyond its scenario and seed: the same seed is
    /// another test under `--swarm` or a planted defect, and the JUnit class names say so.
    public struct Experiment: Codable, Sendable, Hashable {
        public var swarm = false
        public var mix = false
        public var defects: [String] = []
        /// `--duration`: the chaos phase every run was given, when not the scenario's own.
        public var duration: String?
        public init(swarm: Bool = false, mix: Bool = false, defects: [String] = [], duration: String? = nil) {
            self.swarm = swarm; self.mix = mix; self.defects = defects; self.duration = duration
        }

        /// The options as words (`swarm --mix, defect skip-stock-release, duration 10s`), or nil
        /// for a plain exploration.
        public var label: String? {
            var parts: [String] = []
            if swarm { parts.append(mix ? "swarm --mix" : "swarm") }
            parts += defects.map { "defect \($0)" }
            if let duration { parts.append("duration \(duration)") }
            return parts.isEmpty ? nil : parts.joined(separator: ", ")
        }

        /// What the JUnit class names add after `SCENARIO.MODE`: nothing for a plain exploration,
        /// else `.swarm` (or `.swarm-mix`), `.defect-NAME` per defect and `.duration-D`, in
        /// that order.
        public var classSuffix: String {
            var suffix = swarm ? (mix ? ".swarm-mix" : ".swarm") : ""
            for defect in defects { suffix += ".defect-\(defect)" }
            if let duration { suffix += ".duration-\(duration)" }
            return suffix
        }
    }

    public var version = ExploreSummary.currentVersion
    public var mode: String
    public var experiment: Experiment
    public var scenarios: [ScenarioTotals]
    /// Every finished seed, in scenario then seed order.
    public var seeds: [Seed]
    /// Seeds asked for but not run (an interruption or the time budget), per scenario, as ranges.
    public var notRun: [String: String]
    public var interrupted: Bool
    public var wallSeconds: Double
    public var seedsPerMinute: Double

    public init(mode: String, experiment: Experiment = Experiment(), seeds: [Seed], notRun: [String: String], interrupted: Bool,
                wallSeconds: Double) {
        self.mode = mode
        self.experiment = experiment
        let sorted = seeds.sorted { ($0.scenario, $0.seed) < ($1.scenario, $1.seed) }
        self.seeds = sorted
        self.notRun = notRun
        self.interrupted = interrupted
        self.wallSeconds = wallSeconds
        seedsPerMinute = wallSeconds > 0 ? (Double(seeds.count) / wallSeconds * 60 * 10).rounded() / 10 : 0
        var names: [String] = []
        for seed in sorted where !names.contains(seed.scenario) { names.append(seed.scenario) }
        scenarios = names.map { name in
            let mine = sorted.filter { $0.scenario == name }
            var byInvariant: [String: Int] = [:]
            for seed in mine { for invariant in seed.failedInvariants { byInvariant[invariant, default: 0] += 1 } }
            for seed in mine where seed.failedInvariants.isEmpty && !seed.expectationFailures.isEmpty { byInvariant["expectations", default: 0] += 1 }
            for seed in mine where seed.failed && seed.failedInvariants.isEmpty && seed.expectationFailures.isEmpty {
                byInvariant["run-error", default: 0] += 1
            }
            return ScenarioTotals(scenario: name, seedsRun: mine.count, failingSeeds: mine.filter(\.failed).map(\.seed),
                                  failuresByInvariant: byInvariant,
                                  slowest: Array(mine.sorted { ($1.wallSeconds, $0.seed) < ($0.wallSeconds, $1.seed) }.prefix(3)))
        }
    }

    public var failures: [Seed] { seeds.filter(\.failed) }

    public func json() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(self)
    }

    /// summary.md: per scenario, then every failing seed with its reproduce command.
    public var markdown: String {
        var md = "# erp explore (\(suiteLabel))\n\n"
        md += "\(seeds.count) seeds in \(String(format: "%.1f", wallSeconds)) s (\(seedsPerMinute) seeds per minute), \(failures.count) failing"
        md += interrupted ? "; **interrupted**" : ""
        md += "\n\n| scenario | seeds | failing | failures by invariant | slowest seeds (s) |\n|---|---|---|---|---|\n"
        for s in scenarios {
            let by = s.failuresByInvariant.sorted { $0.key < $1.key }.map { "\($0.key) ×\($0.value)" }.joined(separator: ", ")
            let slow = s.slowest.map { "\($0.seed): \(String(format: "%.2f", $0.wallSeconds))" }.joined(separator: ", ")
            md += "| \(markdownCell(s.scenario)) | \(s.seedsRun) | \(s.failingSeeds.count) | \(by.isEmpty ? "—" : markdownCell(by)) | \(slow) |\n"
        }
        if !failures.isEmpty {
            md += "\n## Failing seeds\n\n"
            for f in failures {
                let what = f.failedInvariants + f.expectationFailures
                md += "- `\(f.scenario)` seed \(f.seed): \(what.isEmpty ? "exit \(f.exitStatus)" + (f.error.map { " (" + markdownCell($0.split(separator: "\n").last.map(String.init) ?? $0) + ")" } ?? "") : markdownCell(what.joined(separator: "; ")))  \n"
                md += "  reproduce: `\(f.reproduce)`\(f.report.map { "  \n  report: \($0)" } ?? "")\n"
            }
        }
        if !notRun.isEmpty {
            md += "\n## Not run\n\n" + notRun.sorted { $0.key < $1.key }.map { "- \($0.key): seeds \($0.value)" }.joined(separator: "\n") + "\n"
        }
        return md
    }

    /// The mode and what the exploration ran with: `simulation` or `simulation, swarm --mix`.
    var suiteLabel: String { experiment.label.map { "\(mode), \($0)" } ?? mode }

    /// junit.xml: one test case per seed (a run that could not be judged an `<error>`), and one
    /// case per scenario for the seeds asked for and not run: skipped when `--time` was spent,
    /// an `<error>` when the exploration was interrupted (a gate that reads only the JUnit file
    /// must not take a hunt stopped half-way for a clean one). Class names carry the experiment
    /// (`Experiment.classSuffix`): seed 1 under `--swarm` is another test than seed 1 plain.
    public func junit(startedAt: Date? = nil) -> String {
        let suffix = experiment.classSuffix
        var cases = seeds.map { seed in
            var c = JUnitReport.Case(name: "seed \(seed.seed)", className: "\(seed.scenario).\(mode)\(suffix)", seconds: seed.wallSeconds)
            let report = seed.report.map { "\nreport: \($0)" } ?? ""
            if seed.isRunError {
                c.error = ("the run could not be judged (exit \(seed.exitStatus))\(seed.error.map { ": " + ($0.split(separator: "\n").last.map(String.init) ?? $0) } ?? "")",
                           (seed.error ?? "") + "\n\nreproduce: \(seed.reproduce)" + report)
            } else if seed.failed {
                let what = seed.failedInvariants + seed.expectationFailures
                // Every invariant it broke, and how (the first counter-example of each), not only
                // the first one's name.
                let examples = seed.counterExamples.isEmpty ? seed.failedInvariants : seed.counterExamples
                let message = what.isEmpty ? "exit \(seed.exitStatus)" : what.joined(separator: "; ")
                c.failure = (message, (examples + seed.expectationFailures).map { "- \($0)" }.joined(separator: "\n")
                                 + "\n\nreproduce: \(seed.reproduce)" + report)
                c.failureType = seed.failedInvariants.isEmpty ? "expectation" : "invariant"
            }
            return c
        }
        for (scenario, ranges) in notRun.sorted(by: { $0.key < $1.key }) {
            var c = JUnitReport.Case(name: "seeds \(ranges)", className: "\(scenario).\(mode)\(suffix)")
            if interrupted {
                c.error = ("not run: the exploration was interrupted", "seeds \(ranges) of \(scenario) were not run: the exploration was interrupted (exit 130)")
            } else {
                c.skipped = "not run: the time budget (--time) was spent before them"
            }
            cases.append(c)
        }
        return JUnitReport.xml(suite: "erp explore (\(suiteLabel))", cases: cases, seconds: wallSeconds, timestamp: startedAt)
    }

    /// `1..5, 8, 10..12`: a sorted list of seeds as ranges.
    public static func ranges(_ seeds: [UInt64]) -> String {
        var parts: [String] = []
        var i = 0
        let sorted = seeds.sorted()
        while i < sorted.count {
            var j = i
            while j + 1 < sorted.count && sorted[j + 1] == sorted[j] + 1 { j += 1 }
            parts.append(i == j ? "\(sorted[i])" : "\(sorted[i])..\(sorted[j])")
            i = j + 1
        }
        return parts.joined(separator: ", ")
    }
}

/// Text for a Markdown table cell: `|` escaped (it ended the cell), `<` and `>` as entities (a
/// renderer took `<name>` for a tag), line breaks as spaces.
func markdownCell(_ text: String) -> String {
    var out = ""
    for c in text {
        switch c {
        case "|": out += "\\|"
        case "<": out += "&lt;"
        case ">": out += "&gt;"
        case "\n", "\r": out += " "
        default: out.append(c)
        }
    }
    return out
}
