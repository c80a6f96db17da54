import ERPCore
import ERPReports
import ERPServices
import Foundation
import GRDB

/// Judges a finished run from outside the system: it reads the services' databases and the
/// client's history, never asks a service whether it was right, and gives a counter-example for
/// every invariant that does not hold.
public struct ConsistencyChecker {
    let databaseDirectory: String
    let history: [ClientRecord]
    /// What each device saw; empty when the run had no device workload (then device status is
    /// not judged).
    public var devices: [DeviceRecord] = []
    /// What the vending client saw; empty when the run had no vends.
    public var vends: [VendRecord] = []
    /// Whether the services may run on for longer than the devices' silence allowance after the
    /// devices' last reports (real processes: the heal phase lasts as long as its orders need,
    /// then every process reports; an overloaded gateway lets reports expire). Then a device the
    /// gateway declared offline for a silence (its `silent` flag) is not a fault. In simulation the
    /// run ends within the allowance, and any such declaration is.
    public var devicesMayFallQuietBeforeTheEnd = false
    /// The clock skews the run's faults set: timestamps two services wrote on their own clocks are
    /// compared on true time (event hops, device-status propagation).
    public var clockSkews = ClockSkews()
    /// The fixtures the run's services were seeded from (its `fixturesForRun`): each stock row's
    /// `initial` must be what they stocked. Nil: not judged (a checker given only databases).
    public var fixtures: Fixtures?

    public init(databaseDirectory: String, history: [ClientRecord]) {
        self.databaseDirectory = databaseDirectory
        self.history = history
    }

    /// Every invariant the checker knows, in report order.
    public static let invariantNames = [
        "databases-intact",
        "stock-conservation",
        "every-accepted-order-terminal-after-heal",
        "confirmed-order-has-exactly-one-captured-payment",
        "cancelled-order-has-no-net-charge",
        "no-payment-without-order",
        "confirmed-order-stock-taken-cancelled-order-stock-released",
        "one-confirmation-per-confirmed-order",
        "client-outcome-matches-order",
        "every-event-delivered-after-heal",
        "product-availability-follows-stock",
        "device-status-converges",
        "report-converges",
        "every-restock-applied-once",
        "every-event-applied-once",
        "order-charged-its-priced-total",
        "every-vend-sold-once",
    ]

    /// The invariants about orders taken and what their clients were told: not judged in a run
    /// that sent none and took none (whether a payment, a confirmation or stock moved without an
    /// order still is).
    static let orderInvariants = [
        "every-accepted-order-terminal-after-heal", "confirmed-order-has-exactly-one-captured-payment",
        "cancelled-order-has-no-net-charge", "confirmed-order-stock-taken-cancelled-order-stock-released",
        "client-outcome-matches-order", "order-charged-its-priced-total",
    ]

    /// The path of `service`'s database in this run, where the catalogue says it keeps it.
    func path(of service: ServiceName) -> String {
        guard let file = ServiceCatalog.databaseFileName(of: service) else { preconditionFailure("\(service) keeps no database") }
        return databaseDirectory + "/" + file
    }

    func open(_ service: ServiceName) throws -> DatabaseQueue {
        try Self.openReadOnly(path: path(of: service))
    }

    /// A read-only connection to a service's database file (the checker's, and the runner's while
    /// it waits for the services to settle). A lock held by a process still letting go of the file
    /// is waited for, up to `lockWaitMax`, rather than failing the check with SQLITE_BUSY.
    static func openReadOnly(path: String) throws -> DatabaseQueue {
        var configuration = Configuration()
        configuration.readonly = true
        configuration.busyMode = .timeout(lockWaitMax)
        return try DatabaseQueue(path: path, configuration: configuration)
    }

    /// How long a read waits for a lock on a service's database, in seconds.
    static let lockWaitMax: TimeInterval = 5

    /// Each service database of the run that SQLite cannot open, or whose `PRAGMA quick_check`
    /// finds damage, with what is wrong.
    func damagedDatabases() -> [String] {
        var damaged: [String] = []
        for (service, file) in ServiceCatalog.databaseFiles {
            let path = databaseDirectory + "/" + file
            guard FileManager.default.fileExists(atPath: path) else { continue }
            do {
                let problems = try open(service).read { try String.fetchAll($0, sql: "PRAGMA quick_check") }
                if problems != ["ok"] { damaged.append("\(service) database \(file): " + problems.prefix(3).joined(separator: "; ")) }
            } catch {
                damaged.append("\(service) database \(file): \(error)")
            }
        }
        return damaged
    }

