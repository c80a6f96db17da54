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
        public var skipped: String?
        public init(name: String, className: String, seconds: Double = 0, failure: (message: String, details: String)? = nil, skipped: String? = nil) {
            self.name = name; self.className = className; self.seconds = seconds; self.failure = failure; self.skipped = skipped
        }
    }

    /// The cases of one run: every invariant the checker knows (`invariantNames`, in report
    /// order), then the expectations.
    public static func cases(of summary: RunSummary, invariantNames: [String]) -> [Case] {
        let className = "\(summary.scenario).\(summary.mode).seed\(summary.seed)"
        var cases: [Case] = []
        for name in invariantNames {
            switch summary.invariants[name] {
            case .pass?: cases.append(Case(name: name, className: className))
            case .fail?:
                let examples = summary.violations.filter { $0.invariant == name }.map(\.example)
                cases.append(Case(name: name, className: className,
                                  failure: ("\(name) does not hold: \(examples.first ?? "")",
                                            examples.map { "- \($0)" }.joined(separator: "\n") + "\n\nreproduce: \(summary.reproduce)")))
            case nil:
                cases.append(Case(name: name, className: className,
                                  skipped: summary.databasesDamaged ? RunSummary.notJudgedForDamage : "this run cannot show it (no such service or workload)"))
            }
        }
        let failures = summary.expectationFailures
        cases.append(Case(name: "expectations", className: className,
                          failure: failures.isEmpty ? nil : ("\(failures.count) expectation(s) not met: \(failures[0])",
                                                             failures.map { "- \($0)" }.joined(separator: "\n") + "\n\nreproduce: \(summary.reproduce)")))
        return cases
    }

    /// The XML of one suite holding `cases`.
    public static func xml(suite: String, cases: [Case], seconds: Double) -> String {
        let failures = cases.filter { $0.failure != nil }.count
        let skipped = cases.filter { $0.skipped != nil }.count
        var out = #"<?xml version="1.0" encoding="UTF-8"?>"# + "\n"
        out += #"<testsuites name="erp" tests="\#(cases.count)" failures="\#(failures)" skipped="\#(skipped)" time="\#(format(seconds))">"# + "\n"
        out += #"  <testsuite name="\#(escape(suite))" tests="\#(cases.count)" failures="\#(failures)" errors="0" skipped="\#(skipped)" time="\#(format(seconds))">"# + "\n"
        for c in cases {
            let open = #"    <testcase name="\#(escape(c.name))" classname="\#(escape(c.className))" time="\#(format(c.seconds))""#
            if let failure = c.failure {
                out += open + ">\n"
                out += #"      <failure message="\#(escape(failure.message))" type="invariant">\#(escape(failure.details))</failure>"# + "\n"
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
