import ERPProduction
import ERPTestSupport
import Foundation
import Testing

/// What a user's mistakes on the command line get: never a lost file, one exit status (1) for
/// every bad command line, a message that says what was wrong. Each case here was found by
/// trying the tool as a new user (2026-12-06).
@Suite(.serialized) struct CommandLineTests {
    private func scratch(_ label: String) throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("erp-cli-\(label)-\(UInt64.random(in: 0...UInt64.max))").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    /// `--out` replaced whatever was at its path: a file (the README, in the trial), a folder of
    /// someone's files. Now only nothing, an empty folder or a folder erp wrote is replaced.
    @Test func outNeverReplacesWhatErpDidNotWrite() async throws {
        let dir = try scratch("out")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let file = dir + "/notes.txt"
        try "mine".write(toFile: file, atomically: true, encoding: .utf8)
        let mine = dir + "/mine"
        try FileManager.default.createDirectory(atPath: mine + "/sub", withIntermediateDirectories: true)
        try "precious".write(toFile: mine + "/precious.txt", atomically: true, encoding: .utf8)

        for (command, target) in [(["run", "scenarios/payment-declines.yaml", "--duration", "2s"], file),
                                  (["run", "scenarios/payment-declines.yaml", "--duration", "2s"], mine),
                                  (["bench", "scenario", "scenarios/payment-declines.yaml", "--duration", "2s"], mine),
                                  // The matrix wrote its table into a stranger's folder (refused before any cell starts).
                                  (["crash-matrix", "--services", "order", "--duration", "3s"], file),
                                  (["crash-matrix", "--services", "order", "--duration", "3s"], mine)] {
            let refused = try await runErp(command + ["--out", target])
            #expect(refused.status == 1, "\(command) --out \(target): \(refused.output)")
            #expect(refused.output.contains("erp replaces only a folder of its own reports"), "\(refused.output)")
        }
        #expect(try String(contentsOfFile: file, encoding: .utf8) == "mine")
        #expect(try String(contentsOfFile: mine + "/precious.txt", encoding: .utf8) == "precious")
        #expect(FileManager.default.fileExists(atPath: mine + "/sub"))
        #expect(!FileManager.default.fileExists(atPath: file + ".partial") && !FileManager.default.fileExists(atPath: mine + ".partial"))

        // A folder erp wrote is replaced: the same run again, into the same folder.
        let report = dir + "/report"
        for _ in 0..<2 {
            let run = try await runErp(["run", "scenarios/payment-declines.yaml", "--duration", "2s", "--out", report])
            #expect(run.status == 0, "\(run.output)")
        }
        #expect(FileManager.default.fileExists(atPath: report + "/.erp-output") && FileManager.default.fileExists(atPath: report + "/summary.json"))
    }

    /// ArgumentParser exits 64 for what it checks itself and for a subcommand's `ValidationError`
    /// (`--mode zqm`, `--rate 0`), while the other refusals exit 1; and a negative number was
    /// read as a missing value. Each bad command line now exits 1 and says what was wrong.
    @Test func everyBadCommandLineExitsOneAndSaysWhatWasWrong() async throws {
        let cases: [([String], String)] = [
            (["run", "scenarios/happy-path.yaml", "--mode", "zqm"], "'zqm' is invalid for '--mode"),
            (["run", "scenarios/happy-path.yaml", "--duration", "-5s"], "--duration must be a positive duration"),
            (["run", "scenarios/happy-path.yaml", "--duration", "1e308s"], "at most 86400s, not '1e308s'"),
            (["run", "scenarios/happy-path.yaml", "--seed", "-1"], "'-1' is invalid for '--seed"),
            (["explore", "scenarios/happy-path.yaml", "--jobs", "-1"], "--jobs must be from 1"),
            (["bench", "e2e", "--rate", "0"], "--rate must be above 0"),
            (["crash-matrix", "--services", ""], "--services: an empty service name"),
            (["run", "scenarios/happy-path.yaml", "--mode", "zmq", "--check-determinism"], "simulation only"),
            (["events", "replay", "reports", "--group", "report"], "give --from N"),
            (["events", "dead-letters", "reports", "--limit", "-3"], "--limit must be at least 1"),
            // Files that cannot be read, in words instead of a Foundation error's dump.
            (["run", "scenarios"], "scenarios: cannot read the file: a folder, not a file"),
            (["run", "scenarios/no-such.yaml"], "cannot read the file: no such file"),
            (["up", "--fixtures", "no-such.json"], "fixtures no-such.json cannot be read: no such file"),
            (["bench", "sim-mesh", "--c-mesh", "/no/such/c_mesh"], "--c-mesh /no/such/c_mesh: no executable there"),
        ]
        // A folder too deep for SQLite's paths: said before the run (a determinism audit's 461-byte
        // --out failed with "SQLite error 14: unable to open database file").
        let folder = try scratch("deep")
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let deep = folder + String(repeating: "/" + String(repeating: "d", count: 100), count: 5) + "/out"
        let extra: [([String], String)] = [
            (["run", "scenarios/happy-path.yaml", "--duration", "2s", "--out", deep], "past SQLite's 512; a folder of at most"),
            (["run", "scenarios/happy-path.yaml", "--stock", "0"], "--stock must be from 1 to 100000"),
        ]
        for (arguments, expected) in cases + extra {
            let result = try await runErp(arguments)
            #expect(result.status == 1, "\(arguments): exit \(result.status): \(result.output)")
            #expect(result.output.contains(expected), "\(arguments): \(result.output)")
            #expect(!result.output.contains("Usage: erp <subcommand>"), "\(arguments): the root's usage under a subcommand's error")
        }
        // A subcommand's own refusal points at its own help.
        let rate = try await runErp(["bench", "e2e", "--rate", "0"])
        #expect(rate.output.contains("See 'erp bench e2e --help'"), "\(rate.output)")
    }

