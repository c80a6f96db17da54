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
    }
}
