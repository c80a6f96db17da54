import ERPReports
import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import Testing

/// junit.xml must be read by a JUnit parser: well-formed XML, one case per invariant, the failures
/// and skips counted, counter-examples and the reproduce command in the failure, text escaped.
@Suite struct JUnitReportTests {
    /// What an XML parser finds: the suite's counts and each case's outcome.
    final class Reader: NSObject, XMLParserDelegate {
        var counts: [String: String] = [:]
        var cases: [(name: String, outcome: String)] = []
        var failureText = ""
        private var inFailure = false
        func parser(_ parser: XMLParser, didStartElement element: String, namespaceURI: String?, qualifiedName: String?,
                    attributes: [String: String] = [:]) {
            switch element {
            case "testsuite": counts = attributes
            case "testcase": cases.append((attributes["name"] ?? "?", "pass"))
            case "failure": cases[cases.count - 1].outcome = "fail"; inFailure = true
            case "skipped": cases[cases.count - 1].outcome = "skipped"
            default: break
            }
        }
        func parser(_ parser: XMLParser, foundCharacters string: String) { if inFailure { failureText += string } }
        func parser(_ parser: XMLParser, didEndElement element: String, namespaceURI: String?, qualifiedName: String?) {
            if element == "failure" { inFailure = false }
        }
    }

    @Test func aRunIsASuiteAJUnitParserReads() throws {
        var summary = RunSummary(scenario: "s<1>", seed: 7, mode: "simulation", reproduce: "erp run s.yaml --seed 7 && echo \"ok\"",
                                 chaos: .seconds(1), heal: .seconds(1))
        summary.invariants = ["a": .pass, "b": .fail]
        summary.violations = [.init(invariant: "b", example: "order <x> & \u{1} 'y'")]
        summary.expectationFailures = ["at least 5 confirmed orders, got 2"]
        let xml = JUnitReport.xml(suite: "s", cases: JUnitReport.cases(of: summary, invariantNames: ["a", "b", "c"]), seconds: 1.5)
        let reader = Reader()
        let parser = XMLParser(data: Data(xml.utf8))
        parser.delegate = reader
        #expect(parser.parse(), "not well-formed: \(parser.parserError.map { "\($0)" } ?? "")\n\(xml)")
        #expect(reader.cases.map(\.name) == ["a", "b", "c", "expectations"])
        #expect(reader.cases.map(\.outcome) == ["pass", "fail", "skipped", "fail"])
        #expect(reader.counts["tests"] == "4" && reader.counts["failures"] == "2" && reader.counts["skipped"] == "1")
        #expect(reader.failureText.contains("order <x> &  'y'"))
        #expect(reader.failureText.contains("reproduce: erp run s.yaml --seed 7"))
        #expect(!xml.contains("<testsuites name=\"erp\" tests=\"4\" failures=\"2\" errors=\"0\" skipped"),
                "Ant's JUnit schema allows `skipped` on <testsuite> only")
    }

    /// An exploration's JUnit file (a CI integrator's trial): a swarm or defect seed is another test
    /// than the plain seed of the same number (its class name says so), a failure names every
    /// invariant it broke with a counter-example each and the report folder, and seeds left by
    /// an interruption are an error, not a skip that a gate reading only the JUnit file passes.
    @Test func anExplorationsCasesSayWhatRanAndWhatBroke() throws {
        var failing = ExploreSummary.Seed(scenario: "order-crash", seed: 3, exitStatus: 2, failedInvariants: ["a", "b"], expectationFailures: [],
                                          wallSeconds: 1, traceHash: "h", reproduce: "erp run x.yaml --seed 3", report: "/r/seed-3")
        failing.counterExamples = ["a: order o1 holds stock", "b: order o2 charged twice"]
        let passing = ExploreSummary.Seed(scenario: "order-crash", seed: 4, exitStatus: 0, failedInvariants: [], expectationFailures: [],
                                          wallSeconds: 1, traceHash: "h", reproduce: "", report: nil)
        let experiment = ExploreSummary.Experiment(swarm: true, mix: true, defects: ["skip-stock-release"], duration: "10s")
        let interrupted = ExploreSummary(mode: "simulation", experiment: experiment, seeds: [failing, passing], notRun: ["order-crash": "5..9"],
                                         interrupted: true, wallSeconds: 2)
        let xml = interrupted.junit(startedAt: Date(timeIntervalSince1970: 1_796_000_000))
        let reader = Reader()
        let parser = XMLParser(data: Data(xml.utf8))
        parser.delegate = reader
        #expect(parser.parse(), "\(xml)")
        #expect(xml.contains(#"classname="order-crash.simulation.swarm-mix.defect-skip-stock-release.duration-10s""#), "\(xml)")
        #expect(xml.contains(#"<testsuite name="erp explore (simulation, swarm --mix, defect skip-stock-release, duration 10s)""#), "\(xml)")
        #expect(xml.contains(#"timestamp="2026-11-30T"#), "\(xml)")
        #expect(xml.contains(#"<failure message="a; b" type="invariant">"#), "\(xml)")
        #expect(reader.failureText.contains("- a: order o1 holds stock\n- b: order o2 charged twice"), "\(reader.failureText)")
        #expect(reader.failureText.contains("report: /r/seed-3"))
        #expect(xml.contains(#"<error message="not run: the exploration was interrupted""#) && reader.counts["errors"] == "1", "\(xml)")
        // The time budget spent: the seeds not run are skipped, as --time asks.
        let timedOut = ExploreSummary(mode: "simulation", seeds: [passing], notRun: ["order-crash": "5..9"], interrupted: false, wallSeconds: 2)
        let plain = timedOut.junit()
        #expect(plain.contains(#"classname="order-crash.simulation" time"#) && plain.contains("<skipped message=\"not run: the time budget"), "\(plain)")
        #expect(plain.contains(#"errors="0" skipped="1""#), "\(plain)")
    }
}

