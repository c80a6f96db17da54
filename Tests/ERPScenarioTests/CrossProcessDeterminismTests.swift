import ERPCore
import ERPReports
import ERPScenario
import ERPTestSupport
import Foundation
import Testing

/// The same scenario and seed in two separate processes give the same trace hash; another seed
/// gives another. No hashing environment variable is set.
@Suite struct CrossProcessDeterminismTests {
    func runCLI(_ arguments: [String]) async throws -> (status: Int32, output: String) {
        // No hashing override: each process seeds Swift's hashing its own way.
        let result = try await runErp(arguments, environment: ["SWIFT_DETERMINISTIC_HASHING": nil])
        return (result.status, result.output)
    }

    func hash(_ output: String) -> String? {
        output.split(separator: "\n").first { $0.hasPrefix("trace hash: ") }.map { String($0.split(separator: " ")[2]) }
    }

    @Test func twoProcessesOneSeedOneHash() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("erp-cli-\(UInt64.random(in: 0...UInt64.max))").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let a = try await runCLI(["run", "scenarios/order-crash.yaml", "--seed", "11", "--out", dir + "/a"])
        let b = try await runCLI(["run", "scenarios/order-crash.yaml", "--seed", "11", "--out", dir + "/b"])
        let c = try await runCLI(["run", "scenarios/order-crash.yaml", "--seed", "12", "--out", dir + "/c"])
        #expect(a.status == 0 && b.status == 0 && c.status == 0, "\(a.output)\n\(c.output)")
        #expect(hash(a.output) != nil)
        #expect(hash(a.output) == hash(b.output))
        #expect(hash(a.output) != hash(c.output))
        let summary = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/a/summary.json"))) as! [String: Any]
        #expect(summary["traceHash"] as? String == hash(a.output))
        for key in ["scenario", "seed", "mode", "traceHash", "orders", "invariants", "latency"] { #expect(summary[key] != nil, "\(key)") }
    }

    @Test func aBadScenarioExitsNonZeroWithFileAndLineAndWritesNothing() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("erp-bad-\(UInt64.random(in: 0...UInt64.max))").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try "name: bad\nworkload:\n  orders:\n    rate: -3\n".write(toFile: dir + "/bad.yaml", atomically: true, encoding: .utf8)
        let result = try await runCLI(["run", dir + "/bad.yaml", "--out", dir + "/out"])
        #expect(result.status == 1)
        #expect(result.output.contains("bad.yaml:4: workload.orders.rate must not be negative"), "\(result.output)")
        #expect(!FileManager.default.fileExists(atPath: dir + "/out"))
        #expect(!FileManager.default.fileExists(atPath: dir + "/out.partial"))
    }
}
