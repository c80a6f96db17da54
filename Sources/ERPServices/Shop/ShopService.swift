import ERPCore
import ERPStorage
import ERPTransport
import GRDB

/// Shops and their device registry (the seed's Pattern 4): each device's status, when it was last
/// seen and the revision of the report that set it. The IoT gateway updates a device synchronously
/// (`UpdateDeviceStatus`, the seed's "needs confirmation"); `DeviceStatusUpdated` events carry the
/// same reports to it again, so a status the RPC could not deliver still arrives. Both paths apply
/// a report only when its revision is higher than the one held: idempotent, order-independent, and
/// a stale report never overwrites a newer one.
public final class ShopService: RetailService, @unchecked Sendable {
    public static let name = ServiceName.shop
    public static let database: DatabaseDeclaration? = DatabaseDeclaration("shop", migrations: migrations)
    public static let subscriptions = [Subscription(group: "shop", patterns: [TopicPattern(DeviceStatusUpdated.topic)])]
    /// Vending: vm-service's operations sell through inventory.
    public static let calls: [ServiceName] = [.inventory]
    public static let requests: [any RPCRequest.Type] = [SellStock.self]

    let context: ServiceContext
    let runtime: any Runtime
    let database: ServiceDatabase
    private let caller: ResilientCaller

    public init(context: ServiceContext) {
        self.context = context
        runtime = context.runtime
        database = context.database
        caller = ResilientCaller(runtime: runtime, caller: .shop, settings: context.settings.resilience, metrics: context.settings.resilienceMetrics)
    }

    static let migrations: [Migration] = [
        ("shop-1", { db in
            try db.execute(sql: """
                CREATE TABLE shop (shopId TEXT PRIMARY KEY, name TEXT NOT NULL);
                CREATE TABLE device (
                  deviceId TEXT PRIMARY KEY, shopId TEXT NOT NULL REFERENCES shop (shopId),
                  status TEXT NOT NULL, -- DeviceStatus
                  lastSeen INTEGER NOT NULL, revision INTEGER NOT NULL
                );
                -- Every status change, in the order applied: a device's history (and what the
                -- checker reads to prove no stale report ever overwrote a newer one).
                CREATE TABLE device_history (
                  seq INTEGER PRIMARY KEY AUTOINCREMENT, deviceId TEXT NOT NULL,
                  status TEXT NOT NULL, revision INTEGER NOT NULL, lastSeen INTEGER NOT NULL
                );
                """)
        }),
        ("shop-2", { db in
            try db.execute(sql: "ALTER TABLE device ADD COLUMN kind TEXT NOT NULL DEFAULT 'shelf_sensor'")
        }),
        ("shop-3", { db in
            // When the shop applied each status (its clock): with `lastSeen`, the IoT gateway's time
            // of the report, the device-status flow's latency.
            try db.execute(sql: "ALTER TABLE device_history ADD COLUMN appliedAt INTEGER")
        }),
    ]

    public func start() async throws {
        let fixtures = context.settings.fixtures
        try database.write { db in
            // The registry from the fixtures, once; a restart finds the rows already there.
            for shop in fixtures.shops {
                try db.execute(cached: "INSERT INTO shop (shopId, name) VALUES (?, ?) ON CONFLICT DO NOTHING", arguments: shop.id, shop.name)
            }
            for device in fixtures.devices {
                try db.execute(cached: """
                    INSERT INTO device (deviceId, shopId, status, lastSeen, revision, kind) VALUES (?, ?, ?, 0, -1, ?)
                    ON CONFLICT (deviceId) DO UPDATE SET kind = excluded.kind
                    """, arguments: device.id, device.shopId, DeviceStatus.offline.rawValue, device.kind.rawValue)
            }
        }
        let consumer = context.consumer(group: "shop")
        consumer.on(DeviceStatusUpdated.self) { [self] event, _, db in
            guard let status = DeviceStatus(rawValue: event.status) else {
                throw RPCError.rejected(code: "bad_event", message: "unknown device status '\(event.status)'")
            }
            do {
                _ = try apply(deviceId: event.deviceId, shopId: event.shopId, status: status, lastSeen: event.lastSeen,
                              revision: event.revision, in: db)
            } catch RPCError.rejected(let code, let message) where code == "unknown_device" {
                // An event about a device this shop does not have will never apply: a poison
                // event for the dead-letter queue at once, not fifty redeliveries.
                throw RPCError.rejected(code: "bad_event", message: message)
            }
        }
        consumer.start()
        runtime.transport.register(UpdateDeviceStatus.self) { [self] request, _ in try update(request) }
        runtime.transport.register(GetShopDevices.self) { [self] request, _ in try devices(of: request.shopId) }
        runtime.transport.register(ListShops.self) { [self] _, _ in try shops() }
        runtime.transport.register(VendingMachineOperation.self) { [self] request, context in try await vendingOperation(request, context) }
    }

