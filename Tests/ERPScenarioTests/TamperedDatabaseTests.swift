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

        // A unit sold that no committed order or vend took (available moved to sold, so stock's
        // own sums still hold).
        let soldUnordered = try Self.tampered(dir + "/run", "sold-unordered", [("inventory-inventory.sqlite", """
            UPDATE stock SET sold = sold + 1, available = available - 1 WHERE shopId = '\(shop)' AND productId = '\(product)';
            """)])
        let unordered = try Self.judge(soldUnordered)
        #expect(unordered.invariants["stock-conservation"] == .fail)
        let soldNow = try await DatabaseQueue(path: soldUnordered + "/inventory-inventory.sqlite").read { db in
            try Int.fetchOne(db, sql: "SELECT sold FROM stock WHERE shopId = ? AND productId = ?", arguments: [shop, product])!
        }
        #expect(unordered.violations.contains { $0.example == "\(shop)/\(product): sold \(soldNow) ≠ committed orders \(soldNow - 1) + vends 0" },
                "\(unordered.violations)")

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

    /// The money and notification checks (compared in SQL, the databases attached, since a
    /// million orders' maps outgrew memory): each kind of wrong row is caught with its example,
    /// and the untouched run passes.
    @Test func moneyAndConfirmationEditsAreCaught() async throws {
        let dir = scratchDirectory("tampered-money")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let run = try await runErp(["run", "scenarios/happy-path.yaml", "--duration", "3s", "--out", dir + "/run"])
        #expect(run.status == 0, "\(run.output)")
        #expect(try Self.judge(dir + "/run/db").invariantsPass)

        // Five confirmed orders, each with its payment's charge key and its total.
        let rows = try DatabaseQueue(path: dir + "/run/db/order-order.sqlite").read { db in
            try Row.fetchAll(db, sql: "SELECT orderId, totalMinor FROM orders WHERE status = 'confirmed' ORDER BY orderId LIMIT 5")
        }
        try #require(rows.count == 5)
        let ids: [String] = rows.map { $0["orderId"] }, totals: [Int64] = rows.map { $0["totalMinor"] }
        let keys: [String] = try await DatabaseQueue(path: dir + "/run/db/payment-payment.sqlite").read { db in
            try ids.map { try String.fetchOne(db, sql: "SELECT chargeKey FROM payment WHERE orderId = ?", arguments: [$0])! }
        }
        let (doubled, unrecorded, cancelled, notified, overcharged) = (ids[0], ids[1], ids[2], ids[3], ids[4])
        let copy = try Self.tampered(dir + "/run", "money", [
            ("swishpay-swishpay.sqlite", """
                INSERT INTO charge SELECT chargeKey || '-again', customerId, amountMinor, currency, 'captured', NULL, updatedAt FROM charge WHERE chargeKey = '\(keys[0])';
                UPDATE charge SET amountMinor = amountMinor + 1 WHERE chargeKey = '\(keys[4])';
                """),
            ("payment-payment.sqlite", """
                INSERT INTO payment SELECT paymentId || '-again', orderId, userId, amountMinor, currency, chargeKey || '-again', status, reason, updatedAt
                  FROM payment WHERE orderId = '\(doubled)';
                DELETE FROM payment WHERE orderId = '\(unrecorded)';
                INSERT INTO payment SELECT 'pay-nowhere', 'no-such-order', userId, amountMinor, currency, 'charge:no-such-order', 'failed', 'declined', updatedAt
                  FROM payment LIMIT 1;
                """),
            ("order-order.sqlite", "UPDATE orders SET status = 'cancelled', reason = 'tampered' WHERE orderId = '\(cancelled)'"),
            ("notification-notification.sqlite", """
                INSERT INTO notification (kind, subject, recipient, eventId, sentAt)
                  SELECT kind, subject, recipient, 'event-again', sentAt FROM notification WHERE kind = 'order_confirmation' AND subject = '\(notified)';
                INSERT INTO notification (kind, subject, recipient, eventId, sentAt) VALUES ('order_confirmation', '0-before-every-order', 'x', 'e1', 0),
                  ('order_confirmation', 'zz-after-every-order', 'x', 'e2', 0);
                """),
        ])
        let judged = try Self.judge(copy)
        func examples(_ invariant: String) -> [String] { judged.violations.filter { $0.invariant == invariant }.map(\.example) }
        let one = examples("confirmed-order-has-exactly-one-captured-payment")
        #expect(one.contains { $0.hasPrefix("confirmed order \(doubled) (total ") && $0.contains("has 2 captured charges")
                               && $0.hasSuffix("swishpay: \(keys[0]) captured, \(keys[0])-again captured") }, "\(one)")
        #expect(one.contains { $0.hasPrefix("confirmed order \(unrecorded) (total ") && $0.contains("has no payment record (payment's database holds none for it); swishpay's ledger has a captured charge of")
                               && $0.hasSuffix("under \(keys[1])") }, "\(one)")
        #expect(one.contains { $0 == "confirmed order \(overcharged) (total \(Money(minorUnits: totals[4]))) has 1 captured charges netting \(Money(minorUnits: totals[4] + 1)); swishpay: \(keys[4]) captured" }, "\(one)")
        #expect(one.count == 3, "\(one)")
        #expect(examples("cancelled-order-has-no-net-charge") == ["cancelled order \(cancelled) (tampered) has a net charge of \(Money(minorUnits: totals[2]))"])
        #expect(examples("no-payment-without-order") == ["payment for unknown order no-such-order", "swishpay charge \(keys[1]) has no payment record"])
        let confirmations = examples("one-confirmation-per-confirmed-order")
        #expect(confirmations.count == 4, "\(confirmations)")
        #expect(confirmations.contains { $0.hasPrefix("confirmed order \(notified) has 2 confirmation notifications (from events ") && $0.hasSuffix(", event-again)") }, "\(confirmations)")
        #expect(confirmations.contains("cancelled order \(cancelled) has 1 confirmation notifications"), "\(confirmations)")
        #expect(Array(confirmations.suffix(2)) == ["confirmation sent for unknown order 0-before-every-order", "confirmation sent for unknown order zz-after-every-order"])
        let priced = examples("order-charged-its-priced-total")
        #expect(priced.contains("confirmed order \(overcharged) priced at \(Money(minorUnits: totals[4])) was charged \(Money(minorUnits: totals[4] + 1))"), "\(priced)")
        #expect(priced.contains { $0.hasPrefix("confirmed order \(doubled) priced at ") && $0.hasSuffix("was charged \(Money(minorUnits: 2 * totals[0]))") }, "\(priced)")
        #expect(priced.contains { $0.hasPrefix("confirmed order \(unrecorded) priced at \(Money(minorUnits: totals[1])) has no payment record") }, "\(priced)")
    }
}