    public func check(into summary: inout RunSummary) throws {
        // A database SQLite cannot read (a power loss under a service that does not sync) says
        // so, and nothing else can be judged from it.
        let damaged = damagedDatabases()
        guard damaged.isEmpty else {
            summary.invariants["databases-intact"] = .fail
            for example in damaged { summary.violations.append(.init(invariant: "databases-intact", example: example)) }
            summary.violationCounts = ["databases-intact": damaged.count]
            // What the client saw is known whatever the disks hold; what the databases hold is
            // not judged, and the summary says so (`countsNotJudged`) beside the zeros.
            summary.orders.submitted = history.count
            summary.orders.clientGaveUp = history.filter { $0.outcome == .gaveUp }.count
            summary.orders.refused = history.filter { $0.outcome == .refused }.count
            summary.vends.submitted = vends.count
            summary.vends.clientGaveUp = vends.filter { $0.outcome == .gaveUp }.count
            summary.countsNotJudged = RunSummary.notJudgedForDamage
            return
        }
        summary.invariants["databases-intact"] = .pass
        var violations: [String: [String]] = [:]
        func violate(_ invariant: String, _ example: String) { violations[invariant, default: []].append(example) }
        // Violations counted in SQL beyond the examples read (the bus's undelivered events).
        var beyondExamples: [String: Int] = [:]

        // Orders: the source of truth of what was accepted. Their ids and statuses are kept packed,
        // sorted by id, for the walks and lookups below; the rest is counted as it is read.
        var statusById = OrdersById()
        (summary.orders.confirmed, summary.orders.cancelled, summary.orders.pending, summary.orders.cancelReasons) = (0, 0, 0, [:])
        try open(.order).read { db in
            try Row.fetchCursor(db, sql: "SELECT orderId, status, reason FROM orders ORDER BY orderId").forEach { row in
                let id: String = row["orderId"], status: String = row["status"]
                statusById.append(id: id, status: status)
                switch status {
                case "confirmed": summary.orders.confirmed += 1
                case "cancelled":
                    summary.orders.cancelled += 1
                    summary.orders.cancelReasons[row["reason"] ?? "unknown", default: 0] += 1
                case "pending":
                    summary.orders.pending += 1
                    violate("every-accepted-order-terminal-after-heal", "order \(id) is still pending after the heal phase")
                default: break
                }
            }
        }
        statusById.sortIfNeeded()
        summary.orders.submitted = history.count
        summary.orders.accepted = statusById.count
        summary.orders.clientGaveUp = history.filter { $0.outcome == .gaveUp }.count
        summary.orders.refused = history.filter { $0.outcome == .refused }.count

        // Stock.
        let stock = try open(.inventory)
        try stock.read { db in
            for row in try Row.fetchAll(db, sql: "SELECT * FROM stock ORDER BY shopId, productId") {
                let initial: Int = row["initial"], restocked: Int = row["restocked"]
                let available: Int = row["available"], reserved: Int = row["reserved"], sold: Int = row["sold"]
                if initial + restocked != available + reserved + sold || available < 0 || reserved < 0 || sold < 0 {
                    violate("stock-conservation", "\(row["shopId"] as String)/\(row["productId"] as String): initial \(initial) + restocked \(restocked) ≠ available \(available) + reserved \(reserved) + sold \(sold)")
                }
            }
            // What each row started from is what the run's fixtures stocked, and no row is from
            // nowhere: `initial` was taken from the row it checks, so 5 units added to a row's
            // initial and available went unseen (a trial).
            if let fixtures {
                var stocked: [String: Int] = [:]
                for shop in fixtures.shops { for line in shop.stock { stocked[shop.id + "/" + line.productId, default: 0] += line.quantity } }
                var seen = Set<String>()
                for row in try Row.fetchAll(db, sql: "SELECT shopId || '/' || productId AS k, initial FROM stock ORDER BY shopId, productId") {
                    let key: String = row["k"], initial: Int = row["initial"]
                    seen.insert(key)
                    if let quantity = stocked[key] {
                        if initial != quantity { violate("stock-conservation", "\(key): initial \(initial), but the fixtures stocked \(quantity)") }
                    } else {
                        violate("stock-conservation", "\(key): a stock row (initial \(initial)) the fixtures never stocked")
                    }
                }
                for key in stocked.keys.sorted() where !seen.contains(key) {
                    violate("stock-conservation", "\(key): stocked by the fixtures (\(stocked[key]!)), but inventory has no row")
                }
            }
            // Sold units are the committed orders' and the vends' (sales), nothing else. Each side
            // is summed in one pass and joined to the stock rows: a sum per stock row scanned every
            // reservation line once per row: 1.66 s for 60 rows and 194,016 lines, against 0.5 s
            // (2026-12-08), and growing with the rows times the lines, where this grows with each.
            for row in try Row.fetchAll(db, sql: """
                SELECT s.shopId AS shopId, s.productId AS productId, s.sold AS sold, COALESCE(o.quantity, 0) AS ordered, COALESCE(v.quantity, 0) AS vended
                FROM stock s
                LEFT JOIN (SELECT r.shopId AS shopId, l.productId AS productId, SUM(l.quantity) AS quantity
                           FROM reservation_line l JOIN reservation r ON r.orderId = l.orderId
                           WHERE r.status = 'committed' GROUP BY r.shopId, l.productId) o ON o.shopId = s.shopId AND o.productId = s.productId
                LEFT JOIN (SELECT shopId, productId, SUM(quantity) AS quantity FROM sale WHERE status = 'sold' GROUP BY shopId, productId) v
                  ON v.shopId = s.shopId AND v.productId = s.productId
                ORDER BY s.shopId, s.productId
                """) where (row["sold"] as Int) != (row["ordered"] as Int) + (row["vended"] as Int) {
                violate("stock-conservation", "\(row["shopId"] as String)/\(row["productId"] as String): sold \(row["sold"] as Int) ≠ committed orders \(row["ordered"] as Int) + vends \(row["vended"] as Int)")
            }
            // Both lists in orderId (byte) order: walked side by side, no map of a million entries.
            let reservations = try Row.fetchCursor(db, sql: "SELECT orderId, status FROM reservation ORDER BY orderId")
            var reservation: (id: String, status: String)?
            func next() throws -> (id: String, status: String)? {
                guard let row = try reservations.next() else { return nil }
                return (row["orderId"], row["status"])
            }
            reservation = try next()
            for index in 0..<statusById.count {
                let order = (id: statusById.id(at: index), status: statusById.status(at: index))
                while let r = reservation, OrdersById.precedes(r.id, order.id) { reservation = try next() }
                let status = reservation.flatMap { $0.id == order.id ? $0.status : nil }
                if order.status == "confirmed", status != "committed" {
                    violate("confirmed-order-stock-taken-cancelled-order-stock-released", "confirmed order \(order.id) has reservation \(status ?? "none"), not committed")
                }
                if order.status == "cancelled", status == "reserved" || status == "committed" {
                    violate("confirmed-order-stock-taken-cancelled-order-stock-released", "cancelled order \(order.id) still holds stock (reservation \(status!))")
                }
            }
        }

        // Each confirmed order took what it ordered: its committed reservation is in the order's shop
        // and holds its items, unit for unit. A trial took 2 units for an order of 1 (sold and the
        // read models made to match) and every invariant held: `sold` was compared with the
        // reservation lines only, never the lines with the orders.
        try stock.inDatabase { db in
            try db.execute(sql: "ATTACH DATABASE ? AS ord", arguments: [path(of: .order)])
            defer { try? db.execute(sql: "DETACH DATABASE ord") }
            try Row.fetchCursor(db, sql: """
                SELECT o.orderId AS id, o.shopId AS ordered, r.shopId AS taken FROM ord.orders o JOIN main.reservation r ON r.orderId = o.orderId
                WHERE o.status = 'confirmed' AND r.status = 'committed' AND r.shopId != o.shopId ORDER BY o.orderId
                """).forEach { row in
                violate("confirmed-order-stock-taken-cancelled-order-stock-released",
                        "confirmed order \(row["id"] as String) is for \(row["ordered"] as String), but its stock was taken in \(row["taken"] as String)")
            }
            try Row.fetchCursor(db, sql: """
                WITH ordered AS (
                  SELECT o.orderId AS orderId, json_extract(j.value, '$.productId') AS productId, SUM(json_extract(j.value, '$.quantity')) AS qty
                  FROM ord.orders o JOIN main.reservation r ON r.orderId = o.orderId, json_each(o.items) j
                  WHERE o.status = 'confirmed' AND r.status = 'committed' GROUP BY 1, 2),
                taken AS (
                  SELECT l.orderId AS orderId, l.productId AS productId, SUM(l.quantity) AS qty
                  FROM main.reservation_line l JOIN main.reservation r ON r.orderId = l.orderId JOIN ord.orders o ON o.orderId = l.orderId
                  WHERE r.status = 'committed' AND o.status = 'confirmed' GROUP BY 1, 2)
                SELECT a.orderId AS id, a.productId AS product, a.qty AS ordered, t.qty AS taken
                  FROM ordered a LEFT JOIN taken t ON t.orderId = a.orderId AND t.productId = a.productId WHERE t.qty IS NOT a.qty
                UNION ALL
                SELECT t.orderId, t.productId, NULL, t.qty FROM taken t
                  WHERE NOT EXISTS (SELECT 1 FROM ordered a WHERE a.orderId = t.orderId AND a.productId = t.productId)
                ORDER BY 1, 2
                """).forEach { row in
                let ordered: Int? = row["ordered"], taken: Int? = row["taken"]
                violate("confirmed-order-stock-taken-cancelled-order-stock-released",
                        "confirmed order \(row["id"] as String) ordered \(ordered ?? 0) × \(row["product"] as String), its reservation took \(taken ?? 0)")
            }
        }

        // The catalogue's availability: built only from StockUpdated events, it must end equal to
        // inventory's available units (every event applied once, whatever the delivery order).
        // A topology without the product service has nothing to judge here.
        let hasProductService = FileManager.default.fileExists(atPath: path(of: .product))
        if hasProductService {
            let available: [String: Int] = try stock.read { db in
                var out: [String: Int] = [:]
                for row in try Row.fetchAll(db, sql: "SELECT shopId, productId, available FROM stock ORDER BY shopId, productId") {
                    out[(row["shopId"] as String) + "/" + (row["productId"] as String)] = row["available"]
                }
                return out
            }
            let units: [String: Int] = try open(.product).read { db in
                var out: [String: Int] = [:]
                for row in try Row.fetchAll(db, sql: "SELECT shopId, productId, units FROM availability ORDER BY shopId, productId") {
                    out[(row["shopId"] as String) + "/" + (row["productId"] as String)] = row["units"]
                }
                return out
            }
            for key in Set(available.keys).union(units.keys).sorted() where available[key] != units[key] {
                violate("product-availability-follows-stock",
                        "\(key): inventory has \(available[key].map(String.init) ?? "no row") available, the catalogue counts \(units[key].map(String.init) ?? "no row")")
            }
        }

        // Money and notifications, compared in SQL with the databases attached, order by order:
        // a million orders' charges, payments and confirmations must not all be held at once.
        try checkMoney(violate)
        try checkConfirmations(orders: statusById, violate)

        // What the client was told must be what happened.
        for record in history {
            guard let orderId = record.orderId, record.outcome == .confirmed || record.outcome == .cancelled else { continue }
            guard let status = statusById[orderId] else {
                violate("client-outcome-matches-order", "client \(record.requestKey) was told \(record.outcome.rawValue) for unknown order \(orderId)")
                continue
            }
            if status != record.outcome.rawValue {
                violate("client-outcome-matches-order", "client \(record.requestKey) was told \(record.outcome.rawValue); order \(orderId) is \(status)")
            }
        }

        if hasProductService { try checkPricing(into: &summary, violate) }
        if FileManager.default.fileExists(atPath: path(of: .vmService)) { try checkVends(into: &summary, violate) }

        // The bus: after heal every delivery is acknowledged.
        try open(.eventBus).read { db in
            summary.deadLetters = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM delivery WHERE status = 'dead'") ?? 0
            let undelivered = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM delivery WHERE status != 'acked'") ?? 0
            let rows = try Row.fetchAll(db, sql: """
                SELECT d.consumerGroup AS g, d.status AS s, e.eventId AS id, e.topic AS t, d.attempts AS a FROM delivery d JOIN event e ON e.seq = d.seq
                WHERE d.status != 'acked' ORDER BY d.seq LIMIT 20
                """)
            // Each group's first example says how the group stands: deliveries never attempted
            // mean it fell behind (more arrived than it took before the end: a million-order run's
            // report group, 177,209 of them), retried ones that it fails, dead ones that it gave up.
            var groups: [String: (all: Int, fresh: Int, retried: Int, dead: Int)] = [:]
            if undelivered > 0 {
                for row in try Row.fetchAll(db, sql: """
                    SELECT consumerGroup AS g, COUNT(*) AS n,
                      SUM(status = 'pending' AND attempts = 0) AS fresh, SUM(status = 'pending' AND attempts > 0) AS retried,
                      SUM(status = 'dead') AS dead
                    FROM delivery GROUP BY consumerGroup ORDER BY consumerGroup
                    """) {
                    groups[row["g"]] = (row["n"], row["fresh"], row["retried"], row["dead"])
                }
            }
            var described: Set<String> = []
            for row in rows {
                let group: String = row["g"]
                var line = "\(row["t"] as String) \(row["id"] as String) to \(group) is \(row["s"] as String) after \(row["a"] as Int) attempts"
                if let g = groups[group], described.insert(group).inserted {
                    line += "; \(group) has \(g.fresh + g.retried + g.dead) of its \(g.all) deliveries unacknowledged: \(g.fresh) never attempted"
                        + (g.fresh > 0 ? " (it fell behind: more arrived than it took before the end)" : "")
                        + ", \(g.retried) pending after failed attempts, \(g.dead) dead-lettered"
                }
                violate("every-event-delivered-after-heal", line)
            }
            if undelivered > rows.count { beyondExamples["every-event-delivered-after-heal"] = undelivered - rows.count }
        }

        try checkEventsApplied(into: &summary, violate)

        if !devices.isEmpty {
            // The device-status flow: the IoT gateway took the report (`lastSeen`) → the shop
            // applied it, by RPC or by event (ms; each side's clock, taken back to true time where
            // a fault skewed it).
            var propagation = LatencyRecorder()
            for row in try open(.shop).read({ try Row.fetchAll($0, sql: "SELECT lastSeen, appliedAt FROM device_history WHERE appliedAt IS NOT NULL AND lastSeen > 0") }) {
                let took = clockSkews.elapsed(from: row["lastSeen"], on: ServiceName.iotGateway.rawValue, to: row["appliedAt"], on: ServiceName.shop.rawValue)
                propagation.record(.milliseconds(max(0, took)))
            }
            if propagation.count > 0 { summary.latency["deviceStatusPropagation"] = propagation.summary }
            try checkDevices(violate)
            try checkRestocks(violate)
        }
        let hasReportService = FileManager.default.fileExists(atPath: path(of: .report))
        if hasReportService { try checkReport(violate) }

        // What a run cannot show is not judged: no product or report service, no devices.
        var notJudged: [String] = []
        if !hasProductService { notJudged += ["product-availability-follows-stock", "order-charged-its-priced-total"] }
        if devices.isEmpty { notJudged += ["device-status-converges", "every-restock-applied-once"] }
        if !hasReportService { notJudged.append("report-converges") }
        if vends.isEmpty { notJudged.append("every-vend-sold-once") }
        // No order sent and none taken: nothing the order invariants speak of happened, and a run
        // with a rate of 0 passed them all, green (a scenario author's trial).
        if history.isEmpty && statusById.isEmpty { notJudged += Self.orderInvariants }
        var counts: [String: Int] = [:]
        for name in Self.invariantNames where !notJudged.contains(name) && name != "databases-intact" {
            let examples = violations[name] ?? []
            summary.invariants[name] = examples.isEmpty ? .pass : .fail
            for example in examples.prefix(RunSummary.examplesPerInvariantMax) { summary.violations.append(.init(invariant: name, example: example)) }
            if !examples.isEmpty { counts[name] = examples.count + (beyondExamples[name] ?? 0) }
        }
        summary.violationCounts = counts   // present, empty, when nothing failed: the same keys in every summary
    }

