import ERPCore
import ERPTestSupport
import Foundation
import Testing

/// `erp up --stock N --no-rate-limits` is the system a load test (`wrk`, scripts/production-sitting.sh)
/// runs against: no 429 past the topology's per-key limit, stock that does not run out, and the
/// fixtures it seeded recorded in the data folder, which `erp check` judges against afterwards.
/// A performance checker's trial had to write such a topology and fixtures by hand.
@Suite(.serialized) struct LoadTestSetupTests {
    @Test func aLoadTestSystemHasNoRateLimitsAndStockThatLasts() async throws {
        let binary = erpBinary
        try #require(FileManager.default.isExecutableFile(atPath: binary), "build erp first (swift build)")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("erp-loadsetup-\(UInt64.random(in: 0...UInt64.max))").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let services = LoopbackTopology.orderServices
        let loopback = try LoopbackTopology(name: "load", services: services, clients: [], in: dir)
        // A tight per-key limit: a burst of 3, then one request a second.
        let limited = try String(contentsOfFile: loopback.path, encoding: .utf8)
            .replacingOccurrences(of: "apiKeys: [k1]}", with: "apiKeys: [k1], rateLimit: {capacity: 3, refillPerSecond: 1}}")
        try limited.write(toFile: loopback.path, atomically: true, encoding: .utf8)
        let data = dir + "/data", base = "http://127.0.0.1:\(loopback.httpPort)"
        let headers = ["X-API-Key": "k1", "Content-Type": "application/json"]

        let up = try startErpUp(binary, topology: loopback.path, log: dir + "/up.log", more: ["--data", data, "--stock", "7", "--no-rate-limits"])
        defer { if up.isRunning { up.terminate(); up.waitUntilExit() } }
        try #require(try await loopback.gatewayHealthy(), "the gateway never answered /health")
        let file = try loadFixtures()
        let recorded = try JSONCoding.decode(Fixtures.self, from: Data(contentsOf: URL(fileURLWithPath: data + "/fixtures.json")))
        #expect(recorded == file.withStock(times: 7))
        let initial = file.shops.first { $0.id == "shop_stockholm" }!.stock.first { $0.productId == "prod_01" }!.quantity * 7

        // Twelve orders at once from one key: past the burst of 3, none refused.
        let statuses = await withTaskGroup(of: Int.self) { group in
            for n in 0..<12 {
                group.addTask {
                    let body = #"{"userId":"user_001","shopId":"shop_stockholm","items":[{"productId":"prod_01","quantity":1}]}"#
                    return await http("POST", base + "/orders", body: body, headers: headers.merging(["Idempotency-Key": "load-\(n)"]) { $1 })?.status ?? 0
                }
            }
            return await group.reduce(into: [Int]()) { $0.append($1) }
        }
        #expect(statuses.allSatisfy { $0 == 201 || $0 == 202 }, "\(statuses)")
        var level: StockLevel?
        for _ in 0..<50 {
            let r = await http("GET", base + "/inventory/shop_stockholm/prod_01", headers: headers)
            level = try r.map { try JSONDecoder().decode(StockLevel.self, from: $0.body) }
            if level?.sold == 12 { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(level?.sold == 12 && level?.available == initial - 12, "\(String(describing: level)), initial \(initial)")
        up.terminate()
        await waitForExit(up)

        // Judged against the fixtures erp up recorded (7 × the file's stock), not the file's.
        let check = try await runErp(["check", data])
        #expect(check.status == 0 && check.output.contains("seeded from \(data)/fixtures.json"), "\(check.output)")
        // Those databases are seeded: another multiplier would record stock they do not hold.
        let again = try await runErp(["up", "--topology", loopback.path, "--data", data, "--stock", "2"])
        #expect(again.status == 1 && again.output.contains("seeds new databases"), "\(again.output)")

        // The same system without the flag: the topology's limit holds.
        // (and its services logging at warning: `--log-level` reaches every one of them)
        let limitedUp = try startErpUp(binary, topology: loopback.path, log: dir + "/up2.log", more: ["--data", data, "--log-level", "warning"])
        defer { if limitedUp.isRunning { limitedUp.terminate(); limitedUp.waitUntilExit() } }
        try #require(try await loopback.gatewayHealthy(), "the gateway never answered /health")
        var refused = 0
        for _ in 0..<8 {
            if await http("GET", base + "/products/prod_01", headers: headers)?.status == 429 { refused += 1 }
        }
        #expect(refused >= 3, "only \(refused) of 8 reads past a burst of 3 were refused")
        let defaultLog = try String(contentsOfFile: dir + "/up.log", encoding: .utf8)
        let quietLog = try String(contentsOfFile: dir + "/up2.log", encoding: .utf8)
        #expect(defaultLog.contains(" info order: ") && !quietLog.contains(" info "), "\(quietLog.prefix(2_000))")
    }
}
