import ERPReports
import ERPScenario
import ERPServices
import ERPTestSupport
import Foundation
import Testing

/// `erp explore` over worker processes: a planted defect is found in the seeds it breaks, with
/// the invariant that caught it and a reproduce command; passing seeds leave no report, failing
/// ones keep theirs; the summary, its JUnit file and the exit status say so. Bad arguments name
/// themselves and exit 1.
@Suite(.serialized) struct ExploreTests {
    @Test func findsAPlantedDefectAndKeepsOnlyTheFailingReports() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("erp-explore-\(UInt64.random(in: 0...UInt64.max))").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // Half the payments declined and the stock release skipped: every seed keeps stock it
        // should have released.
        let scenario = dir + "/defect.yaml"
        try """
            name: defect
            duration: 3s
            heal: 6s
            fixtures: \(packageRoot)/fixtures/retail.json
            workload:
              orders: {rate: 10}
            payment: {declineRate: 0.5}
            defects: [skip-stock-release]
            """.write(toFile: scenario, atomically: true, encoding: .utf8)
        let control = dir + "/control.yaml"
        try String(contentsOfFile: scenario, encoding: .utf8).replacingOccurrences(of: "defects: [skip-stock-release]", with: "")
            .replacingOccurrences(of: "name: defect", with: "name: control").write(toFile: control, atomically: true, encoding: .utf8)
        let out = dir + "/explore"
        let result = try await runErp(["explore", scenario, control, "--seeds", "1..3", "--jobs", "2", "--out", out])
        #expect(result.status == 2, "\(result.output)")
        let summary = try JSONDecoder().decode(ExploreSummary.self, from: Data(contentsOf: URL(fileURLWithPath: out + "/summary.json")))
        #expect(summary.version == ExploreSummary.currentVersion)
        #expect(summary.seeds.count == 6 && summary.notRun.isEmpty && !summary.interrupted)
        let defect = try #require(summary.scenarios.first { $0.scenario == "defect" })
        #expect(defect.failingSeeds == [1, 2, 3])
        #expect(defect.failuresByInvariant["confirmed-order-stock-taken-cancelled-order-stock-released"] == 3)
        #expect(summary.scenarios.first { $0.scenario == "control" }?.failingSeeds == [])
        for failure in summary.failures {
            #expect(failure.reproduce.hasSuffix("--seed \(failure.seed)"))
            #expect(FileManager.default.fileExists(atPath: out + "/runs/defect/seed-\(failure.seed)/summary.json"))
        }
        #expect(!FileManager.default.fileExists(atPath: out + "/runs/control/seed-1"), "a passing seed's report is not kept")
        let junit = try String(contentsOfFile: out + "/junit.xml", encoding: .utf8)
        #expect(junit.contains(#"tests="6" failures="3""#))
        #expect(result.output.contains("defect: 3 seeds, 3 failing"))
    }

    @Test(arguments: [
        (["--seeds", "5..1"], "--seeds: 5..1 is an empty range"),
        (["--seeds", "a..b"], "'a..b' is neither"),
        (["--jobs", "0"], "--jobs must be from 1 to 256"),
        (["--time", "soon"], "--time must be a duration"),
        (["--mix"], "--mix draws swarm schedules: give --swarm too"),
        (["--swarm", "--mix-from", "scenarios/chaos-mix.yaml"], "--mix-from names where --mix draws from"),
        (["--swarm", "--mix", "--mix-from", "scenarios/chaos-mix.yaml,scenarios/nope.yaml"], "no scenario file scenarios/nope.yaml"),
        (["--swarm", "--mix", "--mix-from", "scenarios/power-loss.yaml", "--mode", "zmq"], "is one only the simulator can cause"),
        // Passed to every seed's run, which refused it: each seed was counted a failing one.
        (["--duration", "25h"], "--duration must be at most 86400s, as in a scenario file, not '25h'"),
        // Two files of one name shared runs/<name>/ and one line of the summary (2026-12-06).
        (["scenarios/happy-path.yaml"], "scenarios/happy-path.yaml is given twice"),
        (["./scenarios/happy-path.yaml"], "scenarios/happy-path.yaml and ./scenarios/happy-path.yaml are both named 'happy-path'"),
        // An unknown option's value was taken for a scenario file: "no scenario file 1".
        (["--workers", "1"], "Unknown option '--workers'"),
    ])
    func badArgumentsNameThemselves(arguments: [String], message: String) async throws {
        let result = try await runErp(["explore", "scenarios/happy-path.yaml"] + arguments)
        #expect(result.status == 1)
        #expect(result.output.contains(message), "\(result.output)")
    }

    /// A seed whose run could not be judged is a run error, not a broken invariant: a CI
    /// integrator's pipeline read exit 2 and "failures" for a setup problem. Exit 1, a JUnit
    /// `<error>` with the run's own words, and the seeds not run as a skipped case.
    @Test func aRunThatCannotRunIsAnErrorNotAFailure() async throws {
        let out = scratchDirectory("explore-run-error")
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: out) }
        try "name: no-fixtures\nduration: 2s\nheal: 5s\nfixtures: /no/such/retail.json\n".write(toFile: out + "/s.yaml", atomically: true, encoding: .utf8)
        let result = try await runErp(["explore", out + "/s.yaml", "--seeds", "1..2", "--jobs", "1", "--out", out + "/x"])
        #expect(result.status == 1, "\(result.output)")
        let junit = try String(contentsOfFile: out + "/x/junit.xml", encoding: .utf8)
        #expect(junit.contains(#"failures="0" errors="2""#), "\(junit)")
        #expect(junit.contains(#"<error message="the run could not be judged (exit 1): erp: "#) && junit.contains("fixtures /no/such/retail.json cannot be read"), "\(junit)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/x/summary.json"))) as? [String: Any])
        let seeds = try #require(json["seeds"] as? [[String: Any]])
        #expect(seeds.allSatisfy { ($0["error"] as? String)?.contains("cannot be read") == true }, "\(seeds)")
    }

    /// A run killed by a signal (SIGILL is what every Swift trap raises) is a run error that says
    /// so, not an exit status: Foundation reports the signal's number as the status, so a trap
    /// read as exit 4 ("only expectations failed"), explore exited 4, and its `report` named a
    /// folder never made (a reliability reviewer's trial).
    /// (`Process.shellStatus`; the signal a trap raises reads 128 + 4.)
    @Test func aRunKilledByASignalIsARunErrorThatSaysSo() async throws {
        let out = scratchDirectory("explore-killed")
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: out) }
        async let explored = runErp(["explore", "scenarios/happy-path.yaml", "--seeds", "1", "--jobs", "1", "--duration", "600s", "--out", out + "/x"])
        // The seed's run, once it has started, killed by a signal (SIGKILL: a SIGILL sent from
        // outside is caught by Swift's backtracer, which prints and lets the run go on).
        var killed = false
        for _ in 0..<600 where !killed {
            try await Task.sleep(for: .milliseconds(100))
            let pgrep = Process()
            pgrep.executableURL = URL(fileURLWithPath: "/usr/bin/pkill")
            pgrep.arguments = ["-KILL", "-f", "--", "run .*--out \(out)/x/runs"]
            try pgrep.run()
            await waitForExit(pgrep)
            killed = pgrep.terminationStatus == 0
        }
        let result = try await explored
        #expect(killed, "the run was never seen to kill")
        #expect(result.status == 1, "\(result.output)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/x/summary.json"))) as? [String: Any])
        let seed = try #require((json["seeds"] as? [[String: Any]])?.first)
        #expect(seed["exitStatus"] as? Int == 137, "\(seed)")
        #expect((seed["error"] as? String)?.hasSuffix("the run was killed by SIGKILL") == true, "\(seed)")
        if let report = seed["report"] as? String { #expect(FileManager.default.fileExists(atPath: report), "\(report)") }
        let junit = try String(contentsOfFile: out + "/x/junit.xml", encoding: .utf8)
        #expect(junit.contains(#"failures="0" errors="1""#) && junit.contains("killed by SIGKILL"), "\(junit)")
    }

    /// An exploration killed outright (SIGKILL: a CI's timeout, no chance to stop its workers)
    /// leaves no run behind: each seed's `erp run` sees its parent gone and stops as on Ctrl-C,
    /// keeping no report (they ran on, adopted by init, and wrote reports no one would read: a
    /// CI integrator's trial).
    @Test func aKilledExplorationLeavesNoRunBehind() async throws {
        let out = scratchDirectory("explore-orphans")
        defer { try? FileManager.default.removeItem(atPath: out) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: erpBinary)
        process.arguments = ["explore", "scenarios/happy-path.yaml", "--seeds", "1", "--jobs", "1", "--duration", "600s", "--out", out]
        process.currentDirectoryURL = URL(fileURLWithPath: packageRoot)
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        func workers() async throws -> Int32 {
            let pgrep = Process()
            pgrep.executableURL = URL(fileURLWithPath: "/usr/bin/pgrep")
            pgrep.arguments = ["-f", "--", "run .*--out \(out)/runs"]
            pgrep.standardOutput = FileHandle.nullDevice
            try pgrep.run()
            await waitForExit(pgrep)
            return pgrep.terminationStatus   // 0: some process matched
        }
        var started = false
        for _ in 0..<600 where !started {
            try await Task.sleep(for: .milliseconds(100))
            started = try await workers() == 0
        }
        #expect(started, "the seed's run was never seen")
        kill(process.processIdentifier, SIGKILL)
        var gone = false
        for _ in 0..<100 where !gone {
            try await Task.sleep(for: .milliseconds(100))
            gone = try await workers() == 1
        }
        #expect(gone, "the seed's run outlived its exploration by 10 s")
        let left = (try? FileManager.default.contentsOfDirectory(atPath: out + "/runs/happy-path")) ?? []
        #expect(!left.contains("seed-1"), "the orphaned run wrote its report: \(left)")
    }

    /// `erp replay` and `erp shrink` given an exploration's folder: a decoder's dump
    /// ("DecodingError.keyNotFound…") from replay; now both say what to give instead.
    @Test func replayAndShrinkNameAnExplorationsFolder() async throws {
        let out = scratchDirectory("explore-as-run")
        defer { try? FileManager.default.removeItem(atPath: out) }
        let explored = try await runErp(["explore", "scenarios/happy-path.yaml", "--seeds", "1", "--duration", "1s", "--out", out])
        #expect(explored.status == 0, "\(explored.output)")
        for command in ["replay", "shrink"] {
            let result = try await runErp([command, out])
            #expect(result.status == 1, "\(command): \(result.output)")
            #expect(result.output.contains("\(out) is an exploration's folder, not a run's: give one of its runs, such as \(out)/runs/<scenario>/seed-<N>"),
                    "\(command): \(result.output)")
        }
    }

    @Test func aMissingScenarioIsNamed() async throws {
        let result = try await runErp(["explore", "scenarios/nope.yaml"])
        #expect(result.status == 1 && result.output.contains("no scenario file scenarios/nope.yaml"))
    }

    /// Every planted defect, planted in every run of a library scenario, is found by `erp explore`
    /// in the first seed it runs, by the invariant that guards against it. (Stated bound: one seed.)
    static let defectCases = [
        ("skip-stock-release", "payment-declines", "confirmed-order-stock-taken-cancelled-order-stock-released"),
        ("confirm-declined-payments", "payment-declines", "confirmed-order-has-exactly-one-captured-payment"),
        ("ignore-payment-idempotency", "happy-path", "confirmed-order-has-exactly-one-captured-payment"),
        ("skip-inbox", "happy-path", "one-confirmation-per-confirmed-order"),
        ("apply-stale-device-status", "iot-partition", "device-status-converges"),
        ("skip-report-rebuild", "report-rebuild", "report-converges"),
        ("charge-list-price", "campaign-outage", "order-charged-its-priced-total"),
        ("refund-skips-provider", "payment-blackout", "cancelled-order-has-no-net-charge"),
        ("sell-twice", "restock-race", "stock-conservation"),
        ("skip-silence-watch", "iot-partition", "device-status-converges"),
    ]

    @Test(arguments: defectCases)
    func exploreFindsEachPlantedDefect(defect: String, scenario: String, invariant: String) async throws {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("erp-explore-\(defect)-\(UInt64.random(in: 0...UInt64.max))").path
        defer { try? FileManager.default.removeItem(atPath: out) }
        let result = try await runErp(["explore", "scenarios/\(scenario).yaml", "--seeds", "1", "--defect", defect, "--out", out])
        #expect(result.status == 2, "\(result.output)")
        let summary = try JSONDecoder().decode(ExploreSummary.self, from: Data(contentsOf: URL(fileURLWithPath: out + "/summary.json")))
        #expect(summary.scenarios.first?.failuresByInvariant[invariant] == 1, "\(defect) on \(scenario): \(summary.scenarios.first?.failuresByInvariant ?? [:])")
        #expect(summary.failures.first?.reproduce.contains("--defect \(defect)") == true)
    }

    /// Every planted defect has its case above (a new defect cannot go unproven).
    @Test func everyDefectHasAnExploreCase() {
        #expect(Set(Self.defectCases.map(\.0)) == Set(PlantedDefects.names))
    }

    /// Swarm: each seed draws its own schedule from the scenario's vocabulary, the same one for the
    /// same seed in any process, and a failing seed's drawn file reproduces the failure.
    @Test func swarmDrawsItsOwnScheduleAndItsFileReproduces() async throws {
        let base = try library("chaos-mix")
        let a = ScenarioWriter.yaml(Swarm.draw(from: base, seed: 4)), b = ScenarioWriter.yaml(Swarm.draw(from: base, seed: 4))
        #expect(a == b)
        #expect(a != ScenarioWriter.yaml(Swarm.draw(from: base, seed: 5)))
        let drawn = Swarm.draw(from: base, seed: 4)
        #expect(drawn.seed == 4, "the drawn file run without --seed runs the seed it was drawn for")
        #expect((1...max(2, 2 * base.faults.count)).contains(drawn.faults.count))
        #expect(drawn.faults.allSatisfy { $0.at < base.duration })
        // Long enough a heal for a breaker opened at the chaos phase's end to half-open.
        #expect(drawn.heal >= base.resilience.defaultPolicy.circuitBreaker.resetTimeout + .seconds(10))

        let out = FileManager.default.temporaryDirectory.appendingPathComponent("erp-swarm-\(UInt64.random(in: 0...UInt64.max))").path
        defer { try? FileManager.default.removeItem(atPath: out) }
        let result = try await runErp(["explore", "scenarios/payment-declines.yaml", "--swarm", "--seeds", "1..2", "--defect", "skip-stock-release",
                                       "--out", out])
        #expect(result.status == 2, "\(result.output)")
        let summary = try JSONDecoder().decode(ExploreSummary.self, from: Data(contentsOf: URL(fileURLWithPath: out + "/summary.json")))
        let failure = try #require(summary.failures.first)
        #expect(failure.reproduce.contains("runs/payment-declines/seed-\(failure.seed).yaml"))
        #expect(summary.experiment == ExploreSummary.Experiment(swarm: true, defects: ["skip-stock-release"]))
        #expect(failure.counterExamples.first?.hasPrefix("confirmed-order-stock-taken-cancelled-order-stock-released: cancelled order ") == true,
                "\(failure.counterExamples)")
        let junit = try String(contentsOfFile: out + "/junit.xml", encoding: .utf8)
        #expect(junit.contains(#"classname="payment-declines.simulation.swarm.defect-skip-stock-release""#), "\(junit)")
        let file = out + "/runs/payment-declines/seed-\(failure.seed).yaml"
        let again = try await runErp(["run", file, "--seed", "\(failure.seed)", "--defect", "skip-stock-release", "--out", out + "/again"])
        #expect(again.status == 2 && again.output.contains("FAIL  confirmed-order-stock-taken-cancelled-order-stock-released"), "\(again.output)")
    }

    /// Swarm --mix: each seed draws from the fault kinds of the whole library (a part of them per
    /// seed) over its own scenario's workload; the vocabulary does not depend on the order the
    /// scenarios came in, the draw is the same for the same seed, seeds mix kinds that no one
    /// scenario schedules together, and every drawn schedule is one the loader accepts.
    @Test func swarmMixDrawsFromTheWholeLibrarysVocabulary() throws {
        let names = try FileManager.default.contentsOfDirectory(atPath: packageRoot + "/scenarios")
            .filter { $0.hasSuffix(".yaml") }.sorted().map { String($0.dropLast(5)) }
        let scenarios = try names.map { try library($0) }
        let vocabulary = Swarm.vocabulary(of: scenarios)
        #expect(vocabulary.map(\.summaryText) == Swarm.vocabulary(of: scenarios.reversed()).map(\.summaryText))
        let libraryKinds = Set(scenarios.flatMap { $0.faults.map(\.kind.kindName) })
        #expect(Set(vocabulary.map(\.kindName)) == libraryKinds)
        // Kinds some scenario schedules together (a drawn pair of them is nothing new).
        let together = Set(scenarios.flatMap { s in s.faults.flatMap { a in s.faults.map { "\(a.kind.kindName)+\($0.kind.kindName)" } } })
        let base = try library("device-storm")
        var novel = 0, kindsSeen = Set<String>()
        for seed: UInt64 in 1...60 {
            let drawn = Swarm.draw(from: base, seed: seed, vocabulary: vocabulary)
            let yaml = ScenarioWriter.yaml(drawn)
            #expect(yaml == ScenarioWriter.yaml(Swarm.draw(from: base, seed: seed, vocabulary: vocabulary)))
            #expect((2...8).contains(drawn.faults.count))
            #expect(drawn.devices.enabled && drawn.devices.extraPerShop == base.devices.extraPerShop, "the base scenario's workload stays")
            let kinds = Set(drawn.faults.map(\.kind.kindName))
            #expect(kinds.isSubset(of: libraryKinds))
            kindsSeen.formUnion(kinds)
            if kinds.contains(where: { a in kinds.contains { b in a != b && !together.contains("\(a)+\(b)") } }) { novel += 1 }
            let again = try ScenarioLoader.parse(yaml)
            #expect(again.faults.map(\.kind) == drawn.faults.map(\.kind), "seed \(seed): the drawn file reads back")
        }
        #expect(novel >= 30, "only \(novel) of 60 seeds mixed kinds no scenario schedules together")
        // The same seed over another scenario draws a schedule of its own.
        let other = try library("chaos-mix")
        let schedules = (UInt64(1)...10).map { seed in
            (Swarm.draw(from: base, seed: seed, vocabulary: vocabulary).faults.map(\.kind.summaryText),
             Swarm.draw(from: other, seed: seed, vocabulary: vocabulary).faults.map(\.kind.summaryText))
        }
        #expect(schedules.filter { $0.0 == $0.1 }.count <= 1, "seeds draw the same faults over different scenarios")
        #expect(kindsSeen == libraryKinds, "60 seeds drew only \(kindsSeen.sorted())")
        // Without --mix the scenario's own draw is unchanged by the new parameter.
        #expect(ScenarioWriter.yaml(Swarm.draw(from: base, seed: 4)) == ScenarioWriter.yaml(Swarm.draw(from: base, seed: 4, vocabulary: nil)))
    }

    /// `--mix-from` names the files a --mix run draws from: happy-path's workload with only
    /// skewed-clocks' kind of fault, written in the seed's file.
    @Test func mixFromDrawsFromTheFilesItNames() async throws {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("erp-mix-from-\(UInt64.random(in: 0...UInt64.max))").path
        defer { try? FileManager.default.removeItem(atPath: out) }
        let result = try await runErp(["explore", "scenarios/happy-path.yaml", "--swarm", "--mix", "--mix-from", "scenarios/skewed-clocks.yaml",
                                       "--seeds", "3", "--keep-passing", "--out", out])
        #expect(result.status == 0, "\(result.output)")
        #expect(result.output.contains("mixing 1 fault kind(s) (3 templates) from 1 scenario file(s): clockSkew"), "\(result.output)")
        let drawn = try ScenarioLoader.load(path: out + "/runs/happy-path/seed-3.yaml")
        #expect(!drawn.faults.isEmpty && drawn.faults.allSatisfy { $0.kind.kindName == "clockSkew" }, "\(drawn.faults.map(\.kind.summaryText))")
        #expect(drawn.name == "happy-path-mix")
    }

    /// Ctrl-C: the seeds that finished keep their results, the runs it stopped leave nothing
    /// behind, and the output says which --seeds resume the rest; exit 130.
    @Test func anInterruptedExploreSaysHowToResume() async throws {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("erp-explore-int-\(UInt64.random(in: 0...UInt64.max))").path
        defer { try? FileManager.default.removeItem(atPath: out) }
        let (status, output) = try await HeavyWork.shared.run { () async throws -> (Int32, String) in
            let log = out + ".log"
            FileManager.default.createFile(atPath: log, contents: nil)
            defer { try? FileManager.default.removeItem(atPath: log) }
            let process = Process()
            process.executableURL = URL(fileURLWithPath: erpBinary)
            process.arguments = ["explore", "scenarios/happy-path.yaml", "--seeds", "1..20", "--jobs", "1", "--out", out,
                                 "--swarm", "--mix", "--mix-from", "scenarios/power-loss.yaml,scenarios/skewed-clocks.yaml"]
            process.currentDirectoryURL = URL(fileURLWithPath: packageRoot)
            process.standardOutput = FileHandle(forWritingAtPath: log)
            process.standardError = process.standardOutput
            try process.run()
            // Interrupt once two seeds have finished (without a terminal it prints every 10 %).
            var waited = 0
            while !(String(decoding: FileManager.default.contents(atPath: log) ?? Data(), as: UTF8.self).contains("2/20 seeds")) && waited < 600 {
                try await Task.sleep(for: .milliseconds(100))
                waited += 1
            }
            process.interrupt()
            await waitForExit(process)
            return (process.terminationStatus, String(decoding: FileManager.default.contents(atPath: log) ?? Data(), as: UTF8.self))
        }
        #expect(status == 130, "\(output)")
        let summary = try JSONDecoder().decode(ExploreSummary.self, from: Data(contentsOf: URL(fileURLWithPath: out + "/summary.json")))
        #expect(summary.interrupted && summary.seeds.count >= 2 && summary.seeds.count < 20)
        let rest = try #require(summary.notRun["happy-path"])
        // The same experiment: the resume command repeats the options that drew the schedules.
        #expect(output.contains("erp explore scenarios/happy-path.yaml --seeds \(rest.replacingOccurrences(of: " ", with: "")) --swarm --mix"
                                + " --mix-from scenarios/power-loss.yaml,scenarios/skewed-clocks.yaml"), "\(output)")
        let left = (try? FileManager.default.contentsOfDirectory(atPath: out + "/runs/happy-path")) ?? []
        #expect(left.isEmpty, "the stopped run left \(left)")
    }

    /// Three defects planted in real processes (`erp run --mode zmq --defect`, which hands the
    /// defect to every `erp serve`) are caught by the same invariants as in simulation.
    @Test(.tags(.zeromq), arguments: [
        ("skip-stock-release", "payment-declines", "confirmed-order-stock-taken-cancelled-order-stock-released"),
        ("confirm-declined-payments", "payment-declines", "confirmed-order-has-exactly-one-captured-payment"),
        ("charge-list-price", "campaign-outage", "order-charged-its-priced-total"),
    ])
    func defectsAreCaughtOverZeroMQ(defect: String, scenario: String, invariant: String) async throws {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("erp-zmq-defect-\(UInt64.random(in: 0...UInt64.max))").path
        defer { try? FileManager.default.removeItem(atPath: out) }
        let result = try await runErp(["run", "scenarios/\(scenario).yaml", "--mode", "zmq", "--duration", "4s", "--defect", defect, "--out", out])
        #expect(result.status == 2, "\(result.output)")
        #expect(result.output.contains("FAIL  \(invariant)"), "\(result.output)")
        let log = String(decoding: FileManager.default.contents(atPath: out + "/logs/order.log") ?? Data(), as: UTF8.self)
        #expect(log.contains("planted defects: \(defect)"), "the services were started with the defect")
        // The command that reproduces it names the seed, which draws the workload (it was left out).
        let summary = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/summary.json"))) as? [String: Any])
        let seed = try #require(summary["seed"] as? Int)
        #expect((summary["reproduce"] as? String)?.hasSuffix("--mode zmq --seed \(seed)") == true, "\(summary["reproduce"] ?? "")")
    }
}