    /// Payment's database with order's (`ord`) and swishpay's (`sp`) attached: the checks that
    /// follow an order to its payment records and their charges do it in SQL, row by row.
    func withLedger<T>(_ body: (Database) throws -> T) throws -> T {
        try open(.payment).inDatabase { db in
            try db.execute(sql: "ATTACH DATABASE ? AS ord", arguments: [path(of: .order)])
            defer { try? db.execute(sql: "DETACH DATABASE ord") }
            try db.execute(sql: "ATTACH DATABASE ? AS sp", arguments: [path(of: .swishpay)])
            defer { try? db.execute(sql: "DETACH DATABASE sp") }
            return try body(db)
        }
    }

    /// Why an order's charges cannot be read, when it has no payment record: the ledger is read
    /// through payment's records, and a counter-example that said "0 captured charges" for an
    /// order swishpay had charged (payment's disk lost) sent a scenario author after a charge
    /// that never failed. Swishpay's charge under the order's usual key is named when there is
    /// one. Needs `withLedger`'s attachments.
    static func withoutPaymentRecord(_ orderId: String, in db: Database) throws -> String {
        let key = PaymentService.chargeKey(orderId)
        let charge = try Row.fetchOne(db, sql: "SELECT status, amountMinor FROM sp.charge WHERE chargeKey = ?", arguments: [key])
        let ledger = charge.map { "; swishpay's ledger has a \($0["status"] as String) charge of \(Money(minorUnits: $0["amountMinor"])) under \(key)" } ?? ""
        return "has no payment record (payment's database holds none for it)\(ledger)"
    }

