import ERPCore
import ERPReports
import ERPScenario
import ERPTestSupport
import Foundation
import GRDB
import Testing

/// Inconsistencies a performance checker's trial made by hand in a finished run's databases, each
/// consistent enough with the rest that every invariant held: a confirmed order that took more
/// units than it ordered (sold and the read models made to match), stock from nowhere (a row's
/// initial raised with its available units), sales moved from one product to another. Each must
/// now fail its invariant, and the untouched copy pass.
@Suite(.serialized) struct TamperedDatabaseTests {
    static func judge(_ databases: String) throws -> RunSummary {
        var summary = RunSummary(scenario: "tampered", seed: 1, mode: "simulation", reproduce: "", chaos: .seconds(3), heal: .seconds(10))
        var checker = ConsistencyChecker(databaseDirectory: databases, history: [])
        checker.fixtures = try loadFixtures()
        try checker.check(into: &summary)
        return summary
    }

    /// A copy of the run's databases, changed by `edit` (service name → SQL run in its database).
    static func tampered(_ run: String, _ label: String, _ edits: [(String, String)]) throws -> String {
        let copy = run + "-" + label
        try? FileManager.default.removeItem(atPath: copy)
        try FileManager.default.copyItem(atPath: run + "/db", toPath: copy)
        for (file, sql) in edits { try DatabaseQueue(path: copy + "/" + file).write { try $0.execute(sql: sql) } }
        return copy
    }

    @Test func consistentLookingEditsAreCaught() async throws {
        let dir = scratchDirectory("tampered")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let run = try await runErp(["run", "scenarios/happy-path.yaml", "--duration", "3s", "--out", dir + "/run"])
        #expect(run.status == 0, "\(run.output)")
        let control = try Self.judge(dir + "/run/db")
        #expect(control.invariantsPass, "\(control.violations)")

        // A confirmed order's first line: one unit more taken than ordered, sold to match.
        let order = try DatabaseQueue(path: dir + "/run/db/order-order.sqlite").read { db in
            try Row.fetchOne(db, sql: """
                SELECT o.orderId AS id, o.shopId AS shop, json_extract(o.items, '$[0].productId') AS product FROM orders o
                WHERE o.status = 'confirmed' ORDER BY o.orderId LIMIT 1
                """)
        }
        let row = try #require(order)
        let (id, shop, product): (String, String, String) = (row["id"], row["shop"], row["product"])
        let overTaken = try Self.tampered(dir + "/run", "over-taken", [("inventory-inventory.sqlite", """
            UPDATE reservation_line SET quantity = quantity + 1 WHERE orderId = '\(id)' AND productId = '\(product)';
            UPDATE stock SET sold = sold + 1, available = available - 1 WHERE shopId = '\(shop)' AND productId = '\(product)';
            """)])
        let taken = try Self.judge(overTaken)
        #expect(taken.invariants["confirmed-order-stock-taken-cancelled-order-stock-released"] == .fail)
        #expect(taken.invariants["stock-conservation"] == .pass, "the edit was meant to keep stock's own sums: \(taken.violations)")
        #expect(taken.violations.contains { $0.example.contains("confirmed order \(id) ordered") && $0.example.contains("× \(product), its reservation took") },
                "\(taken.violations)")

        // The same judgement from the command line, on a stopped system's folder (`erp check`).
        let clean = try await runErp(["check", dir + "/run/db"])
        #expect(clean.status == 0 && clean.output.contains("pass  stock-conservation"), "\(clean.output)")
        #expect(!clean.output.contains("client-outcome-matches-order\n"), "judged with no client: \(clean.output)")
        let caught = try await runErp(["check", overTaken])
        #expect(caught.status == 2 && caught.output.contains("FAIL  confirmed-order-stock-taken-cancelled-order-stock-released"), "\(caught.output)")

        let fromNowhere = try Self.tampered(dir + "/run", "from-nowhere", [("inventory-inventory.sqlite", """
            UPDATE stock SET initial = initial + 5, available = available + 5 WHERE shopId = '\(shop)' AND productId = '\(product)';
            """), ("product-product.sqlite", "UPDATE availability SET units = units + 5 WHERE shopId = '\(shop)' AND productId = '\(product)'"),
            ("report-report.sqlite", "UPDATE stock_level SET available = available + 5 WHERE shopId = '\(shop)' AND productId = '\(product)'")])
        let nowhere = try Self.judge(fromNowhere)
        #expect(nowhere.invariants["stock-conservation"] == .fail)
        #expect(nowhere.violations.contains { $0.example.hasPrefix("\(shop)/\(product): initial") && $0.example.contains("but the fixtures stocked") },
                "\(nowhere.violations)")

        let moved = try Self.tampered(dir + "/run", "sales-moved", [("report-report.sqlite", """
            UPDATE sales SET amountMinor = amountMinor + 100 WHERE rowid = (SELECT rowid FROM sales ORDER BY shopId, productId LIMIT 1);
            UPDATE sales SET amountMinor = amountMinor - 100 WHERE rowid = (SELECT rowid FROM sales ORDER BY shopId DESC, productId DESC LIMIT 1);
            """)])
        let sales = try Self.judge(moved)
        #expect(sales.invariants["report-converges"] == .fail)
        #expect(sales.violations.filter { $0.example.hasPrefix("sales of ") }.count == 2, "\(sales.violations)")
    }
}
