import ERPCore
import ERPReports
import ERPTestSupport
import Foundation
import Testing

/// `erp crash-matrix` on real processes: a killed service is restarted by the supervisor and the
/// invariants hold in its cell's databases; the table and the JSON say so; bad arguments are named.
@Suite(.serialized) struct CrashMatrixTests {
    @Test func aKilledServiceCellHoldsEveryInvariant() async throws {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("erp-crash-matrix-\(UInt64.random(in: 0...UInt64.max))").path
        defer { try? FileManager.default.removeItem(atPath: out) }
        let result = try await runErp(["crash-matrix", "--services", "payment", "--duration", "4s", "--out", out,
                                       "--base", packageRoot + "/scenarios/happy-path.yaml"])
        #expect(result.status == 0, "\(result.output)")
        let cells = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/matrix.json"))) as? [[String: Any]])
        #expect(cells.count == 1)
        let cell = try #require(cells.first)
        #expect(cell["name"] as? String == "kill-payment")
        #expect(cell["invariantsPass"] as? Bool == true, "\(cell)")
        #expect((cell["restarts"] as? Int ?? 0) >= 1, "the supervisor restarted the killed service: \(cell)")
        #expect((cell["confirmed"] as? Int ?? 0) > 0 && cell["pending"] as? Int == 0)
        let table = try String(contentsOfFile: out + "/matrix.md", encoding: .utf8)
        #expect(table.contains("| kill-payment | at 1.333s: crash payment, restart after 1s | ✓ | ✓ | ✓ | ✓ | ✓ |"), "\(table)")
        #expect(FileManager.default.fileExists(atPath: out + "/kill-payment/summary.json"))
    }

    @Test func badArgumentsAreNamed() async throws {
        let unknown = try await runErp(["crash-matrix", "--services", "order,nowhere"])
        #expect(unknown.status != 0 && unknown.output.contains("unknown service 'nowhere'"))
        let short = try await runErp(["crash-matrix", "--duration", "1s"])
        #expect(short.status != 0 && short.output.contains("--duration must be from 3s to 10m"))
        // A base no cell could run (a weakened durability is simulation-only) is bad input, refused
        // before any cell: each cell failed on it, and the matrix exited 2, "an invariant failed".
        let dir = scratchDirectory("crash-matrix-base")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let base = try String(contentsOfFile: packageRoot + "/scenarios/happy-path.yaml", encoding: .utf8)
            .replacingOccurrences(of: "fixtures: fixtures/retail.json", with: "fixtures: \(packageRoot)/fixtures/retail.json")
        try (base + "\ndurability: {order: normal}\n").write(toFile: dir + "/base.yaml", atomically: true, encoding: .utf8)
        let weakened = try await runErp(["crash-matrix", "--services", "order", "--duration", "3s", "--base", dir + "/base.yaml", "--out", dir + "/out"])
        #expect(weakened.status == 1, "\(weakened.output)")
        #expect(weakened.output.contains("durability: order: normal is simulation-only"), "\(weakened.output)")
        #expect(!weakened.output.contains("[1/1]"), "no cell ran: \(weakened.output)")
    }

    /// A cell whose invariants were not judged shows no tick in any column (a cell that could not
    /// run showed four ✓, "no accepted order lost" among them), and says why.
    @Test func aCellNotJudgedShowsNoTick() {
        let ran = CrashMatrixTable.Cell(name: "kill-order", fault: "at 3s: crash order", invariantsPass: false, failed: ["stock-conservation", "report-converges"],
                                        submitted: 60, confirmed: 50, cancelled: 10, pending: 0, restarts: 1, p99: 120, report: "/r/kill-order")
        let notRun = CrashMatrixTable.Cell(name: "kill-payment", fault: "at 3s: crash payment", invariantsPass: false, failed: ["run failed: no | ports"],
                                           submitted: 0, confirmed: 0, cancelled: 0, pending: 0, restarts: 0, p99: 0, report: "/r/kill-payment",
                                           notJudged: "the cell could not run: no | ports")
        let table = CrashMatrixTable.text([ran, notRun], rate: 20, chaos: .seconds(9))
        #expect(table.contains("| kill-order | at 3s: crash order | ✓ | ✓ | ✗ | ✓ | ✗ report-converges | 60 (50 / 10 / 0) | 1 | 120 |"), "\(table)")
        #expect(table.contains("| kill-payment | at 3s: crash payment | — | — | — | — | not judged: the cell could not run: no \\| ports | 0 (0 / 0 / 0) | 0 | 0 |"), "\(table)")
    }
}