    /// Money: the provider's ledger is what customers were charged. Every payment is for an order
    /// and every charge that took money has a payment record; a confirmed order has exactly one
    /// captured charge of its total, a cancelled one nets nothing.
    func checkMoney(_ violate: (String, String) -> Void) throws {
        struct Wrong { var id: String; var status: String; var reason: String?; var total: Int64; var records: Int; var captured: Int; var net: Int64 }
        try withLedger { db in
            try Row.fetchCursor(db, sql: """
                SELECT p.orderId AS id FROM main.payment p WHERE NOT EXISTS (SELECT 1 FROM ord.orders o WHERE o.orderId = p.orderId)
                ORDER BY p.paymentId
                """).forEach { violate("no-payment-without-order", "payment for unknown order \($0["id"] as String)") }
            // A join, not NOT EXISTS: payment has no index on chargeKey, and SQLite builds one
            // for the join's inner loop (a million charges would otherwise scan a million payments each).
            try Row.fetchCursor(db, sql: """
                SELECT c.chargeKey AS k FROM sp.charge c LEFT JOIN main.payment p ON p.chargeKey = c.chargeKey
                WHERE c.status IN ('captured', 'refunded') AND p.chargeKey IS NULL ORDER BY c.chargeKey
                """).forEach { violate("no-payment-without-order", "swishpay charge \($0["k"] as String) has no payment record") }
            // Each order with what its payment records' charges captured; only the wrong ones leave SQLite.
            let wrong = try Row.fetchAll(db, sql: """
                SELECT o.orderId AS id, o.status AS status, o.reason AS reason, o.totalMinor AS total, COUNT(p.orderId) AS records,
                  COUNT(CASE WHEN c.status = 'captured' THEN 1 END) AS captured,
                  COALESCE(SUM(CASE WHEN c.status = 'captured' THEN c.amountMinor END), 0) AS net
                FROM ord.orders o LEFT JOIN main.payment p ON p.orderId = o.orderId LEFT JOIN sp.charge c ON c.chargeKey = p.chargeKey
                WHERE o.status IN ('confirmed', 'cancelled')
                GROUP BY o.orderId
                HAVING (o.status = 'confirmed' AND (captured != 1 OR net != o.totalMinor)) OR (o.status = 'cancelled' AND net != 0)
                ORDER BY o.orderId
                """).map { Wrong(id: $0["id"], status: $0["status"], reason: $0["reason"], total: $0["total"], records: $0["records"], captured: $0["captured"], net: $0["net"]) }
            for order in wrong {
                if order.status == "cancelled" {
                    violate("cancelled-order-has-no-net-charge", "cancelled order \(order.id) (\(order.reason ?? "")) has a net charge of \(Money(minorUnits: order.net))")
                    continue
                }
                // The order's charges by key and state, so that the example says a charge was
                // declined, or which two keys charged twice (a report reader's trial needed SQL
                // for both).
                let why: String
                if order.records == 0 {
                    why = try Self.withoutPaymentRecord(order.id, in: db)
                } else {
                    let ledger = try Row.fetchAll(db, sql: """
                        SELECT p.chargeKey AS k, c.status AS s FROM main.payment p LEFT JOIN sp.charge c ON c.chargeKey = p.chargeKey
                        WHERE p.orderId = ? ORDER BY p.paymentId
                        """, arguments: [order.id]).map { "\($0["k"] as String) \($0["s"] as String? ?? "not in swishpay's ledger")" }
                    why = "has \(order.captured) captured charges netting \(Money(minorUnits: order.net)); swishpay: \(ledger.joined(separator: ", "))"
                }
                violate("confirmed-order-has-exactly-one-captured-payment", "confirmed order \(order.id) (total \(Money(minorUnits: order.total))) " + why)
            }
        }
    }

    /// Notifications: one confirmation per confirmed order, none for the others, none for an
    /// order that does not exist. The confirmations counted by order in SQL and walked beside
    /// the orders (both in byte order), as the reservations are.
    func checkConfirmations(orders: OrdersById, _ violate: (String, String) -> Void) throws {
        let name = "one-confirmation-per-confirmed-order"
        try open(.notification).read { db in
            let counts = try Row.fetchCursor(db, sql: """
                SELECT subject, COUNT(*) AS n FROM notification WHERE kind = 'order_confirmation' GROUP BY subject ORDER BY subject
                """)
            func next() throws -> (subject: String, n: Int)? { try counts.next().map { ($0["subject"], $0["n"]) } }
            var count = try next()
            var wrong: [(order: (id: String, status: String), n: Int)] = [], unknown: [String] = []
            for index in 0..<orders.count {
                let order = (id: orders.id(at: index), status: orders.status(at: index))
                while let c = count, OrdersById.precedes(c.subject, order.id) { unknown.append(c.subject); count = try next() }
                var n = 0
                if let c = count, c.subject == order.id { n = c.n; count = try next() }
                if n != (order.status == "confirmed" ? 1 : 0) { wrong.append((order, n)) }
            }
            while let c = count { unknown.append(c.subject); count = try next() }
            for (order, n) in wrong {
                // More than one: from which events (one event applied twice, or two events).
                let events = n > 1 ? try String.fetchAll(db, sql: """
                    SELECT eventId FROM notification WHERE kind = 'order_confirmation' AND subject = ? ORDER BY id
                    """, arguments: [order.id]) : []
                violate(name, "\(order.status) order \(order.id) has \(n) confirmation notifications"
                        + (events.isEmpty ? "" : " (from events \(events.joined(separator: ", ")))"))
            }
            for subject in unknown { violate(name, "confirmation sent for unknown order \(subject)") }
        }
    }

    /// Each order's lines are at their list price or at the price of the campaign they name (a
    /// campaign that exists and covers the product), its total is their sum, and a confirmed
    /// order was charged exactly that total. Counts orders by how they were priced.
    func checkPricing(into summary: inout RunSummary, _ violate: (String, String) -> Void) throws {
        let name = "order-charged-its-priced-total"
        var list: [String: Int64] = [:]
        for row in try open(.product).read({ try Row.fetchAll($0, sql: "SELECT productId, priceMinor FROM product") }) {
            list[row["productId"]] = row["priceMinor"]
        }
        var discounts: [String: Int] = [:]   // "campaignId/productId" → percent off
        if FileManager.default.fileExists(atPath: path(of: .campaign)) {
            for row in try open(.campaign).read({ try Row.fetchAll($0, sql: """
                SELECT p.campaignId || '/' || p.productId AS k, c.percentOff AS off FROM campaign_product p JOIN campaign c ON c.campaignId = p.campaignId
                """) }) {
                discounts[row["k"]] = row["off"]
            }
        }
        // A confirmed order's captured charges, through its payment records.
        try withLedger { db in try Row.fetchCursor(db, sql: """
            SELECT o.orderId AS orderId, o.items AS items, o.totalMinor AS totalMinor, o.pricing AS pricing, o.status = 'confirmed' AS confirmed,
              CASE WHEN o.status = 'confirmed' THEN (SELECT COUNT(*) FROM main.payment p WHERE p.orderId = o.orderId) END AS records,
              CASE WHEN o.status = 'confirmed' THEN (SELECT COALESCE(SUM(c.amountMinor), 0) FROM main.payment p JOIN sp.charge c ON c.chargeKey = p.chargeKey
                                                   WHERE p.orderId = o.orderId AND c.status = 'captured') END AS charged
            FROM ord.orders o ORDER BY o.orderId
            """).forEach { row in
            let orderId: String = row["orderId"], totalMinor: Int64 = row["totalMinor"]
            summary.store.pricing[row["pricing"] ?? "list", default: 0] += 1
            let items = try JSONCoding.decode([OrderItem].self, from: row["items"] as String)
            var sum: Int64 = 0
            for item in items {
                sum += item.unitPrice.minorUnits * Int64(item.quantity)
                guard let listPrice = list[item.productId] else {
                    violate(name, "order \(orderId): \(item.productId) is not in the catalogue")
                    continue
                }
                let expected: Int64
                if let campaignId = item.campaignId {
                    guard let off = discounts[campaignId + "/" + item.productId] else {
                        violate(name, "order \(orderId): \(item.productId) is priced by campaign \(campaignId), which does not cover it")
                        continue
                    }
                    expected = Money(minorUnits: listPrice).discounted(percentOff: off).minorUnits
                } else {
                    expected = listPrice
                }
                if item.unitPrice.minorUnits != expected {
                    violate(name, "order \(orderId): \(item.productId) at \(item.unitPrice), expected \(Money(minorUnits: expected))\(item.campaignId.map { " (campaign \($0))" } ?? " (list)")")
                }
            }
            if sum != totalMinor { violate(name, "order \(orderId): lines add up to \(Money(minorUnits: sum)), the total says \(Money(minorUnits: totalMinor))") }
            if row["confirmed"] as Bool {
                let charged: Int64 = row["charged"]
                if charged != totalMinor {
                    violate(name, "confirmed order \(orderId) priced at \(Money(minorUnits: totalMinor)) "
                            + ((row["records"] as Int) == 0 ? try Self.withoutPaymentRecord(orderId, in: db) : "was charged \(Money(minorUnits: charged))"))
                }
            }
        } }
    }

    /// Each vend vm-service dispensed is one sale at inventory (same shop, product and units),
    /// each refused one sold nothing, none is pending after heal, inventory sold nothing no vend
    /// asked for, and what the client was told is what vm-service holds.
    func checkVends(into summary: inout RunSummary, _ violate: (String, String) -> Void) throws {
        let name = "every-vend-sold-once"
        struct Vended { var status: String; var shop: String; var product: String; var quantity: Int }
        var vms: [String: Vended] = [:]
        for row in try open(.vmService).read({ try Row.fetchAll($0, sql: "SELECT * FROM vend ORDER BY vendId") }) {
            vms[row["vendId"]] = Vended(status: row["status"], shop: row["shopId"], product: row["productId"], quantity: row["quantity"])
        }
        var sales: [String: Vended] = [:]
        for row in try open(.inventory).read({ try Row.fetchAll($0, sql: "SELECT * FROM sale ORDER BY saleId") }) {
            sales[row["saleId"]] = Vended(status: row["status"], shop: row["shopId"], product: row["productId"], quantity: row["quantity"])
        }
        summary.vends.submitted = vends.count
        summary.vends.dispensed = vms.values.filter { $0.status == "dispensed" }.count
        summary.vends.refused = vms.values.filter { $0.status == "refused" }.count
        summary.vends.pending = vms.values.filter { $0.status == "pending" }.count
        summary.vends.clientGaveUp = vends.filter { $0.outcome == .gaveUp }.count
        for id in vms.keys.sorted() {
            let vend = vms[id]!, sale = sales[id]
            switch vend.status {
            case "dispensed":
                if sale?.status != "sold" || sale?.quantity != vend.quantity || sale?.shop != vend.shop || sale?.product != vend.product {
                    violate(name, "vend \(id) dispensed \(vend.quantity) × \(vend.product) in \(vend.shop); inventory's sale: \(sale.map { "\($0.status) \($0.quantity) × \($0.product) in \($0.shop)" } ?? "none")")
                }
            case "refused":
                if sale?.status == "sold" { violate(name, "vend \(id) was refused but inventory sold \(sale!.quantity) × \(sale!.product)") }
            default:
                violate(name, "vend \(id) is still \(vend.status) after the heal phase")
            }
        }
        for id in sales.keys.sorted() where sales[id]!.status == "sold" && vms[id] == nil {
            violate(name, "inventory sold \(sales[id]!.quantity) × \(sales[id]!.product) for \(id), a vend vm-service does not know")
        }
        for record in vends {
            guard let held = vms[record.vendId]?.status else {
                if record.outcome == .dispensed || record.outcome == .refused {
                    violate(name, "client was told vend \(record.vendId) \(record.outcome.rawValue); vm-service has no such vend")
                }
                continue
            }
            if (record.outcome == .dispensed || record.outcome == .refused) && held != record.outcome.rawValue {
                violate(name, "client was told vend \(record.vendId) \(record.outcome.rawValue); vm-service holds \(held)")
            }
        }
    }

    /// The service that publishes events of `type` (the catalogue's declarations), nil for a type
    /// none declares.
    static func producer(of type: String) -> ServiceName? { producers[type] }

    private static let producers: [String: ServiceName] = {
        var out: [String: ServiceName] = [:]
        for service in ServiceCatalog.startOrder {
            for type in ServiceCatalog.publishedEventTypes[service] ?? [] where out[type] == nil { out[type] = service }
        }
        return out
    }()

    /// Every event the bus logged for a consumer group is in that group's inbox, once, whatever
    /// version it was written at; nothing is in an inbox that the bus never logged for the group;
    /// a dead letter is the only excuse, and it is counted; no notification is there twice for one
    /// event. Also counts the log by type and version, and times each event's hop.
    func checkEventsApplied(into summary: inout RunSummary, _ violate: (String, String) -> Void) throws {
        let name = "every-event-applied-once"
        // Compared in SQL, each consumer's database attached to the bus's, row by row: a run of a
        // million orders logs millions of events, which must not all be held in memory at once.
        let bus = try open(.eventBus)
        try bus.inDatabase { db in
            try Row.fetchCursor(db, sql: """
                SELECT eventType || ' ' || eventVersion AS v, COUNT(*) AS n FROM event GROUP BY v ORDER BY v
                """).forEach { row in summary.eventVersions[row["v"]] = row["n"] }
            for service in ServiceCatalog.startOrder {
                let subscriptions = ServiceCatalog.subscriptions(of: service)
                guard !subscriptions.isEmpty, FileManager.default.fileExists(atPath: path(of: service)) else { continue }
                try db.execute(sql: "ATTACH DATABASE ? AS consumer", arguments: [path(of: service)])
                defer { try? db.execute(sql: "DETACH DATABASE consumer") }
                for subscription in subscriptions {
                    let group = subscription.group
                    // Event hop: the producer's timestamp to the consumer's commit, per topic and
                    // group (milliseconds), each read on its own service's clock and turned back
                    // into true time where a fault skewed that clock.
                    var hops: [String: LatencyRecorder] = [:]
                    if clockSkews.isEmpty {
                        try Row.fetchCursor(db, sql: """
                            SELECT e.topic AS topic, i.appliedAt - e.producedAt AS hop
                            FROM consumer.inbox i JOIN main.event e ON e.eventId = i.eventId
                            WHERE i.consumerGroup = ?
                            """, arguments: [group]).forEach { row in
                            hops[row["topic"], default: LatencyRecorder()].record(.milliseconds(max(0, row["hop"] as Int64)))
                        }
                    } else {
                        try Row.fetchCursor(db, sql: """
                            SELECT e.topic AS topic, e.eventType AS type, e.producedAt AS produced, i.appliedAt AS applied
                            FROM consumer.inbox i JOIN main.event e ON e.eventId = i.eventId
                            WHERE i.consumerGroup = ?
                            """, arguments: [group]).forEach { row in
                            // An event of a type no service declares is taken as stamped on true time.
                            let producer = Self.producer(of: row["type"])?.rawValue ?? ""
                            let hop = clockSkews.elapsed(from: row["produced"], on: producer, to: row["applied"], on: service.rawValue)
                            hops[row["topic"], default: LatencyRecorder()].record(.milliseconds(max(0, hop)))
                        }
                    }
                    for (topic, recorder) in hops { summary.latency["hop \(topic) → \(group)"] = recorder.summary }
                    try Row.fetchCursor(db, sql: """
                        SELECT i.eventId AS id FROM consumer.inbox i
                        WHERE i.consumerGroup = ? AND NOT EXISTS (
                          SELECT 1 FROM main.event e JOIN main.delivery d ON d.seq = e.seq
                          WHERE e.eventId = i.eventId AND d.consumerGroup = ?)
                        ORDER BY i.eventId
                        """, arguments: [group, group]).forEach { row in
                        violate(name, "\(service) applied \(row["id"] as String) as \(group), an event the bus never logged for that group")
                    }
                    try Row.fetchCursor(db, sql: """
                        SELECT e.eventId AS id FROM main.delivery d JOIN main.event e ON e.seq = d.seq
                        WHERE d.consumerGroup = ? AND d.status = 'acked' AND NOT EXISTS (
                          SELECT 1 FROM consumer.inbox i WHERE i.consumerGroup = ? AND i.eventId = e.eventId)
                        ORDER BY e.eventId
                        """, arguments: [group, group]).forEach { row in
                        violate(name, "the bus holds \(row["id"] as String) as delivered to \(group), but \(service) never applied it")
                    }
                }
            }
        }
        // The inbox is bookkeeping, which a consumer that applies an event twice may still keep
        // once (`skip-inbox` passed this invariant with 471 notifications for 449 events: a
        // report reader's trial). The effects that name their event are counted too: at most
        // one notification per event (the other consumers' event-named rows are keyed on it).
        guard FileManager.default.fileExists(atPath: path(of: .notification)) else { return }
        try open(.notification).read { db in
            try Row.fetchCursor(db, sql: """
                SELECT eventId, kind, subject, COUNT(*) AS n, GROUP_CONCAT(id) AS ids FROM notification
                GROUP BY eventId HAVING n > 1 ORDER BY MIN(id)
                """).forEach { row in
                violate(name, "notification applied \(row["eventId"] as String) \(row["n"] as Int) times: \(row["kind"] as String) for \(row["subject"] as String) (notification rows \(row["ids"] as String))")
            }
        }
    }

    /// Pattern 4 after heal: the IoT gateway holds, per device, the newest report it accepted (and
    /// never less than the device saw accepted); the shop holds the same status at the same
    /// revision; a device that fell silent during the chaos phase is offline, one that kept
    /// reporting is not.
    func checkDevices(_ violate: (String, String) -> Void) throws {
        struct Held { var status: String; var revision: Int64; var lastSequence: Int64; var silent: Bool }
        let gateway: [String: Held] = try open(.iotGateway).read { db in
            var out: [String: Held] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT deviceId, status, revision, lastSequence, silent FROM device ORDER BY deviceId") {
                out[row["deviceId"]] = Held(status: row["status"], revision: row["revision"], lastSequence: row["lastSequence"], silent: row["silent"])
            }
            return out
        }
        let shop: [String: Held] = try open(.shop).read { db in
            var out: [String: Held] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT deviceId, status, revision FROM device ORDER BY deviceId") {
                out[row["deviceId"]] = Held(status: row["status"], revision: row["revision"], lastSequence: -1, silent: false)
            }
            return out
        }
        let name = "device-status-converges"
        // The shop's history: each device's applied revisions only ever grow.
        try open(.shop).read { db in
            var last: [String: Int64] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT deviceId, revision FROM device_history ORDER BY seq") {
                let id: String = row["deviceId"], revision: Int64 = row["revision"]
                if let previous = last[id], revision <= previous {
                    violate(name, "\(id): the shop applied revision \(revision) after revision \(previous) (a stale or repeated report was applied)")
                }
                last[id] = max(last[id] ?? revision, revision)
            }
        }
        for device in devices {
            let id = device.deviceId
            guard let held = gateway[id] else { violate(name, "the IoT gateway has no record of \(id)"); continue }
            if held.lastSequence < device.lastAcceptedSequence {
                violate(name, "\(id): the gateway accepted report #\(device.lastAcceptedSequence) but holds #\(held.lastSequence)")
            }
            if held.lastSequence > device.lastSentSequence {
                violate(name, "\(id): the gateway holds report #\(held.lastSequence), the device sent only up to #\(device.lastSentSequence)")
            }
            guard let inShop = shop[id] else { violate(name, "the shop has no device \(id)"); continue }
            if inShop.status != held.status || inShop.revision != held.revision {
                violate(name, "\(id): the shop holds \(inShop.status) at revision \(inShop.revision), the gateway \(held.status) at revision \(held.revision)")
            }
            if device.silentFrom != nil && device.lastAcceptedSequence >= 0 && held.status != DeviceStatus.offline.rawValue {
                violate(name, "\(id) fell silent after report #\(device.lastAcceptedSequence) but is \(held.status), not offline")
            }
            // Declared offline although it kept reporting: a fault, unless the run may outlast the
            // devices' reports and the gateway declared it for a silence that did happen (it flags
            // that, `silent`, until the device's next report).
            if device.silentFrom == nil && device.acceptedCount > 0 && held.status == DeviceStatus.offline.rawValue
                && !(devicesMayFallQuietBeforeTheEnd && held.silent) {
                violate(name, "\(id) kept reporting (last accepted #\(device.lastAcceptedSequence)) but was declared offline")
            }
        }
    }

    /// Every restock delivery the IoT gateway accepted was added to inventory exactly once: per shop
    /// and product, `restocked` equals the sum of the accepted deliveries.
    func checkRestocks(_ violate: (String, String) -> Void) throws {
        func sums(_ db: DatabaseQueue, _ sql: String) throws -> [String: Int] {
            try db.read { db in
                var out: [String: Int] = [:]
                for row in try Row.fetchAll(db, sql: sql) { out[row["k"]] = row["n"] }
                return out
            }
        }
        let delivered = try sums(try open(.iotGateway), """
            SELECT shopId || '/' || productId AS k, SUM(quantity) AS n FROM device_data WHERE dataType = 'restock' GROUP BY k
            """)
        let restocked = try sums(try open(.inventory), "SELECT shopId || '/' || productId AS k, restocked AS n FROM stock WHERE restocked != 0")
        for key in Set(delivered.keys).union(restocked.keys).sorted() where delivered[key] != restocked[key] {
            violate("every-restock-applied-once", "\(key): devices delivered \(delivered[key] ?? 0) units, inventory restocked \(restocked[key] ?? 0)")
        }
    }

    /// The report's read models, fed only by events, equal the sources of truth after heal:
    /// confirmed orders and their value per shop and the sales lines (order), cancellations by
    /// reason (order), stock levels (inventory), each device's newest status (shop).
    func checkReport(_ violate: (String, String) -> Void) throws {
        let name = "report-converges"
        let report = try open(.report)
        /// Written as the other invariants write money ("82 orders, 9252.00 SEK"), not as a
        /// Swift value in minor units beside lines in SEK (a report reader's trial).
        struct Total: Equatable, CustomStringConvertible {
            var orders: Int; var amountMinor: Int64
            var description: String { "\(orders) order\(orders == 1 ? "" : "s"), \(Money(minorUnits: amountMinor))" }
        }
        func table<Value: Equatable>(_ db: DatabaseQueue, _ sql: String, _ value: (Row) -> Value) throws -> [String: Value] {
            try db.read { db in
                var out: [String: Value] = [:]
                for row in try Row.fetchAll(db, sql: sql) { out[row["k"]] = value(row) }
                return out
            }
        }
        func compare<Value: Equatable>(_ what: String, truth: [String: Value], reported: [String: Value]) {
            for key in Set(truth.keys).union(reported.keys).sorted() where truth[key] != reported[key] {
                violate(name, "\(what) \(key): the source holds \(truth[key].map { "\($0)" } ?? "nothing"), the report \(reported[key].map { "\($0)" } ?? "nothing")")
            }
        }
        let orders = try open(.order)
        compare("confirmed orders of", truth: try table(orders, """
            SELECT shopId AS k, COUNT(*) AS n, SUM(totalMinor) AS a FROM orders WHERE status = 'confirmed' GROUP BY shopId
            """) { Total(orders: $0["n"], amountMinor: $0["a"]) },
                reported: try table(report, "SELECT shopId AS k, orders AS n, amountMinor AS a FROM order_total") {
                    Total(orders: $0["n"], amountMinor: $0["a"])
                })
        // Per shop and product, units and amount: only the totals were compared, and 1.00 SEK moved
        // from one product's sales to another's went unseen (a trial).
        struct Sold: Equatable, CustomStringConvertible {
            var units: Int; var amountMinor: Int64
            var description: String { "\(units) unit\(units == 1 ? "" : "s"), \(Money(minorUnits: amountMinor))" }
        }
        compare("sales of", truth: try table(orders, """
            SELECT o.shopId || '/' || json_extract(j.value, '$.productId') AS k, SUM(json_extract(j.value, '$.quantity')) AS u,
              SUM(json_extract(j.value, '$.quantity') * json_extract(j.value, '$.unitPrice.minorUnits')) AS a
            FROM orders o, json_each(o.items) j WHERE o.status = 'confirmed' GROUP BY k
            """) { Sold(units: $0["u"], amountMinor: $0["a"]) },
                reported: try table(report, "SELECT shopId || '/' || productId AS k, SUM(units) AS u, SUM(amountMinor) AS a FROM sales GROUP BY k") {
                    Sold(units: $0["u"], amountMinor: $0["a"])
                })
        let salesAmount = try report.read { try Int64.fetchOne($0, sql: "SELECT COALESCE(SUM(amountMinor), 0) FROM sales") ?? 0 }
        let confirmedAmount = try orders.read { try Int64.fetchOne($0, sql: "SELECT COALESCE(SUM(totalMinor), 0) FROM orders WHERE status = 'confirmed'") ?? 0 }
        if salesAmount != confirmedAmount {
            violate(name, "sales lines add up to \(Money(minorUnits: salesAmount)), confirmed orders to \(Money(minorUnits: confirmedAmount))")
        }
        // Revenue: payments processed less refunds is what the provider holds as captured.
        let revenue = try report.read { db in
            try Int64.fetchOne(db, sql: """
                SELECT COALESCE(SUM(CASE kind WHEN 'processed' THEN amountMinor ELSE -amountMinor END), 0) FROM revenue
                """) ?? 0
        }
        let captured = try open(.swishpay).read { try Int64.fetchOne($0, sql: "SELECT COALESCE(SUM(amountMinor), 0) FROM charge WHERE status = 'captured'") ?? 0 }
        if revenue != captured {
            violate(name, "revenue (payments processed less refunds) is \(Money(minorUnits: revenue)); swishpay holds \(Money(minorUnits: captured)) captured")
        }
        compare("cancellations for", truth: try table(orders, """
            SELECT COALESCE(reason, 'cancelled') AS k, COUNT(*) AS n FROM orders WHERE status = 'cancelled' GROUP BY k
            """) { $0["n"] as Int },
                reported: try table(report, "SELECT reason AS k, orders AS n FROM cancellation") { $0["n"] as Int })
        compare("stock of", truth: try table(try open(.inventory), "SELECT shopId || '/' || productId AS k, available AS n FROM stock") { $0["n"] as Int },
                reported: try table(report, "SELECT shopId || '/' || productId AS k, available AS n FROM stock_level") { $0["n"] as Int })
        if !devices.isEmpty {
            // Devices that reported: the report's newest status is the shop's.
            compare("device", truth: try table(try open(.shop), "SELECT deviceId AS k, status || ' r' || revision AS v FROM device WHERE revision >= 0") { $0["v"] as String },
                    reported: try table(report, "SELECT deviceId AS k, status || ' r' || revision AS v FROM device_status WHERE revision >= 0") { $0["v"] as String })
        }
    }
}

