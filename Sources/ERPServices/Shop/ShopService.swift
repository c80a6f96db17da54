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

    let context: ServiceContext
    let runtime: any Runtime
    let database: ServiceDatabase

    public init(context: ServiceContext) {
        self.context = context
        runtime = context.runtime
        database = context.database
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
    ]

    public func start() async throws {
        let fixtures = context.settings.fixtures
        try database.write { db in
            // The registry from the fixtures, once; a restart finds the rows already there.
            for shop in fixtures.shops {
                try db.execute(sql: "INSERT INTO shop (shopId, name) VALUES (?, ?) ON CONFLICT DO NOTHING", arguments: [shop.id, shop.name])
            }
            for device in fixtures.devices {
                try db.execute(sql: """
                    INSERT INTO device (deviceId, shopId, status, lastSeen, revision) VALUES (?, ?, ?, 0, -1) ON CONFLICT DO NOTHING
                    """, arguments: [device.id, device.shopId, DeviceStatus.offline.rawValue])
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
    }

    func devices(of shopId: String) throws -> ShopDevices {
        try storage {
            try database.read { db in
                guard try Bool.fetchOne(db, sql: "SELECT 1 FROM shop WHERE shopId = ?", arguments: [shopId]) != nil else {
                    throw RPCError.rejected(code: "not_found", message: "no shop \(shopId)")
                }
                let devices = try Row.fetchAll(db, sql: "SELECT deviceId, status, lastSeen, revision FROM device WHERE shopId = ? ORDER BY deviceId",
                                               arguments: [shopId]).map {
                    ShopDevices.Device(deviceId: $0["deviceId"], status: DeviceStatus(rawValue: $0["status"]) ?? .offline,
                                       lastSeen: $0["lastSeen"], revision: DeviceRevision(value: $0["revision"]))
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
        let update = try db.cachedStatement(sql: """
            UPDATE device SET status = ?, lastSeen = ?, revision = ? WHERE deviceId = ? AND shopId = ? AND revision < ?
            """)
        try update.execute(arguments: [status.rawValue, lastSeen, revision.value, deviceId, shopId, newerThan])
        if db.changesCount == 1 {
            let history = try db.cachedStatement(sql: "INSERT INTO device_history (deviceId, status, revision, lastSeen) VALUES (?, ?, ?, ?)")
            try history.execute(arguments: [deviceId, status.rawValue, revision.value, lastSeen])
            return true
        }
        let known = try db.cachedStatement(sql: "SELECT 1 FROM device WHERE deviceId = ? AND shopId = ?")
        guard try Bool.fetchOne(known, arguments: [deviceId, shopId]) != nil else {
            throw RPCError.rejected(code: "unknown_device", message: "no device \(deviceId) in shop \(shopId)")
        }
        return false
    }
}
