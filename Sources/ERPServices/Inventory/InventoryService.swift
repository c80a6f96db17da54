import ERPCore
import ERPStorage
import ERPTransport
import GRDB

/// Stock per shop and product, and reservations per order. Conservation holds in every
/// transaction: `initial + restocked = available + reserved + sold`.
public final class InventoryService: RetailService, @unchecked Sendable {
    public static let name = ServiceName.inventory
    public static let subscriptions = [Subscription(group: "inventory", patterns: [TopicPattern(OrderCreated.topic), TopicPattern(OrderConfirmed.topic),
                                                                                   TopicPattern(DeviceDataReceived.topic),
                                                                                   TopicPattern(DeviceStatusUpdated.topic)])]
    public static let database: DatabaseDeclaration? = DatabaseDeclaration("inventory", migrations: migrations)
    public static let publishes: [any EventPayload.Type] = [StockUpdated.self, InventoryReserved.self, LowStockAlert.self]

    let context: ServiceContext
    let runtime: any Runtime
    let settings: ServiceSettings
    let database: ServiceDatabase
    let relay: OutboxRelay

    public init(context: ServiceContext) {
        self.context = context
        runtime = context.runtime
        settings = context.settings
        database = context.database
        relay = context.relay!
    }

    static let migrations: [Migration] = [
        ("inventory-1", { db in
            try db.execute(sql: """
                CREATE TABLE stock (
                  shopId TEXT NOT NULL, productId TEXT NOT NULL,
                  initial INTEGER NOT NULL, restocked INTEGER NOT NULL DEFAULT 0,
                  available INTEGER NOT NULL CHECK (available >= 0),
                  reserved INTEGER NOT NULL CHECK (reserved >= 0),
                  sold INTEGER NOT NULL CHECK (sold >= 0),
                  minimumStock INTEGER NOT NULL,
                  PRIMARY KEY (shopId, productId)
                );
                CREATE TABLE reservation (
                  orderId TEXT PRIMARY KEY, shopId TEXT NOT NULL, status TEXT NOT NULL, updatedAt INTEGER NOT NULL
                );
                CREATE TABLE reservation_line (
                  orderId TEXT NOT NULL, productId TEXT NOT NULL, quantity INTEGER NOT NULL,
                  PRIMARY KEY (orderId, productId)
                );
                """)
        }),
        ("inventory-2", { db in
            // A shelf sensor's count that differs from the units held: recorded, never moving stock.
            try db.execute(sql: """
                CREATE TABLE shelf_discrepancy (
                  eventId TEXT PRIMARY KEY, deviceId TEXT NOT NULL, shopId TEXT NOT NULL, productId TEXT NOT NULL,
                  counted INTEGER NOT NULL, available INTEGER NOT NULL, at INTEGER NOT NULL
                );
                """)
        }),
        ("inventory-3", { db in
            // The seed's "Update Stock History" on OrderCreated: what each order took, and at what price.
            try db.execute(sql: """
                CREATE TABLE stock_history (
                  orderId TEXT NOT NULL, shopId TEXT NOT NULL, productId TEXT NOT NULL, quantity INTEGER NOT NULL,
                  unitPriceMinor INTEGER NOT NULL, at INTEGER NOT NULL,
                  PRIMARY KEY (orderId, productId)
                );
                """)
        }),
        ("inventory-4", { db in
            // Units sold outside the order flow (vends), once per sale id; a refusal is kept too.
            try db.execute(sql: """
                CREATE TABLE sale (
                  saleId TEXT PRIMARY KEY, shopId TEXT NOT NULL, productId TEXT NOT NULL, quantity INTEGER NOT NULL,
                  status TEXT NOT NULL, -- sold | refused
                  reason TEXT, at INTEGER NOT NULL
                );
                """)
        }),
        ("inventory-5", { db in
            // Each device's newest status (DeviceStatusUpdated, newest revision wins): a shelf
            // count from a sensor whose last word was `fault` is recorded as untrusted.
            try db.execute(sql: """
                CREATE TABLE device_state (deviceId TEXT PRIMARY KEY, status TEXT NOT NULL, revision INTEGER NOT NULL);
                ALTER TABLE shelf_discrepancy ADD COLUMN trusted INTEGER NOT NULL DEFAULT 1;
                """)
        }),
    ]

