import ERPCore
import ERPStorage
import ERPTransport
import GRDB

/// Read models fed only by events (the seed's "Update Sales Metrics", "Update Inventory Metrics"):
/// sales per shop, product and hour (OrderCreated, published when an order is confirmed),
/// cancellations by reason (OrderCancelled), revenue (PaymentProcessed less RefundProcessed),
/// stock levels (StockUpdated: each event's `change`, so delivery order does not matter) and the
/// low-stock history (LowStockAlert), and each device's newest status (DeviceStatusUpdated, by
/// revision). Every effect commits with its inbox row, so each event counts once.
///
/// Rebuildable: a report service that starts on an empty database (its disk lost) asks the bus
/// to replay its group from the start of the log, and the read models are built again from the
/// events; its inbox makes a replay over a model that was not lost change nothing.
public final class ReportService: RetailService, @unchecked Sendable {
    public static let name = ServiceName.report
    /// Its own read models rebuilt from the log (a replay of its group).
    public static let requests: [any RPCRequest.Type] = [ReplayGroup.self]
    public static let database: DatabaseDeclaration? = DatabaseDeclaration("report", migrations: migrations)
    public static let subscriptions = [Subscription(group: "report", patterns: [
        TopicPattern(OrderCreated.topic), TopicPattern(OrderCancelled.topic),
        TopicPattern(PaymentProcessed.topic), TopicPattern(PaymentFailed.topic), TopicPattern(RefundProcessed.topic),
        TopicPattern(InventoryReserved.topic),
        TopicPattern(StockUpdated.topic), TopicPattern(LowStockAlert.topic), TopicPattern(DeviceStatusUpdated.topic),
    ])]

    let context: ServiceContext
    let database: ServiceDatabase

    public init(context: ServiceContext) {
        self.context = context
        database = context.database
    }

    static let group = "report"