/// The orders' ids and statuses, sorted by id (as SQLite's `ORDER BY orderId` returns them: byte
/// order), looked up by binary search. Packed: the ids' bytes in one buffer and each status as a
/// number, so that a million orders take some 35 MB, not a String (and its allocation) per id
/// and per status beside a map.
struct OrdersById {
    private var bytes: [UInt8] = []
    /// Where each id's bytes end in `bytes`.
    private var ends: [Int] = []
    private var codes: [UInt32] = []
    private var statusNames: [String] = []
    private var codeOfStatus: [String: UInt32] = [:]

    /// SQLite's BINARY collation: byte order.
    static func precedes(_ a: String, _ b: String) -> Bool { a.utf8.lexicographicallyPrecedes(b.utf8) }

    var count: Int { ends.count }
    var isEmpty: Bool { ends.isEmpty }

    private func range(_ index: Int) -> Range<Int> { (index == 0 ? 0 : ends[index - 1])..<ends[index] }
    func id(at index: Int) -> String { String(decoding: bytes[range(index)], as: UTF8.self) }
    func status(at index: Int) -> String { statusNames[Int(codes[index])] }

    mutating func append(id: String, status: String) {
        bytes.append(contentsOf: id.utf8)
        ends.append(bytes.count)
        let code: UInt32
        if let known = codeOfStatus[status] {
            code = known
        } else {
            code = UInt32(statusNames.count)
            statusNames.append(status)
            codeOfStatus[status] = code
        }
        codes.append(code)
    }

    /// Sorts by id if the rows did not come in byte order (they do from the query; checked cheaply).
    mutating func sortIfNeeded() {
        let inOrder = count < 2 || (1..<count).allSatisfy { bytes[range($0 - 1)].lexicographicallyPrecedes(bytes[range($0)]) }
        guard !inOrder else { return }
        let order = (0..<count).sorted { bytes[range($0)].lexicographicallyPrecedes(bytes[range($1)]) }
        var sorted = OrdersById()
        for index in order { sorted.append(id: id(at: index), status: status(at: index)) }
        self = sorted
    }

    /// The status of order `id`; nil for an id not among the orders.
    subscript(id: String) -> String? {
        var key = id
        return key.withUTF8 { key in
            bytes.withUnsafeBufferPointer { all -> String? in
                var low = 0, high = count
                while low < high {
                    let mid = (low + high) / 2
                    let candidate = UnsafeBufferPointer(rebasing: all[range(mid)])
                    if candidate.elementsEqual(key) { return status(at: mid) }
                    if candidate.lexicographicallyPrecedes(key) { low = mid + 1 } else { high = mid }
                }
                return nil
            }
        }
    }
}