    public func start() async throws {
        try database.write { db in
            // Seed initial stock once; a restart finds the rows already there.
            for shop in settings.fixtures.shops {
                for line in shop.stock {
                    try db.execute(cached: """
                        INSERT INTO stock (shopId, productId, initial, available, reserved, sold, minimumStock)
                        VALUES (?, ?, ?, ?, 0, 0, ?) ON CONFLICT DO NOTHING
                        """, arguments: shop.id, line.productId, line.quantity, line.quantity, line.minimumStock)
                }
            }
        }
        relay.start()

        let consumer = context.consumer(group: "inventory")
        consumer.on(OrderCreated.self) { event, envelope, db in
            for item in event.items {
                try db.execute(cached: """
                    INSERT INTO stock_history (orderId, shopId, productId, quantity, unitPriceMinor, at) VALUES (?, ?, ?, ?, ?, ?)
                    ON CONFLICT (orderId, productId) DO UPDATE SET quantity = quantity + excluded.quantity
                    """, arguments: event.orderId, event.shopId, item.productId, item.quantity, item.unitPrice.minorUnits, envelope.timestamp)
            }
        }
        consumer.on(OrderConfirmed.self) { [self] event, envelope, db in
            try self.commitReservation(orderId: event.orderId, correlationId: envelope.correlationId, in: db)
        }
        consumer.on(DeviceStatusUpdated.self) { event, _, db in
            try db.execute(cached: """
                INSERT INTO device_state (deviceId, status, revision) VALUES (?, ?, ?)
                ON CONFLICT (deviceId) DO UPDATE SET status = excluded.status, revision = excluded.revision WHERE excluded.revision > revision
                """, arguments: event.deviceId, event.status, event.revision.value)
        }
        consumer.on(DeviceDataReceived.self) { [self] event, envelope, db in
            try self.applyDeviceData(event, envelope: envelope, in: db)
        }
        consumer.start()

        let transport = runtime.transport
        transport.register(CheckStock.self) { [self] request, _ in try self.checkStock(request) }
        transport.register(ReserveStock.self) { [self] request, context in try self.reserve(request, context) }
        transport.register(ReleaseStock.self) { [self] request, context in try self.release(request, context) }
        transport.register(SellStock.self) { [self] request, context in try self.sell(request, context) }
    }