    /// `--log` printed nothing in simulation: the services' transitions went only to the trace
    /// (over ZeroMQ they are the services' log). Now they are log lines too, on virtual time.
    @Test func logPrintsTheServicesTransitionsInSimulation() async throws {
        let dir = try scratch("log")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let run = try await runErp(["run", "scenarios/payment-declines.yaml", "--duration", "2s", "--out", dir + "/run", "--log"])
        #expect(run.status == 0, "\(run.output)")
        let lines = run.output.split(separator: "\n").filter { $0.hasPrefix("[") && $0.contains(" order info order ") && $0.hasSuffix("accepted correlation_id=corr-1") }
        #expect(!lines.isEmpty, "\(run.output.prefix(2_000))")
    }

    /// A reproduce command is pasted into a shell: a scenario path holding a space broke it.
    @Test func theReproduceCommandRunsAsPrinted() async throws {
        let dir = try scratch("quoted")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir + "/my scenarios", withIntermediateDirectories: true)
        let text = try String(contentsOfFile: packageRoot + "/scenarios/payment-declines.yaml", encoding: .utf8)
            .replacingOccurrences(of: "fixtures: fixtures/retail.json", with: "fixtures: \(packageRoot)/fixtures/retail.json")
        try text.write(toFile: dir + "/my scenarios/it's.yaml", atomically: true, encoding: .utf8)
        let first = try await runErp(["run", dir + "/my scenarios/it's.yaml", "--duration", "2s", "--out", dir + "/a"])
        #expect(first.status == 0, "\(first.output)")
        let reproduce = try #require(first.output.split(separator: "\n").first { $0.hasPrefix("reproduce: ") }).dropFirst("reproduce: ".count)
        let shell = Process()
        shell.executableURL = URL(fileURLWithPath: "/bin/sh")
        shell.arguments = ["-c", String(reproduce) + " --out '\(dir)/b'"]
        shell.currentDirectoryURL = URL(fileURLWithPath: packageRoot)
        let pipe = Pipe()
        shell.standardOutput = pipe
        shell.standardError = pipe
        try shell.run()
        let again = String(decoding: await readToEnd(pipe.fileHandleForReading), as: UTF8.self)
        await waitForExit(shell)
        #expect(shell.terminationStatus == 0, "\(reproduce)\n\(again)")
        func hash(_ output: String) -> Substring? { output.split(separator: "\n").first { $0.hasPrefix("trace hash: ") } }
        #expect(hash(first.output) != nil && hash(first.output) == hash(again), "\(reproduce)")
    }

    /// A reader that goes away (`erp run … | head -1`, a CI step that stops reading) ended the
    /// run with SIGPIPE, exit 141, which a pipeline's gate reads as neither pass nor fail; with
    /// SIGPIPE ignored, Foundation's write then trapped. The run finishes, writes its reports and
    /// exits with its verdict.
    @Test func aClosedStandardOutputKeepsTheRunsExitStatus() async throws {
        let dir = try scratch("closed-stdout")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: erpBinary)
        process.arguments = ["run", "scenarios/chaos-mix.yaml", "--defect", "skip-stock-release", "--duration", "3s", "--out", dir + "/run"]
        process.currentDirectoryURL = URL(fileURLWithPath: packageRoot)
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        try pipe.fileHandleForReading.close()   // nobody reads what it prints
        try process.run()
        await waitForExit(process)
        #expect(process.terminationReason == .exit && process.terminationStatus == 2, "\(process.terminationReason) \(process.terminationStatus)")
        #expect(FileManager.default.fileExists(atPath: dir + "/run/summary.json"))
    }

    /// `keys generate --out DIR --replace` wrote the services' keys into DIR but replaced the
    /// device registry's keys (the checked-in `fixtures/device-keys`) in place.
    @Test func keysGenerateOutKeepsEveryKeyUnderItsFolder() async throws {
        let dir = try scratch("keys")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let registry = packageRoot + "/fixtures/device-keys"
        func snapshot() throws -> [String: Data] {
            var files: [String: Data] = [:]
            for name in try FileManager.default.contentsOfDirectory(atPath: registry) { files[name] = FileManager.default.contents(atPath: registry + "/" + name) }
            return files
        }
        let before = try snapshot()
        let made = try await runErp(["keys", "generate", "--out", dir, "--replace"])
        #expect(made.status == 0, "\(made.output)")
        #expect(made.output.contains("device keys in \(dir)/devices"), "\(made.output)")
        #expect(FileManager.default.fileExists(atPath: dir + "/order.key") && FileManager.default.fileExists(atPath: dir + "/devices/device_malmo_01.pub"))
        #expect(try snapshot() == before, "the registry's keys changed")
    }

    /// `keys generate` with fixtures it cannot read (the default `fixtures/retail.json` outside the
    /// project) wrote every service's pair and then failed: half a key folder. Now it reads the
    /// fixtures first and writes nothing.
    @Test func keysGenerateThatCannotFinishWritesNothing() async throws {
        let dir = try scratch("keys-half")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let failed = try await runErp(["keys", "generate", "--out", dir + "/keys", "--fixtures", dir + "/no-such.json"])
        #expect(failed.status == 1, "\(failed.output)")
        #expect(failed.output.contains("fixtures \(dir)/no-such.json cannot be read: no such file"), "\(failed.output)")
        #expect(!FileManager.default.fileExists(atPath: dir + "/keys"), "keys were written before the refusal")
    }

    /// A run whose heal phase ended with orders still pending (a crash opened a breaker whose
    /// 30 s reset outlasted the 20 s heal) counted "73 submitted, 79 accepted": the client's
    /// orders still in its hands were left out of submitted, the offered rate and the reports.
    /// The summary names the breaker still open: the heal phase was shorter than its reset.
    @Test func ordersStillPendingAtTheEndAreCountedAndTheShortHealIsNamed() async throws {
        let dir = try scratch("pending")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try """
            name: short-heal
            seed: 1
            duration: 10s
            heal: 20s
            workload:
              orders: {rate: 10}
            faults:
              - {at: 3s, crash: payment, restartAfter: 1s}
            """.write(toFile: dir + "/short-heal.yaml", atomically: true, encoding: .utf8)
        let run = try await runErp(["run", dir + "/short-heal.yaml", "--out", dir + "/run"])
        #expect(run.status == 3, "\(run.output)")
        #expect(run.output.contains("note: breaker(s) not closed at the end: order->payment (open)"), "\(run.output)")
        // A hand-written heal under the floor the generated schedules keep to is named as such
        // (a scenario author's trial blamed the services for it).
        #expect(run.output.contains("note: the heal phase (20s) is shorter than this scenario's floor (70s: twice the longest breaker reset, plus 10 s)"),
                "\(run.output)")
        let json = try #require(FileManager.default.contents(atPath: dir + "/run/summary.json"))
        let orders = try #require((try JSONSerialization.jsonObject(with: json) as? [String: Any])?["orders"] as? [String: Any])
        let submitted = try #require(orders["submitted"] as? Int), accepted = try #require(orders["accepted"] as? Int)
        let pending = try #require(orders["pending"] as? Int)
        #expect(pending > 0 && submitted >= accepted, "\(orders)")
    }

    /// Found by a reviewer trying the hunting and bench commands (2026-12-06): a run with a
    /// planted defect or another order rate replayed as a different run and "diverged"; the bench
    /// crashed on a run that made no order; `--duration` got around the scenario's 24 h bound.
    @Test func replayRunsTheRunAsItWasAndTheBenchSurvivesNoOrders() async throws {
        let dir = try scratch("replay")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let defect = dir + "/defect"
        let planted = try await runErp(["run", "scenarios/chaos-mix.yaml", "--defect", "skip-stock-release", "--duration", "4s", "--out", defect])
        #expect(planted.status == 2, "\(planted.output)")
        let replayed = try await runErp(["replay", defect])
        #expect(replayed.status == 0 && replayed.output.contains("same trace"), "\(replayed.output)")

        let benched = dir + "/bench"
        let bench = try await runErp(["bench", "scenario", "scenarios/happy-path.yaml", "--rate", "7", "--duration", "3s", "--out", benched])
        #expect(bench.status == 0, "\(bench.output)")
        let summary = try String(contentsOfFile: benched + "/summary.json", encoding: .utf8)
        #expect(summary.contains("--duration 3s --rate 7"), "the report's reproduce command names the bench's options")
        let again = try await runErp(["replay", benched])
        #expect(again.status == 0 && again.output.contains("same trace"), "\(again.output)")

        // No order at all: figures of nothing, not a crash in the printing.
        let none = try await runErp(["bench", "scenario", "scenarios/happy-path.yaml", "--rate", "0.001", "--duration", "3s", "--json"])
        #expect(none.status == 0 && none.output.contains("0 orders, 0 confirmed"), "\(none.output)")

        for command in [["run", "scenarios/happy-path.yaml"], ["bench", "scenario", "scenarios/happy-path.yaml"]] {
            let long = try await runErp(command + ["--duration", "25h"])
            #expect(long.status == 1 && long.output.contains("at most"), "\(command): \(long.output)")
        }
    }

    /// summary.md said nothing of failed expectations, and shrink answered "expectations did not
    /// fail there (failing: )"; a passing swarm seed's reproduce command named a file explore had
    /// deleted with its report.
    @Test func expectationsAndSwarmSeedsAreReportedAsTheyAre() async throws {
        let dir = try scratch("expect")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let scenario = dir + "/expect.yaml"
        var text = try String(contentsOfFile: packageRoot + "/scenarios/happy-path.yaml", encoding: .utf8)
        text = text.replacingOccurrences(of: "minConfirmed: 100", with: "minConfirmed: 100000")
            .replacingOccurrences(of: "fixtures: fixtures/retail.json", with: "fixtures: \(packageRoot)/fixtures/retail.json")
        try text.write(toFile: scenario, atomically: true, encoding: .utf8)
        let report = dir + "/report"
        let run = try await runErp(["run", scenario, "--duration", "2s", "--out", report])
        #expect(run.status == 4, "\(run.output)")
        let markdown = try String(contentsOfFile: report + "/summary.md", encoding: .utf8)
        #expect(markdown.contains("**FAIL**") && markdown.contains("Expectations not met") && markdown.contains("confirmed orders, got"), "\(markdown.prefix(400))")
        let shrink = try await runErp(["shrink", report, "--invariant", "expectations"])
        #expect(shrink.status == 1 && shrink.output.contains("not one that missed an expectation"), "\(shrink.output)")

        let explored = dir + "/explore"
        let explore = try await runErp(["explore", "scenarios/happy-path.yaml", "--swarm", "--seeds", "1..1", "--jobs", "1", "--duration", "2s", "--out", explored])
        #expect(explore.status == 0, "\(explore.output)")
        let exploreSummary = try String(contentsOfFile: explored + "/summary.json", encoding: .utf8)
        #expect(exploreSummary.contains("happy-path.yaml --seeds 1 --keep-passing") && exploreSummary.contains("--swarm"), "\(exploreSummary.prefix(800))")
    }

    /// Ctrl-C on a simulated run ended it silently and left `DIR.partial` behind: it says so, keeps
    /// no half report, and exits 130.
    @Test func ctrlCOnASimulatedRunSaysSoAndKeepsNoHalfReport() async throws {
        let dir = try scratch("interrupt")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let out = dir + "/long"
        // Well into the run (its trace growing), not at its start, before the handler is set.
        let (status, said) = try await interrupt(["run", "scenarios/happy-path.yaml", "--duration", "600s", "--out", out],
                                                 once: out + ".partial/trace.log", holds: 100_000, within: .seconds(60))
        #expect(status == 130, "\(said)")
        #expect(said.contains("interrupted; no report kept"), "\(said)")
        #expect(!FileManager.default.fileExists(atPath: out + ".partial") && !FileManager.default.fileExists(atPath: out))
    }

    /// Ctrl-C during `--check-determinism`'s second run: the second run (a process in a group of
    /// its own) ran on, orphaned, and the first ended with no word; a second interrupt handler in
    /// one process never heard its signal. Both stop, the first run's report stays, exit 130.
    @Test func ctrlCDuringTheSecondRunStopsBoth() async throws {
        let dir = try scratch("interrupt-determinism")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let out = dir + "/run"
        let (status, said) = try await interrupt(["run", "scenarios/happy-path.yaml", "--duration", "300s", "--check-determinism", "--out", out],
                                                 once: out + "/replay.partial/trace.log", holds: 100_000, within: .seconds(180))
        #expect(status == 130, "\(said)")
        #expect(said.contains("the first run's report is kept in \(out); the second run was stopped"), "\(said)")
        #expect(FileManager.default.fileExists(atPath: out + "/summary.json"))
        #expect(!FileManager.default.fileExists(atPath: out + "/replay.partial") && !FileManager.default.fileExists(atPath: out + "/replay"))
    }

    /// The same Ctrl-C when the second run hears it, and ends, before the first run's handler has
    /// begun: the first run said "the second run wrote no trace" and exited 1 (a fresh-clone CI saw
    /// it once; with the child signalled 50 ms before the parent it happened every time).
    @Test func aSecondRunStoppedFirstStillEndsAsInterrupted() async throws {
        let dir = try scratch("interrupt-child-first")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let out = dir + "/run"
        let (status, said) = try await interrupt(["run", "scenarios/happy-path.yaml", "--duration", "300s", "--check-determinism", "--out", out],
                                                 once: out + "/replay.partial/trace.log", holds: 100_000, within: .seconds(180),
                                                 childFirst: true)
        #expect(status == 130, "\(said)")
        #expect(said.contains("the first run's report is kept in \(out); the second run was stopped"), "\(said)")
        #expect(!said.contains("wrote no trace"), "\(said)")
    }

    /// Starts erp with `arguments`, sends it SIGINT once `file` holds `bytes` (its one child first,
    /// 50 ms before, with `childFirst`), and returns its exit status and what it wrote to standard
    /// error.
    private func interrupt(_ arguments: [String], once file: String, holds bytes: Int, within: Duration,
                           childFirst: Bool = false) async throws -> (Int32, String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: erpBinary)
        process.arguments = arguments
        process.currentDirectoryURL = URL(fileURLWithPath: packageRoot)
        let pipe = Pipe()
        process.standardError = pipe
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        func size() -> Int { ((try? FileManager.default.attributesOfItem(atPath: file))?[.size] as? Int) ?? 0 }
        let deadline = ContinuousClock.now + within
        while size() < bytes && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(100)) }
        #expect(size() >= bytes, "\(file) never held \(bytes) bytes")
        if childFirst {
            let second = ProcStat.liveChildren(of: process.processIdentifier)
            #expect(second.count == 1, "children of the first run: \(second)")
            for pid in second { kill(pid, SIGINT) }
            try await Task.sleep(for: .milliseconds(50))
        }
        process.interrupt()
        let said = await readToEnd(pipe.fileHandleForReading)
        await waitForExit(process)
        return (process.terminationStatus, String(decoding: said, as: UTF8.self))
    }

    /// `erp events requeue DIR` beside a running bus said "requeued 1 dead letters" and nothing
    /// was delivered until the bus restarted (its queues live in its memory). While a bus holds
    /// the folder's lock, the directory form of a change is refused and points at --topology.
    @Test func aChangeToARunningBusFolderIsRefused() async throws {
        let dir = try scratch("bus-lock")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let free = try await runErp(["events", "requeue", dir, "--group", "notification"])
        #expect(free.status == 1 && free.output.contains("no bus database"), "\(free.output)")
        #expect(!BusLock.isHeld(in: dir))
        try BusLock.hold(in: dir)   // this process stands in for the bus, until it ends
        #expect(BusLock.isHeld(in: dir))
        #expect(throws: BusLockError.self) { try BusLock.hold(in: dir) }
        for command in [["requeue", dir, "--group", "notification"], ["replay", dir, "--group", "report", "--from", "0"]] {
            let refused = try await runErp(["events"] + command)
            #expect(refused.status == 1 && refused.output.contains("an event bus is running on") && refused.output.contains("--topology"),
                    "\(command): \(refused.output)")
        }
    }
}