    func shops() throws -> ShopList {
        try storage {
            try database.read { db in
                ShopList(shops: try SQLRow.fetchAll(db, cached: """
                    SELECT s.shopId AS shopId, s.name AS name, COUNT(d.deviceId) AS devices,
                      COALESCE(SUM(d.status = 'online'), 0) AS online, COALESCE(SUM(d.status = 'offline'), 0) AS offline,
                      COALESCE(SUM(d.status = 'fault'), 0) AS fault
                    FROM shop s LEFT JOIN device d ON d.shopId = s.shopId GROUP BY s.shopId ORDER BY s.shopId
                    """).map {
                    ShopList.Shop(shopId: try $0["shopId"], name: try $0["name"], devices: try $0["devices"], online: try $0["online"],
                                  offline: try $0["offline"], fault: try $0["fault"])
                })
            }
        }
    }

    /// vm-service → Shop: a vending machine dispenses. The machine must be one of this shop's
    /// vending machines; the units are sold through inventory under the operation's id, so a
    /// repeated operation sells once.
    func vendingOperation(_ request: VendingMachineOperation, _ context: CallContext) async throws -> VendingResult {
        let machine = try storage {
            try database.read { db in
                try SQLRow.fetchOne(db, cached: "SELECT shopId, kind FROM device WHERE deviceId = ?", arguments: request.machineId)
            }
        }
        guard let machine, try machine["kind"] == Fixtures.Device.Kind.vendingMachine.rawValue else {
            throw RPCError.rejected(code: "not_a_vending_machine", message: "\(request.machineId) is not a vending machine of any shop")
        }
        let shopId: String = try machine["shopId"]
        let sale = try await caller.call(SellStock(saleId: request.operationId, shopId: shopId, productId: request.productId, quantity: request.quantity),
                                         metadata: runtime.metadata(timeout: .seconds(1), context: context, idempotencyKey: request.operationId))
        return VendingResult(machineId: request.machineId, shopId: shopId, accepted: sale.sold, reason: sale.reason)
    }

    func devices(of shopId: String) throws -> ShopDevices {
        try storage {
            try database.read { db in
                guard try Bool.fetchOne(db, cached: "SELECT 1 FROM shop WHERE shopId = ?", arguments: shopId) != nil else {
                    throw RPCError.rejected(code: "not_found", message: "no shop \(shopId)")
                }
                let devices = try SQLRow.fetchAll(db, cached: "SELECT deviceId, status, lastSeen, revision FROM device WHERE shopId = ? ORDER BY deviceId",
                                                  arguments: shopId).map {
                    ShopDevices.Device(deviceId: try $0["deviceId"], status: DeviceStatus(rawValue: try $0["status"]) ?? .offline,
                                       lastSeen: try $0["lastSeen"], revision: DeviceRevision(value: try $0["revision"]))
                }
                return ShopDevices(shopId: shopId, devices: devices)
            }
        }
    }

    func update(_ request: UpdateDeviceStatus) throws -> DeviceStatusAck {
        let applied = try storage {
            try database.write { db in
                try apply(deviceId: request.deviceId, shopId: request.shopId, status: request.status, lastSeen: request.lastSeen,
                          revision: request.revision, in: db)
            }
        }
        runtime.record("shop device \(request.deviceId) \(request.status.rawValue) r\(request.revision.value) \(applied ? "applied" : "stale")")
        return DeviceStatusAck(deviceId: request.deviceId, applied: applied)
    }

    /// Sets the device's status when `revision` is newer than the one held. False for a stale or
    /// repeated report; a refusal for a device this shop does not have.
    private func apply(deviceId: String, shopId: String, status: DeviceStatus, lastSeen: Int64, revision: DeviceRevision,
                       in db: Database) throws -> Bool {
        // The planted defect compares with nothing: every report applies, stale or not.
        let newerThan = context.settings.defects.applyStaleDeviceStatus ? Int64.max : revision.value
        let held: Int64? = context.settings.defects.applyStaleDeviceStatus
            ? try Int64.fetchOne(db, cached: "SELECT revision FROM device WHERE deviceId = ? AND shopId = ?", arguments: deviceId, shopId) : nil
        try db.execute(cached: """
            UPDATE device SET status = ?, lastSeen = ?, revision = ? WHERE deviceId = ? AND shopId = ? AND revision < ?
            """, arguments: status.rawValue, lastSeen, revision.value, deviceId, shopId, newerThan)
        if db.changesCount == 1, let held, held >= revision.value {
            runtime.record(PlantedDefect.applyStaleDeviceStatus.acted("device \(deviceId) set to revision \(revision.value) over \(held)"))
        }
        if db.changesCount == 1 {
            try db.execute(cached: "INSERT INTO device_history (deviceId, status, revision, lastSeen, appliedAt) VALUES (?, ?, ?, ?, ?)",
                           arguments: deviceId, status.rawValue, revision.value, lastSeen, runtime.clock.now.millisecondsSinceEpoch)
            return true
        }
        guard try Bool.fetchOne(db, cached: "SELECT 1 FROM device WHERE deviceId = ? AND shopId = ?", arguments: deviceId, shopId) != nil else {
            throw RPCError.rejected(code: "unknown_device", message: "no device \(deviceId) in shop \(shopId)")
        }
        return false
    }
}