    static let migrations: [Migration] = [
        ("report-1", { db in
            try db.execute(sql: """
                CREATE TABLE sales (
                  shopId TEXT NOT NULL, productId TEXT NOT NULL, hour INTEGER NOT NULL, -- hours since the epoch
                  orders INTEGER NOT NULL, units INTEGER NOT NULL, amountMinor INTEGER NOT NULL, currency TEXT NOT NULL,
                  PRIMARY KEY (shopId, productId, hour)
                );
                CREATE TABLE order_total (
                  shopId TEXT PRIMARY KEY, orders INTEGER NOT NULL, amountMinor INTEGER NOT NULL, currency TEXT NOT NULL
                );
                CREATE TABLE cancellation (reason TEXT PRIMARY KEY, orders INTEGER NOT NULL);
                CREATE TABLE revenue (
                  kind TEXT PRIMARY KEY, -- processed | refunded
                  amountMinor INTEGER NOT NULL, currency TEXT NOT NULL
                );
                CREATE TABLE stock_level (
                  shopId TEXT NOT NULL, productId TEXT NOT NULL, available INTEGER NOT NULL, PRIMARY KEY (shopId, productId)
                );
                CREATE TABLE low_stock (
                  eventId TEXT PRIMARY KEY, shopId TEXT NOT NULL, productId TEXT NOT NULL,
                  currentStock INTEGER NOT NULL, minimumStock INTEGER NOT NULL, at INTEGER NOT NULL
                );
                CREATE TABLE device_status (
                  deviceId TEXT PRIMARY KEY, shopId TEXT NOT NULL, status TEXT NOT NULL,
                  revision INTEGER NOT NULL, updates INTEGER NOT NULL
                );
                """)
        }),
        ("report-2", { db in
            // Set once the bus has acknowledged the replay this database was built from.
            try db.execute(sql: "CREATE TABLE report_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        }),
        ("report-3", { db in
            try db.execute(sql: """
                CREATE TABLE payment_failure (reason TEXT PRIMARY KEY, payments INTEGER NOT NULL);
                CREATE TABLE reservation (
                  shopId TEXT NOT NULL, productId TEXT NOT NULL, reservations INTEGER NOT NULL, units INTEGER NOT NULL,
                  PRIMARY KEY (shopId, productId)
                );
                """)
        }),
    ]

    public func start() async throws {
        try database.write { db in
            // Stock starts where inventory's does; a restart finds the rows already there.
            for shop in context.settings.fixtures.shops {
                for line in shop.stock {
                    try db.execute(cached: "INSERT INTO stock_level (shopId, productId, available) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                                   arguments: shop.id, line.productId, line.quantity)
                }
            }
        }
        let consumer = context.consumer(group: Self.group)
        consumer.on(OrderCreated.self) { event, envelope, db in
            let hour = envelope.timestamp / 3_600_000
            for item in event.items {
                // Checked: an event from outside must not trap the report.
                let amount: Money
                do { amount = try item.lineTotal } catch {
                    throw RPCError.rejected(code: "bad_event", message: "order \(event.orderId): \(error)")
                }
                try db.accumulate("""
                    INSERT INTO sales (shopId, productId, hour, orders, units, amountMinor, currency) VALUES (?, ?, ?, 1, ?, ?, ?)
                    ON CONFLICT (shopId, productId, hour) DO UPDATE SET orders = orders + 1, units = units + excluded.units,
                      amountMinor = amountMinor + excluded.amountMinor
                    WHERE typeof(units + excluded.units) = 'integer' AND typeof(amountMinor + excluded.amountMinor) = 'integer'
                    """, arguments: event.shopId, item.productId, hour, item.quantity, amount.minorUnits, amount.currency, for: "order \(event.orderId)")
            }
            try db.accumulate("""
                INSERT INTO order_total (shopId, orders, amountMinor, currency) VALUES (?, 1, ?, ?)
                ON CONFLICT (shopId) DO UPDATE SET orders = orders + 1, amountMinor = amountMinor + excluded.amountMinor
                WHERE typeof(amountMinor + excluded.amountMinor) = 'integer'
                """, arguments: event.shopId, event.totalAmount.minorUnits, event.totalAmount.currency, for: "order \(event.orderId)")
        }
        consumer.on(OrderCancelled.self) { event, _, db in
            try db.execute(cached: """
                INSERT INTO cancellation (reason, orders) VALUES (?, 1) ON CONFLICT (reason) DO UPDATE SET orders = orders + 1
                """, arguments: event.reason)
        }
        consumer.on(PaymentProcessed.self) { event, _, db in try Self.addRevenue("processed", event.amount, "payment \(event.paymentId)", in: db) }
        consumer.on(RefundProcessed.self) { event, _, db in try Self.addRevenue("refunded", event.amount, "refund \(event.refundId)", in: db) }
        consumer.on(PaymentFailed.self) { event, _, db in
            try db.execute(cached: """
                INSERT INTO payment_failure (reason, payments) VALUES (?, 1) ON CONFLICT (reason) DO UPDATE SET payments = payments + 1
                """, arguments: event.reason)
        }
        consumer.on(InventoryReserved.self) { event, _, db in
            try db.accumulate("""
                INSERT INTO reservation (shopId, productId, reservations, units) VALUES (?, ?, 1, ?)
                ON CONFLICT (shopId, productId) DO UPDATE SET reservations = reservations + 1, units = units + excluded.units
                WHERE typeof(units + excluded.units) = 'integer'
                """, arguments: event.shopId, event.productId, event.quantity, for: "reservation of \(event.productId)")
        }
        consumer.on(StockUpdated.self) { event, _, db in
            try db.accumulate("""
                INSERT INTO stock_level (shopId, productId, available) VALUES (?, ?, ?)
                ON CONFLICT (shopId, productId) DO UPDATE SET available = available + excluded.available
                WHERE typeof(available + excluded.available) = 'integer'
                """, arguments: event.shopId, event.productId, event.change, for: "stock of \(event.productId)")
        }
        consumer.on(LowStockAlert.self) { event, envelope, db in
            try db.execute(cached: """
                INSERT INTO low_stock (eventId, shopId, productId, currentStock, minimumStock, at) VALUES (?, ?, ?, ?, ?, ?)
                ON CONFLICT DO NOTHING
                """, arguments: envelope.eventId, event.shopId, event.productId, event.currentStock, event.minimumStock,
                                envelope.timestamp)
        }
        consumer.on(DeviceStatusUpdated.self) { event, _, db in
            try db.execute(cached: """
                INSERT INTO device_status (deviceId, shopId, status, revision, updates) VALUES (?, ?, ?, ?, 1)
                ON CONFLICT (deviceId) DO UPDATE SET
                  status = CASE WHEN excluded.revision > revision THEN excluded.status ELSE status END,
                  revision = MAX(revision, excluded.revision), updates = updates + 1
                """, arguments: event.deviceId, event.shopId, event.status, event.revision.value)
        }
        consumer.start()
        let transport = context.runtime.transport
        transport.register(GetSalesReport.self) { [self] _, _ in try sales() }
        transport.register(GetInventoryReport.self) { [self] _, _ in try inventory() }
        transport.register(GetDeviceReport.self) { [self] _, _ in try devices() }
        let built = try database.read { try String.fetchOne($0, sql: "SELECT value FROM report_meta WHERE key = 'replayed'") } != nil
        if !built && !context.settings.defects.skipReportRebuild {
            context.runtime.spawn("report-rebuild") { [self] in await rebuild() }
        } else if !built {
            context.runtime.record(PlantedDefect.skipReportRebuild.acted("the report started on an empty database without replaying the log"))
        }
    }

    /// Asks the bus to replay this group from the start of the log, until it acknowledges; then
    /// records that this database was built from the log.
    private func rebuild() async {
        let runtime = context.runtime
        var attempt = 0
        while true {
            attempt += 1
            do {
                let ack = try await runtime.transport.call(ReplayGroup(group: Self.group), metadata: runtime.metadata(timeout: .seconds(2)))
                try database.write { db in
                    try db.execute(cached: "INSERT INTO report_meta (key, value) VALUES ('replayed', ?) ON CONFLICT DO NOTHING",
                                   arguments: "\(ack.queued)")
                }
                runtime.record("report rebuilt from the log: \(ack.queued) events queued")
                return
            } catch {
                runtime.record("report rebuild try \(attempt) failed (\(error))")
                await runtime.sleep(for: runtime.random.fullJitterBackoff(attempt: attempt, initial: .milliseconds(200), max: .seconds(3)))
            }
        }
    }

    private static func addRevenue(_ kind: String, _ amount: Money, _ what: @autoclosure () -> String, in db: Database) throws {
        try db.accumulate("""
            INSERT INTO revenue (kind, amountMinor, currency) VALUES (?, ?, ?)
            ON CONFLICT (kind) DO UPDATE SET amountMinor = amountMinor + excluded.amountMinor
            WHERE typeof(amountMinor + excluded.amountMinor) = 'integer'
            """, arguments: kind, amount.minorUnits, amount.currency, for: what())
    }

    func sales() throws -> SalesReport {
        try storage {
            try database.read { db in
                let lines = try SQLRow.fetchAll(db, cached: """
                    SELECT shopId, productId, SUM(orders) AS orders, SUM(units) AS units, SUM(amountMinor) AS amount, currency
                    FROM sales GROUP BY shopId, productId, currency ORDER BY shopId, productId
                    """).map {
                    // Read with throwing decodes: a value the report cannot read is an error answered, never a trap.
                    SalesReport.Line(shopId: try $0.decode(forColumn: "shopId"), productId: try $0.decode(forColumn: "productId"),
                                     orders: try $0.decode(forColumn: "orders"), units: try $0.decode(forColumn: "units"),
                                     amount: Money(minorUnits: try $0.decode(forColumn: "amount"), currency: try $0.decode(forColumn: "currency")))
                }
                let shops = try SQLRow.fetchAll(db, cached: "SELECT shopId, orders, amountMinor, currency FROM order_total ORDER BY shopId").map {
                    SalesReport.ShopTotal(shopId: try $0.decode(forColumn: "shopId"), orders: try $0.decode(forColumn: "orders"),
                                          amount: Money(minorUnits: try $0.decode(forColumn: "amountMinor"), currency: try $0.decode(forColumn: "currency")))
                }
                let cancellations = try SQLRow.fetchAll(db, cached: "SELECT reason, orders FROM cancellation ORDER BY reason").map {
                    SalesReport.Cancellations(reason: try $0.decode(forColumn: "reason"), orders: try $0.decode(forColumn: "orders"))
                }
                func revenue(_ kind: String) throws -> Money {
                    guard let row = try SQLRow.fetchOne(db, cached: "SELECT amountMinor, currency FROM revenue WHERE kind = ?", arguments: kind) else {
                        return .zero()
                    }
                    return Money(minorUnits: try row.decode(forColumn: "amountMinor"), currency: try row.decode(forColumn: "currency"))
                }
                let failures = try SQLRow.fetchAll(db, cached: "SELECT reason, payments FROM payment_failure ORDER BY reason").map {
                    SalesReport.Cancellations(reason: try $0.decode(forColumn: "reason"), orders: try $0.decode(forColumn: "payments"))
                }
                return SalesReport(lines: lines, shops: shops, cancellations: cancellations,
                                   paymentsProcessed: try revenue("processed"), refunds: try revenue("refunded"), paymentFailures: failures)
            }
        }
    }

    func inventory() throws -> InventoryReport {
        try storage {
            try database.read { db in
                InventoryReport(
                    levels: try SQLRow.fetchAll(db, cached: "SELECT shopId, productId, available FROM stock_level ORDER BY shopId, productId").map {
                        InventoryReport.Level(shopId: try $0.decode(forColumn: "shopId"), productId: try $0.decode(forColumn: "productId"),
                                              available: try $0.decode(forColumn: "available"))
                    },
                    lowStock: try SQLRow.fetchAll(db, cached: "SELECT * FROM low_stock ORDER BY at, eventId").map {
                        InventoryReport.LowStock(shopId: try $0.decode(forColumn: "shopId"), productId: try $0.decode(forColumn: "productId"),
                                                 currentStock: try $0.decode(forColumn: "currentStock"),
                                                 minimumStock: try $0.decode(forColumn: "minimumStock"), at: try $0.decode(forColumn: "at"))
                    })
            }
        }
    }

    func devices() throws -> DeviceReport {
        try storage {
            try database.read { db in
                DeviceReport(devices: try SQLRow.fetchAll(db, cached: "SELECT * FROM device_status ORDER BY deviceId").map {
                    DeviceReport.Line(deviceId: try $0.decode(forColumn: "deviceId"), shopId: try $0.decode(forColumn: "shopId"),
                                      status: DeviceStatus(rawValue: try $0.decode(forColumn: "status")) ?? .offline,
                                      revision: DeviceRevision(value: try $0.decode(forColumn: "revision")), updates: try $0.decode(forColumn: "updates"))
                })
            }
        }
    }
}
