import Foundation

/// `junit.xml`: a run as a JUnit test suite a CI system reads: one test case per invariant (a
/// failure carries its counter-examples and the reproduce command; an invariant the run could not
/// judge is skipped) and one per expectation of the scenario.
public enum JUnitReport {
    /// One test case.
    public struct Case: Sendable {
        public var name: String
        public var className: String
        public var seconds: Double
        /// Nil when it passed.
        public var failure: (message: String, details: String)?
        /// What kind of failure: `invariant`, `expectation` (the `type` attribute).
        public var failureType = "invariant"
        /// The run could not be judged at all (it could not start, or ended without a summary):
        /// a JUnit `<error>`, which CI systems tell from a failed test.
        public var error: (message: String, details: String)?
        public var skipped: String?
        public init(name: String, className: String, seconds: Double = 0, failure: (message: String, details: String)? = nil, skipped: String? = nil) {
            self.name = name; self.className = className; self.seconds = seconds; self.failure = failure; self.skipped = skipped
        }
    }

    /// The cases of one run: every invariant the checker knows (`invariantNames`, in report
    /// order), then the expectations.
    public static func cases(of summary: RunSummary, invariantNames: [String]) -> [Case] {
        // The seed is the suite's, not the cases' identity: a nightly run of another seed is the
        // same tests, so a CI system's history follows each invariant across nights.
        let className = "\(summary.scenario).\(summary.mode)"
        var cases: [Case] = []
        for name in invariantNames {
            switch summary.invariants[name] {
            case .pass?: cases.append(Case(name: name, className: className))
            case .fail?:
                let examples = summary.counterExamples(of: name)
                cases.append(Case(name: name, className: className,
                                  failure: ("\(name) does not hold: \(examples.first ?? "")",
                                            examples.map { "- \($0)" }.joined(separator: "\n") + "\n\nreproduce: \(summary.reproduce)")))
            case nil:
                cases.append(Case(name: name, className: className,
                                  skipped: summary.databasesDamaged ? RunSummary.notJudgedForDamage : "this run cannot show it (no such service or workload)"))
            }
        }
        let failures = summary.expectationFailures
        var expectations = Case(name: "expectations", className: className,
                                failure: failures.isEmpty ? nil : ("\(failures.count) expectation(s) not met: \(failures[0])",
                                                                   failures.map { "- \($0)" }.joined(separator: "\n") + "\n\nreproduce: \(summary.reproduce)"))
        expectations.failureType = "expectation"
        cases.append(expectations)
        return cases
    }

    /// The XML of one suite holding `cases`.
    /// `timestamp`: when the run started (the suite's `timestamp`, ISO 8601 in UTC), when known.
    /// `<testsuites>` carries no `skipped` count: the JUnit schema CI tools validate against (Ant's,
    /// as pytest writes it) allows it only on `<testsuite>`.
    public static func xml(suite: String, cases: [Case], seconds: Double, timestamp: Date? = nil) -> String {
        let errors = cases.filter { $0.error != nil }.count
        let failures = cases.filter { $0.failure != nil && $0.error == nil }.count
        let skipped = cases.filter { $0.skipped != nil && $0.failure == nil && $0.error == nil }.count
        let stamp = timestamp.map { #" timestamp="\#(isoSeconds($0))""# } ?? ""
        var out = #"<?xml version="1.0" encoding="UTF-8"?>"# + "\n"
        out += #"<testsuites name="erp" tests="\#(cases.count)" failures="\#(failures)" errors="\#(errors)" time="\#(format(seconds))">"# + "\n"
        out += #"  <testsuite name="\#(escape(suite))" tests="\#(cases.count)" failures="\#(failures)" errors="\#(errors)" skipped="\#(skipped)" time="\#(format(seconds))"\#(stamp)>"# + "\n"
        for c in cases {
            let open = #"    <testcase name="\#(escape(c.name))" classname="\#(escape(c.className))" time="\#(format(c.seconds))""#
            if let error = c.error {
                out += open + ">\n"
                out += #"      <error message="\#(escape(error.message))" type="run-error">\#(escape(error.details))</error>"# + "\n"
                out += "    </testcase>\n"
            } else if let failure = c.failure {
                out += open + ">\n"
                out += #"      <failure message="\#(escape(failure.message))" type="\#(escape(c.failureType))">\#(escape(failure.details))</failure>"# + "\n"
                out += "    </testcase>\n"
            } else if let skipped = c.skipped {
                out += open + ">\n" + #"      <skipped message="\#(escape(skipped))"/>"# + "\n    </testcase>\n"
            } else {
                out += open + "/>\n"
            }
        }
        out += "  </testsuite>\n</testsuites>\n"
        return out
    }

    static func escape(_ text: String) -> String { markupEscaped(text) }

    static func format(_ seconds: Double) -> String { String(format: "%.3f", seconds) }

    /// `2026-12-06T21:14:03Z`.
    static func isoSeconds(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.string(from: date)
    }
}

/// Text safe in XML and HTML attributes and content (junit.xml, report.html); characters XML 1.0
/// cannot carry are dropped.
func markupEscaped(_ text: String) -> String {
    var out = ""
    out.reserveCapacity(text.utf8.count)
    for scalar in text.unicodeScalars {
        switch scalar {
        case "&": out += "&amp;"
        case "<": out += "&lt;"
        case ">": out += "&gt;"
        case "\"": out += "&quot;"
        case "'": out += "&apos;"
        case "\t", "\n", "\r": out.unicodeScalars.append(scalar)
        default:
            let v = scalar.value
            if v >= 0x20 && !(0xFFFE...0xFFFF).contains(v) { out.unicodeScalars.append(scalar) }
        }
    }
    return out
}