/// Which finding decides `erp run`'s exit status, and what the summary says about a liveness
/// failure behind an open breaker (a scenario author's trial: exit 3 though an invariant also
/// failed, and nothing pointed at the breaker).
@Suite struct RunVerdictTests {
    @Test func aBrokenInvariantOutranksLivenessAndAnOpenBreakerIsNamed() {
        var summary = RunSummary(scenario: "s", seed: 1, mode: "simulation", reproduce: "", chaos: .seconds(1), heal: .seconds(1))
        summary.invariants = [RunSummary.livenessInvariant: .fail, "stock-conservation": .pass]
        #expect(!summary.livenessPass && !summary.consistencyFailed)
        summary.invariants["report-converges"] = .fail
        #expect(summary.consistencyFailed)

        summary.resilience["order->payment"] = RunSummary.PathResilience(
            calls: 1, attempts: 1, retries: 0, failedCalls: 1, breakerRejections: 0, breakerOpened: 1, breakerHalfOpened: 0,
            breakerClosed: 0, breakerState: "open")
        #expect(summary.humanSummary.contains("note: breaker(s) not closed at the end: order->payment (open)"), "\(summary.humanSummary)")
        summary.violationCounts = ["report-converges": 33]
        #expect(summary.humanSummary.contains("report-converges: 33 counter-examples in all"))
    }
}

/// The console's counter-examples (a report reader's trial: six invariants failed and all ten
/// printed examples were the first one's).
@Suite struct ConsoleExampleTests {
    @Test func everyFailingInvariantShowsItsFirstExample() {
        var summary = RunSummary(scenario: "s", seed: 1, mode: "simulation", reproduce: "", chaos: .seconds(1), heal: .seconds(1))
        summary.invariants = ["stock-conservation": .fail, "one-confirmation-per-confirmed-order": .fail, "report-converges": .fail]
        summary.violations = (1...20).map { .init(invariant: "stock-conservation", example: "stock \($0)") }
            + [.init(invariant: "one-confirmation-per-confirmed-order", example: "order A has 2 confirmation notifications"),
               .init(invariant: "one-confirmation-per-confirmed-order", example: "order B has 2 confirmation notifications"),
               .init(invariant: "report-converges", example: "sales differ")]
        let text = summary.humanSummary
        #expect(text.contains("counter-example [one-confirmation-per-confirmed-order]: order A has 2"), "\(text)")
        #expect(text.contains("counter-example [report-converges]: sales differ"), "\(text)")
        #expect(!text.contains("order B"))
        let shown = text.split(separator: "\n").filter { $0.contains("counter-example [") }
        #expect(shown.count == 10)
        // In report order: the first invariant's examples, then the others'.
        #expect(shown.first?.contains("stock 1") == true && shown.last?.contains("sales differ") == true, "\(shown)")
        #expect(text.contains("… 13 more in summary.json"))
    }
}
