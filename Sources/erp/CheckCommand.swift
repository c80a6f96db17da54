import ArgumentParser
import ERPCore
import ERPProduction
import ERPReports
import ERPScenario
import ERPServices
import Foundation

/// `erp check DIR`: the consistency checker on a stopped system's data folder (`erp up`'s, or a
/// run's `db/`), judged as after a run but with no client's history. A performance checker's
/// trial had to check `erp up`'s databases after a `wrk` load by hand in SQL: every run judged its
/// own databases, and nothing judged a folder.
struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Judge the invariants on the databases of a stopped system (erp up's data folder, a run's db/).",
        discussion: """
            Reads every service's database in the folder, read-only, and judges what `erp run` \
            judges after a run, from the databases alone: stock conserved (each row's initial \
            against --fixtures), every order finished with its payment and stock, no double \
            charge, one confirmation each, every event delivered and applied once, the read models \
            converged. There is no client here, so what a client was told is not judged, nor \
            devices and vends (their clients' records are what those invariants compare with). \
            Stop the system first: a running one has orders in flight, and a folder whose event \
            bus runs is refused. Exit status 0 when every invariant judged holds, 2 when one fails, \
            1 on bad input.
            """)

    @Argument(help: "The data folder (erp up's dataDirectory or --data, or a run's db/ folder).") var directory: String
    @Option(help: ArgumentHelp("The fixtures the services were seeded from (each stock row's initial is judged against them); 'none' to skip that. Default: DIR/fixtures.json, which erp up writes when it seeds new databases, else fixtures/retail.json.", valueName: "file"))
    var fixtures: String?
    @Flag(help: "Print the verdict as one JSON object (invariants, counter-examples) as the last line.") var json = false

    func run() throws {
        func refuse(_ message: String) -> ExitCode {
            FileHandle.standardError.put(Data("erp check: \(message)\n".utf8))
            return ExitCode(ExitStatus.invalidInput)
        }
        let folder = absolutePath(directory)
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: folder, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw refuse("\(directory): no such folder")
        }
        guard let bus = ServiceCatalog.databaseFileName(of: .eventBus), FileManager.default.fileExists(atPath: folder + "/" + bus) else {
            throw refuse("\(directory) holds no event bus database (\(ServiceCatalog.databaseFileName(of: .eventBus) ?? "")): give erp up's data folder or a run's db/")
        }
        guard !BusLock.isHeld(in: folder) else {
            throw refuse("an event bus runs on \(directory): stop the system first (its orders and events in flight are not yet settled)")
        }
        var checker = ConsistencyChecker(databaseDirectory: folder, history: [])
        let fixtures = seededFixtures(in: folder, given: self.fixtures)
        if fixtures != "none" { checker.fixtures = try loadFixtures(fixtures) }
        var summary = RunSummary(scenario: "check " + directory, seed: 0, mode: "check", reproduce: "", chaos: .zero, heal: .zero)
        do { try checker.check(into: &summary) } catch { throw refuse("\(directory): \(error)") }
        // Without a client's history it would pass for want of anything to compare.
        summary.invariants.removeValue(forKey: "client-outcome-matches-order")

        print("databases in \(folder)" + (fixtures == "none" ? "" : ", seeded from \(fixtures)"))
        if summary.databasesDamaged {
            print("orders: \(RunSummary.notJudgedForDamage)")
        } else {
            print("orders: \(summary.orders.accepted) taken, \(summary.orders.confirmed) confirmed, \(summary.orders.cancelled) cancelled, \(summary.orders.pending) pending")
        }
        print("not judged here: client-outcome-matches-order (no client), device and vend invariants (no device or vending client)"
              + (fixtures == "none" ? ", stock rows' initial (--fixtures none)" : ""))
        for name in summary.invariants.keys.sorted() { print("  \(summary.invariants[name]! == .pass ? "pass" : "FAIL")  \(name)") }
        // Stopped while orders or events were in flight: the other failures may be theirs (an
        // order confirmed whose OrderConfirmed inventory has not applied yet).
        let unsettled = ["every-accepted-order-terminal-after-heal", "every-event-delivered-after-heal"].filter { summary.invariants[$0] == .fail }
        if !unsettled.isEmpty {
            // A run's db/ folder (its summary.json beside it) is not restarted with erp up: its
            // heal phase ended with the work still in flight.
            let ofARun = FileManager.default.fileExists(atPath: URL(fileURLWithPath: folder).deletingLastPathComponent().path + "/summary.json")
            print("  note: the system stopped with work in flight (\(unsettled.joined(separator: ", ")) failed), and the invariants that follow from it fail with it: "
                  + (ofARun ? "the run's heal phase ended before its work did (its report says the same)"
                            : "start it again on this folder (erp up --data \(directory)), give it a few seconds, stop it and check again; a failure that stays is real"))
        }
        for name in summary.failedInvariants {
            let examples = summary.counterExamples(of: name)
            for example in examples.prefix(3) { print("  counter-example [\(name)]: \(example)") }
            let count = summary.violationCounts?[name] ?? examples.count
            if count > 3 { print("  … \(count - 3) more for \(name)") }
        }
        if json {
            var examples: [String: [String]] = [:]
            for name in summary.failedInvariants { examples[name] = summary.counterExamples(of: name) }
            printJSON(["check": folder, "invariants": summary.invariants.mapValues { $0 == .pass ? "pass" : "fail" },
                       "counter_examples": examples, "violation_counts": summary.violationCounts ?? [:],
                       "orders": ["taken": summary.orders.accepted, "confirmed": summary.orders.confirmed,
                                  "cancelled": summary.orders.cancelled, "pending": summary.orders.pending]])
        }
        if !summary.invariantsPass { throw ExitCode(ExitStatus.consistency) }
    }
}
