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
