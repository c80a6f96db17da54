import ArgumentParser
import ERPReports
import Foundation

/// `erp diff A B`: two runs' reports side by side: what their summaries disagree on (verdict,
/// orders, cancellations, invariants, latency) and where their traces first part. A report
/// reader's trial compared a green run with a failing one by copying one summary into the other's
/// folder so that `erp replay` would diff the traces: this is that, supported.
struct Diff: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compare two run reports: their summaries' differences and their traces' first divergence.",
        discussion: """
            A and B are folders `erp run` wrote (or an exploration's runs/<scenario>/seed-N). Prints \
            what differs in the summaries: the verdict, the order counts and cancellation reasons, \
            each invariant that passed in one and failed in the other, and the latencies (p50 and \
            p99 of every flow, call and event hop in either, largest change of p99 first, --top of \
            them). With both in simulation, the traces are compared line by line and the first \
            divergence shown with --context lines around it (the scenario, seed and build decide a \
            trace: two seeds part at once, a fault's effect where it begins). Exit status 0 when \
            the traces are the same (or there are none to compare), 6 when they differ, 1 on bad input.
            """)

    @Argument(help: "The first report folder.") var a: String
    @Argument(help: "The second report folder.") var b: String
    @Option(parsing: .unconditional, help: "Lines shown around the traces' first difference.") var context = 3
    @Option(parsing: .unconditional, help: "Latencies listed, largest change of p99 first.") var top = 15

    func run() throws {
        func load(_ report: String) throws -> RunSummary {
            switch readRunSummary(report) {
            case .success(let summary): return summary
            case .failure(let refused):
                FileHandle.standardError.put(Data("erp diff: \(refused.message)\n".utf8))
                throw ExitCode(ExitStatus.invalidInput)
            }
        }
        let x = try load(a), y = try load(b)
        for (label, s, path) in [("A", x, a), ("B", y, b)] {
            print("\(label): \(path): \(s.scenario) (\(s.mode)), seed \(s.seed), exit \(s.verdictExitStatus)"
                  + (s.traceHash.map { ", trace \($0.prefix(12))… (\(s.traceLines) lines)" } ?? ""))
        }
        print(Self.summaryDifferences(x, y, top: max(0, top)).joined(separator: "\n"))
        let traceA = a + "/trace.log", traceB = b + "/trace.log"
        guard FileManager.default.fileExists(atPath: traceA), FileManager.default.fileExists(atPath: traceB) else {
            print("traces: not compared (a zmq run has none)")
            return
        }
        if let divergence = try TraceDiff.firstDivergence(expected: traceA, actual: traceB, context: max(0, context)) {
            print("traces: " + divergence.rendered(expectedLabel: "A " + traceA, actualLabel: "B " + traceB))
            throw ExitCode(ExitStatus.diverged)
        }
        print("traces: the same, line for line")
    }

    /// What the two summaries disagree on, a line each; "summaries: no difference" when nothing.
    static func summaryDifferences(_ x: RunSummary, _ y: RunSummary, top: Int) -> [String] {
        var lines: [String] = []
        if x.verdictExitStatus != y.verdictExitStatus { lines.append("verdict: exit \(x.verdictExitStatus) → \(y.verdictExitStatus)") }
        let counts: [(String, Int, Int)] = [
            ("submitted", x.orders.submitted, y.orders.submitted), ("accepted", x.orders.accepted, y.orders.accepted),
            ("confirmed", x.orders.confirmed, y.orders.confirmed), ("cancelled", x.orders.cancelled, y.orders.cancelled),
            ("pending", x.orders.pending, y.orders.pending), ("given up by the client", x.orders.clientGaveUp, y.orders.clientGaveUp),
        ]
        let changed = counts.filter { $0.1 != $0.2 }
        if !changed.isEmpty { lines.append("orders: " + changed.map { "\($0.0) \($0.1) → \($0.2)" }.joined(separator: ", ")) }
        let reasons = Set(x.orders.cancelReasons.keys).union(y.orders.cancelReasons.keys).sorted()
            .filter { x.orders.cancelReasons[$0] != y.orders.cancelReasons[$0] }
        if !reasons.isEmpty {
            lines.append("cancelled because: " + reasons.map { "\($0) \(x.orders.cancelReasons[$0] ?? 0) → \(y.orders.cancelReasons[$0] ?? 0)" }
                .joined(separator: ", "))
        }
        for name in Set(x.invariants.keys).union(y.invariants.keys).sorted() where x.invariants[name] != y.invariants[name] {
            func word(_ v: RunSummary.Verdict?) -> String { v.map { $0 == .pass ? "pass" : "FAIL" } ?? "not judged" }
            lines.append("invariant \(name): \(word(x.invariants[name])) → \(word(y.invariants[name]))"
                         + (y.invariants[name] == .fail ? (y.counterExamples(of: name).first.map { "; B's first counter-example: \($0)" } ?? "") : ""))
        }
        let keys = Set(x.latency.keys).union(y.latency.keys)
        let moved = keys.map { key -> (String, Double) in
            (key, abs((y.latency[key]?.p99 ?? 0) - (x.latency[key]?.p99 ?? 0)))
        }.filter { $0.1 > 0 || x.latency[$0.0]?.count != y.latency[$0.0]?.count }
            .sorted { ($0.1, $1.0) > ($1.1, $0.0) }
        for (key, _) in moved.prefix(top) {
            func figures(_ l: LatencySummary?) -> String { l.map { "p50 \($0.p50) p99 \($0.p99) (n=\($0.count))" } ?? "none" }
            lines.append("latency \(key): \(figures(x.latency[key])) → \(figures(y.latency[key]))")
        }
        if moved.count > top { lines.append("… \(moved.count - top) more latencies differ (--top)") }
        return lines.isEmpty ? ["summaries: no difference"] : lines
    }
}