    /// A vend: units leave `available` for `sold` at once (no reservation). Idempotent per sale.
    func sell(_ request: SellStock, _ context: CallContext) throws -> SaleResult {
        guard (1...Vend.quantityMax).contains(request.quantity) else {
            throw RPCError.rejected(code: "bad_request", message: "a sale takes 1 to \(Vend.quantityMax) units")
        }
        let now = runtime.clock.now.millisecondsSinceEpoch
        let result: SaleResult = try storage {
            try database.write { db in
                if let row = try SQLRow.fetchOne(db, cached: "SELECT status, reason FROM sale WHERE saleId = ?", arguments: request.saleId) {
                    if try settings.defects.sellTwice && row["status"] == "sold" {
                        // The planted defect: a repeated sale takes the units again.
                        runtime.record(PlantedDefect.sellTwice.acted("sale \(request.saleId) took its units again"))
                        try db.execute(cached: "UPDATE stock SET available = MAX(available - ?, 0), sold = sold + ? WHERE shopId = ? AND productId = ?",
                                       arguments: request.quantity, request.quantity, request.shopId, request.productId)
                    }
                    return try SaleResult(saleId: request.saleId, sold: row["status"] == "sold", reason: row["reason"])
                }
                let stock = try SQLRow.fetchOne(db, cached: "SELECT available, minimumStock FROM stock WHERE shopId = ? AND productId = ?",
                                                arguments: request.shopId, request.productId)
                let available: Int = try stock?["available"] ?? 0
                let refusal: String? = stock == nil ? "unknown_product" : available < request.quantity ? "out_of_stock" : nil
                try db.execute(cached: "INSERT INTO sale (saleId, shopId, productId, quantity, status, reason, at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                               arguments: request.saleId, request.shopId, request.productId, request.quantity, refusal == nil ? "sold" : "refused", refusal, now)
                guard refusal == nil, let stock else { return SaleResult(saleId: request.saleId, sold: false, reason: refusal) }
                try db.execute(cached: "UPDATE stock SET available = available - ?, sold = sold + ? WHERE shopId = ? AND productId = ?",
                               arguments: request.quantity, request.quantity, request.shopId, request.productId)
                try stockChanged(shopId: request.shopId, productId: request.productId, previous: available, new: available - request.quantity,
                                 minimum: stock["minimumStock"], correlationId: context.correlationId, in: db)
                return SaleResult(saleId: request.saleId, sold: true, reason: nil)
            }
        }
        runtime.record("inventory sale \(request.saleId) \(result.sold ? "sold" : "refused (\(result.reason ?? ""))")")
        if result.sold { relay.notify() }
        return result
    }

    func checkStock(_ request: CheckStock) throws -> StockLevel {
        try storage {
            try database.read { db in
                guard let row = try SQLRow.fetchOne(db, cached: "SELECT available, reserved, sold FROM stock WHERE shopId = ? AND productId = ?",
                                                    arguments: request.shopId, request.productId) else {
                    throw RPCError.rejected(code: "not_found", message: "no stock of \(request.productId) in \(request.shopId)")
                }
                return StockLevel(shopId: request.shopId, productId: request.productId,
                                  available: try row["available"], reserved: try row["reserved"], sold: try row["sold"])
            }
        }
    }

    /// All lines or none. Idempotent per order: a repeated request gets the first answer, and a
    /// reservation released before its request arrived is never made.
    func reserve(_ request: ReserveStock, _ context: CallContext) throws -> StockReservation {
        // Bounded before any sum: a peer's absurd quantities are a refusal, not an overflow trap.
        if let problem = OrderLine.problem(in: request.items) { throw RPCError.rejected(code: "bad_request", message: problem) }
        let now = runtime.clock.now
        // A refusal is an answer too: its tombstone is committed, then the error is thrown.
        let outcome: Result<StockReservation, RPCError> = try storage {
            try database.write { db in
                if let status = try String.fetchOne(db, cached: "SELECT status FROM reservation WHERE orderId = ?", arguments: request.orderId) {
                    if status == "rejected" { return .failure(.rejected(code: "out_of_stock", message: "order \(request.orderId) was refused stock")) }
                    guard let known = StockReservation.Status(rawValue: status) else {
                        throw StorageError.corrupt("reservation of \(request.orderId) has status \(status)")
                    }
                    return .success(StockReservation(orderId: request.orderId, status: known))
                }
                // Merge repeated products so a line cannot be counted twice against the same stock.
                var wanted: [(productId: String, quantity: Int)] = []
                for line in request.items {
                    if let i = wanted.firstIndex(where: { $0.productId == line.productId }) { wanted[i].quantity += line.quantity }
                    else { wanted.append((line.productId, line.quantity)) }
                }
                var levels: [(productId: String, quantity: Int, available: Int, minimum: Int)] = []
                for line in wanted {
                    let row = try SQLRow.fetchOne(db, cached: "SELECT available, minimumStock FROM stock WHERE shopId = ? AND productId = ?",
                                                  arguments: request.shopId, line.productId)
                    let available: Int = try row?["available"] ?? 0
                    guard available >= line.quantity else {
                        try db.execute(cached: "INSERT INTO reservation (orderId, shopId, status, updatedAt) VALUES (?, ?, 'rejected', ?)",
                                       arguments: request.orderId, request.shopId, now.millisecondsSinceEpoch)
                        return .failure(.rejected(code: "out_of_stock", message: "\(line.productId): \(available) available, \(line.quantity) wanted"))
                    }
                    levels.append((line.productId, line.quantity, available, try row?["minimumStock"] ?? 0))
                }
                try db.execute(cached: "INSERT INTO reservation (orderId, shopId, status, updatedAt) VALUES (?, ?, 'reserved', ?)",
                               arguments: request.orderId, request.shopId, now.millisecondsSinceEpoch)
                for level in levels {
                    try db.execute(cached: "UPDATE stock SET available = available - ?, reserved = reserved + ? WHERE shopId = ? AND productId = ?",
                                   arguments: level.quantity, level.quantity, request.shopId, level.productId)
                    try db.execute(cached: "INSERT INTO reservation_line (orderId, productId, quantity) VALUES (?, ?, ?)",
                                   arguments: request.orderId, level.productId, level.quantity)
                    try self.context.publish(InventoryReserved(orderId: request.orderId, shopId: request.shopId, productId: level.productId, quantity: level.quantity), correlationId: context.correlationId, in: db)
                    try stockChanged(shopId: request.shopId, productId: level.productId, previous: level.available,
                                     new: level.available - level.quantity, minimum: level.minimum, correlationId: context.correlationId, in: db)
                }
                return .success(StockReservation(orderId: request.orderId, status: .reserved))
            }
        }
        switch outcome {
        case .success(let reservation):
            runtime.record("inventory reserve \(request.orderId) -> \(reservation.status)")
            relay.notify()
            return reservation
        case .failure(let error):
            runtime.record("inventory reserve \(request.orderId) -> refused")
            throw error
        }
    }

    /// The saga's compensation. Idempotent; releasing an order never reserved leaves a tombstone
    /// so that a reservation request still in flight is refused when it lands.
    func release(_ request: ReleaseStock, _ context: CallContext) throws -> StockReservation {
        let now = runtime.clock.now
        let result: StockReservation = try storage {
            try database.write { db in
                guard let row = try SQLRow.fetchOne(db, cached: "SELECT shopId, status FROM reservation WHERE orderId = ?", arguments: request.orderId) else {
                    try db.execute(cached: "INSERT INTO reservation (orderId, shopId, status, updatedAt) VALUES (?, '', 'released', ?)",
                                   arguments: request.orderId, now.millisecondsSinceEpoch)
                    return StockReservation(orderId: request.orderId, status: .released)
                }
                let status: String = try row["status"]
                let shopId: String = try row["shopId"]
                switch status {
                case "reserved":
                    for line in try SQLRow.fetchAll(db, cached: "SELECT productId, quantity FROM reservation_line WHERE orderId = ? ORDER BY productId", arguments: request.orderId) {
                        let productId: String = try line["productId"], quantity: Int = try line["quantity"]
                        guard let stock = try SQLRow.fetchOne(db, cached: "SELECT available, minimumStock FROM stock WHERE shopId = ? AND productId = ?", arguments: shopId, productId) else {
                            throw StorageError.corrupt("reservation of \(request.orderId) holds \(productId) at \(shopId), which has no stock row")
                        }
                        let available: Int = try stock["available"]
                        try db.execute(cached: "UPDATE stock SET available = available + ?, reserved = reserved - ? WHERE shopId = ? AND productId = ?",
                                       arguments: quantity, quantity, shopId, productId)
                        try stockChanged(shopId: shopId, productId: productId, previous: available, new: available + quantity,
                                         minimum: stock["minimumStock"], correlationId: context.correlationId, in: db)
                    }
                    try db.execute(cached: "UPDATE reservation SET status = 'released', updatedAt = ? WHERE orderId = ?",
                                   arguments: now.millisecondsSinceEpoch, request.orderId)
                    return StockReservation(orderId: request.orderId, status: .released)
                case "committed":
                    return StockReservation(orderId: request.orderId, status: .committed)
                default:
                    return StockReservation(orderId: request.orderId, status: .released)
                }
            }
        }
        runtime.record("inventory released \(request.orderId) -> \(result.status)")
        relay.notify()
        return result
    }

    /// OrderConfirmed: reserved units become sold.
    func commitReservation(orderId: String, correlationId: String, in db: Database) throws {
        guard let row = try SQLRow.fetchOne(db, cached: "SELECT shopId, status FROM reservation WHERE orderId = ?", arguments: orderId) else {
            runtime.logger.error("OrderConfirmed for \(orderId) without a reservation")
            return
        }
        let status: String = try row["status"]
        guard status == "reserved" || settings.defects.skipInbox else {
            if status != "committed" { runtime.logger.error("OrderConfirmed for \(orderId) whose reservation is \(status)") }
            return
        }
        let shopId: String = try row["shopId"]
        for line in try SQLRow.fetchAll(db, cached: "SELECT productId, quantity FROM reservation_line WHERE orderId = ? ORDER BY productId", arguments: orderId) {
            let productId: String = try line["productId"], quantity: Int = try line["quantity"]
            try db.execute(cached: "UPDATE stock SET reserved = reserved - ?, sold = sold + ? WHERE shopId = ? AND productId = ?",
                           arguments: quantity, quantity, shopId, productId)
        }
        try db.execute(cached: "UPDATE reservation SET status = 'committed', updatedAt = ? WHERE orderId = ?",
                       arguments: runtime.clock.now.millisecondsSinceEpoch, orderId)
    }

    /// DeviceDataReceived (the seed's "Update Stock from Device"): a restock delivery adds units
    /// (`restocked`, so conservation still holds); a shelf count that differs from what is held is
    /// recorded as a discrepancy. Other data types are not inventory's.
    func applyDeviceData(_ event: DeviceDataReceived, envelope: EventEnvelope, in db: Database) throws {
        guard let type = DeviceDataType(rawValue: event.dataType) else { return }
        let data: DeviceStockData
        do { data = try JSONCoding.fromJSONValue(DeviceStockData.self, event.data) } catch {
            throw RPCError.rejected(code: "bad_event", message: "\(event.dataType) data of \(event.deviceId): \(error)")
        }
        guard (0...OrderLine.quantityMax).contains(data.quantity) else {
            throw RPCError.rejected(code: "bad_event", message: "\(event.deviceId): quantity \(data.quantity) out of range")
        }
        guard let row = try SQLRow.fetchOne(db, cached: "SELECT available, minimumStock FROM stock WHERE shopId = ? AND productId = ?",
                                            arguments: event.shopId, data.productId) else {
            throw RPCError.rejected(code: "bad_event", message: "\(event.shopId) stocks no \(data.productId)")
        }
        let available: Int = try row["available"]
        switch type {
        case .restock:
            guard data.quantity > 0 else { return }
            try db.execute(cached: "UPDATE stock SET restocked = restocked + ?, available = available + ? WHERE shopId = ? AND productId = ?",
                           arguments: data.quantity, data.quantity, event.shopId, data.productId)
            try stockChanged(shopId: event.shopId, productId: data.productId, previous: available, new: available + data.quantity,
                             minimum: row["minimumStock"], correlationId: envelope.correlationId, in: db)
            runtime.record("inventory restock \(event.shopId)/\(data.productId) +\(data.quantity)")
        case .stockUpdate:
            guard data.quantity != available else { return }
            let sensor = try String.fetchOne(db, cached: "SELECT status FROM device_state WHERE deviceId = ?", arguments: event.deviceId)
            try db.execute(cached: """
                INSERT INTO shelf_discrepancy (eventId, deviceId, shopId, productId, counted, available, at, trusted) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT DO NOTHING
                """, arguments: envelope.eventId, event.deviceId, event.shopId, data.productId, data.quantity, available,
                                envelope.timestamp, sensor != DeviceStatus.fault.rawValue)
        }
    }

    private func stockChanged(shopId: String, productId: String, previous: Int, new: Int, minimum: Int,
                              correlationId: String, in db: Database) throws {
        try self.context.publish(StockUpdated(shopId: shopId, productId: productId, newStock: new, previousStock: previous), correlationId: correlationId, in: db)
        if new < minimum && previous >= minimum {
            try self.context.publish(LowStockAlert(shopId: shopId, productId: productId, currentStock: new, minimumStock: minimum), correlationId: correlationId, in: db)
        }
    }

}