/// A release build made while `erp explore` ran replaced the binary its workers start from: 193
/// of 2,400 seeds "failed" with an empty log (2026-12-06). Explore now stops starting seeds when
/// its binary changes, says why, and offers the rest as a resume command; no seed is counted.
@Suite(.serialized) struct ExploreRebuiltBinaryTests {
    @Test func aChangedBinaryStopsTheRunInsteadOfFailingItsSeeds() async throws {
        let dir = scratchDirectory("explore-rebuilt")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // A copy of its own, so that touching it disturbs no other test.
        let copy = dir + "/erp"
        try FileManager.default.copyItem(atPath: erpBinary, toPath: copy)
        let (status, output) = try await HeavyWork.shared.run { () async throws -> (Int32, String) in
            let log = dir + "/explore.log"
            FileManager.default.createFile(atPath: log, contents: nil)
            let process = Process()
            process.executableURL = URL(fileURLWithPath: copy)
            process.arguments = ["explore", "scenarios/happy-path.yaml", "--seeds", "1..300", "--jobs", "1", "--duration", "2s", "--out", dir + "/out"]
            process.currentDirectoryURL = URL(fileURLWithPath: packageRoot)
            process.standardOutput = FileHandle(forWritingAtPath: log)
            process.standardError = process.standardOutput
            try process.run()
            try await Task.sleep(for: .seconds(3))
            try FileManager.default.setAttributes([.modificationDate: Date().addingTimeInterval(60)], ofItemAtPath: copy)
            let deadline = ContinuousClock.now + .seconds(120)
            while process.isRunning && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(200)) }
            if process.isRunning { process.terminate() }
            await waitForExit(process)
            return (process.terminationStatus, String(decoding: FileManager.default.contents(atPath: log) ?? Data(), as: UTF8.self))
        }
        #expect(output.contains("the erp binary changed under the run (rebuilt?), so no more seeds were started"), "\(output)")
        // The resume command starts with the binary as it was invoked, so it runs as printed.
        #expect(output.contains("to run the rest: \(copy) explore scenarios/happy-path.yaml --seeds"), "\(output)")
        #expect(output.contains(", 0 failing,"), "\(output)")
        #expect(status == 0, "\(output)")
    }
}
