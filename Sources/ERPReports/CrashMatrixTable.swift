import ERPCore
import Foundation

/// `erp crash-matrix`'s table: a row per cell (a service killed, or the bus or order stopped,
/// under load), a column per guarantee the matrix is about, then the rest of the checker's
/// verdicts and the cell's orders.
public enum CrashMatrixTable {
    /// One cell's outcome, as `matrix.json` holds it.
    public struct Cell: Codable, Sendable {
        public var name: String
        public var fault: String
        public var invariantsPass: Bool
        public var failed: [String]
        public var submitted: Int
        public var confirmed: Int
        public var cancelled: Int
        public var pending: Int
        public var restarts: Int
        public var p99: Double
        public var report: String
        /// Why the cell's invariants were not judged (it could not run; a database was damaged),
        /// or nil: its columns then show neither a pass nor a failure.
        public var notJudged: String?

        public init(name: String, fault: String, invariantsPass: Bool, failed: [String], submitted: Int, confirmed: Int,
                    cancelled: Int, pending: Int, restarts: Int, p99: Double, report: String, notJudged: String? = nil) {
            self.name = name; self.fault = fault; self.invariantsPass = invariantsPass; self.failed = failed
            self.submitted = submitted; self.confirmed = confirmed; self.cancelled = cancelled; self.pending = pending
            self.restarts = restarts; self.p99 = p99; self.report = report; self.notJudged = notJudged
        }
    }

    /// The four guarantees the matrix is about, then the rest of the checker's verdicts.
    public static let columns: [(title: String, invariants: [String])] = [
        ("no accepted order lost", ["every-accepted-order-terminal-after-heal", "client-outcome-matches-order"]),
        ("no double charge", ["confirmed-order-has-exactly-one-captured-payment", "cancelled-order-has-no-net-charge", "no-payment-without-order"]),
        ("stock conserved", ["stock-conservation", "confirmed-order-stock-taken-cancelled-order-stock-released", "every-vend-sold-once"]),
        ("every event applied once", ["every-event-applied-once", "every-event-delivered-after-heal"]),
    ]

    /// The table in Markdown, with a line on what each cell ran.
    public static func text(_ cells: [Cell], rate: Double, chaos: Duration) -> String {
        var out = "| cell | fault | " + columns.map(\.title).joined(separator: " | ") + " | other invariants | orders (confirmed / cancelled / pending) | restarts | p99 ms |\n"
        out += "|---|---|" + columns.map { _ in "---|" }.joined() + "---|---|---:|---:|\n"
        let listed = Set(columns.flatMap(\.invariants))
        for cell in cells {
            // A cell not judged shows no tick: a ✓ there read as four guarantees kept by a run
            // that never started.
            let marks = columns.map { column in
                cell.notJudged != nil ? "—" : column.invariants.contains(where: cell.failed.contains) ? "✗" : "✓"
            }
            let others = cell.failed.filter { !listed.contains($0) && !$0.hasPrefix("run failed: ") }
            let otherCell = if let notJudged = cell.notJudged {
                "not judged: " + markdownCell(notJudged) + (others.isEmpty ? "" : "; ✗ " + others.joined(separator: ", "))
            } else {
                others.isEmpty ? "✓" : "✗ " + others.joined(separator: ", ")
            }
            out += "| \(cell.name) | \(cell.fault) | " + marks.joined(separator: " | ") + " | \(otherCell) "
                + "| \(cell.submitted) (\(cell.confirmed) / \(cell.cancelled) / \(cell.pending)) | \(cell.restarts) | \(String(format: "%.0f", cell.p99)) |\n"
        }
        out += "\nEach cell: every service a process, \(rate) orders/s through HTTP, every fixture device reporting over the device protocol, vends; \(chaos.shortDescription) of chaos, then the heal phase; invariants judged from the databases.\n"
        return out
    }
}
