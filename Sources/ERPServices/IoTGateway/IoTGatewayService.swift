import ERPCore
import ERPStorage
import ERPTransport
import GRDB

/// Device ingress (the seed's Pattern 4): devices report their status; the gateway keeps each
/// device's last accepted report, deduplicates per (device, sequence) and refuses stale ones,
/// publishes `DeviceStatusUpdated` through its outbox in the same transaction, and asks the shop to
/// confirm (`UpdateDeviceStatus`, through the call policy). A device silent for longer than its
/// allowance of missed heartbeats is declared offline, as an event too.
///
///     Device ─ReportDevice─▶ IoT gateway ─UpdateDeviceStatus─▶ Shop
///                                  └─DeviceStatusUpdated─▶ bus ─▶ shop (the same report again)
/// What the IoT gateway offers devices, whatever carries their messages (RPC in simulation, the
/// device protocol in production: docs/device-protocol.md). Methods must run on the IoT gateway
/// node's executor.
public protocol DeviceOperations: Sendable {
    func report(_ request: ReportDevice, _ context: CallContext) async throws -> DeviceReportAck
    func data(_ request: ReportDeviceData, _ context: CallContext) throws -> DeviceReportAck
}

public final class IoTGatewayService: RetailService, DeviceOperations, @unchecked Sendable {
    public static let name = ServiceName.iotGateway
    public static let database: DatabaseDeclaration? = DatabaseDeclaration("iot", migrations: migrations)
    public static let publishes: [any EventPayload.Type] = [DeviceStatusUpdated.self, DeviceDataReceived.self]
    public static let calls: [ServiceName] = [.shop]
    public static let requests: [any RPCRequest.Type] = [UpdateDeviceStatus.self]

    let context: ServiceContext
    let runtime: any Runtime
    let settings: ServiceSettings
    let database: ServiceDatabase
    let relay: OutboxRelay
    private let caller: ResilientCaller
    /// "shop/product" for every product a shop stocks: what a device's stock data may be about.
    private let stocked: Set<String>

    public init(context: ServiceContext) {
        self.context = context
        runtime = context.runtime
        settings = context.settings
        database = context.database
        relay = context.relay!
        caller = ResilientCaller(runtime: runtime, caller: .iotGateway, settings: settings.resilience, metrics: settings.resilienceMetrics)
        stocked = Set(settings.fixtures.shops.flatMap { shop in shop.stock.map { shop.id + "/" + $0.productId } })
    }

    static let migrations: [Migration] = [
        ("iot-1", { db in
            try db.execute(sql: """
                CREATE TABLE device (
                  deviceId TEXT PRIMARY KEY, shopId TEXT NOT NULL,
                  lastSequence INTEGER NOT NULL, -- -1: never reported
                  revision INTEGER NOT NULL, status TEXT NOT NULL, -- DeviceStatus
                  lastReportAt INTEGER NOT NULL, -- ms on this gateway's clock
                  silent INTEGER NOT NULL -- 1 once declared offline for silence, until its next report
                );
                """)
        }),
        ("iot-2", { db in
            // Every data report accepted, as published: what the checker adds restocks up from.
            try db.execute(sql: """
                CREATE TABLE device_data (
                  deviceId TEXT NOT NULL, sequence INTEGER NOT NULL, shopId TEXT NOT NULL,
                  dataType TEXT NOT NULL, productId TEXT NOT NULL, quantity INTEGER NOT NULL, at INTEGER NOT NULL,
                  PRIMARY KEY (deviceId, sequence)
                );
                """)
        }),
    ]

    public func start() async throws {
        try database.write { db in
            // The devices the fixtures admit, once; a restart finds the rows already there.
            for device in settings.fixtures.devices {
                try db.execute(cached: """
                    INSERT INTO device (deviceId, shopId, lastSequence, revision, status, lastReportAt, silent)
                    VALUES (?, ?, -1, -1, ?, 0, 0) ON CONFLICT DO NOTHING
                    """, arguments: device.id, device.shopId, DeviceStatus.offline.rawValue)
            }
        }
        relay.start()
        runtime.transport.register(ReportDevice.self) { [self] request, context in try await report(request, context) }
        runtime.transport.register(ReportDeviceData.self) { [self] request, context in try data(request, context) }
        if !context.settings.defects.skipSilenceWatch {
            runtime.spawn("silence-watch") { [self] in await watchForSilence() }
        } else {
            // The planted defect declares nothing, but notes each silence it lets pass.
            runtime.spawn("silence-watch") { [self] in await noteUndeclaredSilences() }
        }
    }

    /// A report no newer than the device's newest: that newest sequence.
    struct Stale: Error { var lastSequence: Int64 }

    public func report(_ request: ReportDevice, _ context: CallContext) async throws -> DeviceReportAck {
        guard let revision = DeviceRevision.reported(sequence: request.sequence) else {
            throw RPCError.rejected(code: "bad_request", message: "sequence must be from 0 to \(DeviceRevision.sequenceMax)")
        }
        let lastSeen = runtime.clock.now.millisecondsSinceEpoch
        // The report and its event in one transaction; for a report already seen or older, the
        // newest sequence held instead.
        let taken: Result<String, Stale> = try storage {
            try database.write { db in
                guard let row = try SQLRow.fetchOne(db, cached: "SELECT shopId, lastSequence FROM device WHERE deviceId = ?", arguments: request.deviceId) else {
                    throw RPCError.rejected(code: "unknown_device", message: "no device \(request.deviceId)")
                }
                let last: Int64 = try row["lastSequence"]
                guard request.sequence > last else { return .failure(Stale(lastSequence: last)) }
                let shopId: String = try row["shopId"]
                try db.execute(cached: """
                    UPDATE device SET lastSequence = ?, revision = ?, status = ?, lastReportAt = ?, silent = 0 WHERE deviceId = ?
                    """, arguments: request.sequence, revision.value, request.status.rawValue, lastSeen, request.deviceId)
                try self.context.publish(DeviceStatusUpdated(deviceId: request.deviceId, shopId: shopId, status: request.status,
                                                            lastSeen: lastSeen, revision: revision), correlationId: context.correlationId, in: db)
                return .success(shopId)
            }
        }
        let shopId: String
        switch taken {
        case .success(let id): shopId = id
        case .failure(let stale):
            runtime.record("iot \(request.deviceId) #\(request.sequence) stale")
            return DeviceReportAck(deviceId: request.deviceId, sequence: request.sequence, accepted: false, confirmedByShop: false,
                                   lastSequence: stale.lastSequence)
        }
        relay.notify()
        runtime.record("iot \(request.deviceId) #\(request.sequence) \(request.status.rawValue)")
        let confirmed: Bool
        do throws(RPCError) {
            let ack = try await caller.call(UpdateDeviceStatus(deviceId: request.deviceId, shopId: shopId, status: request.status,
                                                               lastSeen: lastSeen, revision: revision),
                                            metadata: runtime.metadata(timeout: settings.deviceConfirmationTimeout, context: context))
            confirmed = ack.applied
        } catch {
            // The event carries the status to the shop anyway; the device learns it was not confirmed.
            runtime.record("iot \(request.deviceId) #\(request.sequence) shop \(error.kind)")
            confirmed = false
        }
        return DeviceReportAck(deviceId: request.deviceId, sequence: request.sequence, accepted: true, confirmedByShop: confirmed)
    }

    /// A device's data: deduplicated on the device's sequence like its status reports, logged and
    /// published as `DeviceDataReceived` in one transaction. Inventory applies it.
    public func data(_ request: ReportDeviceData, _ context: CallContext) throws -> DeviceReportAck {
        guard (0...DeviceRevision.sequenceMax).contains(request.sequence) else {
            throw RPCError.rejected(code: "bad_request", message: "sequence must be from 0 to \(DeviceRevision.sequenceMax)")
        }
        guard (0...OrderLine.quantityMax).contains(request.quantity) else {
            throw RPCError.rejected(code: "bad_request", message: "quantity must be from 0 to \(OrderLine.quantityMax)")
        }
        let now = runtime.clock.now.millisecondsSinceEpoch
        // Nil when accepted, else the newest sequence held.
        let stale: Int64? = try storage {
            try database.write { db in
                guard let row = try SQLRow.fetchOne(db, cached: "SELECT shopId, lastSequence FROM device WHERE deviceId = ?", arguments: request.deviceId) else {
                    throw RPCError.rejected(code: "unknown_device", message: "no device \(request.deviceId)")
                }
                let shopId: String = try row["shopId"]
                guard stocked.contains(shopId + "/" + request.productId) else {
                    throw RPCError.rejected(code: "unknown_product", message: "\(shopId) stocks no \(request.productId)")
                }
                let last: Int64 = try row["lastSequence"]
                guard request.sequence > last else { return last }
                // A data report counts as a sign of life too.
                try db.execute(cached: "UPDATE device SET lastSequence = ?, lastReportAt = ? WHERE deviceId = ?",
                               arguments: request.sequence, now, request.deviceId)
                try db.execute(cached: """
                    INSERT INTO device_data (deviceId, sequence, shopId, dataType, productId, quantity, at) VALUES (?, ?, ?, ?, ?, ?, ?)
                    """, arguments: request.deviceId, request.sequence, shopId, request.dataType.rawValue, request.productId,
                                    request.quantity, now)
                let data = try JSONCoding.toJSONValue(DeviceStockData(productId: request.productId, quantity: request.quantity,
                                                                      sequence: request.sequence))
                try self.context.publish(DeviceDataReceived(deviceId: request.deviceId, shopId: shopId, dataType: request.dataType.rawValue, data: data), correlationId: context.correlationId, in: db)
                return nil
            }
        }
        if stale == nil { relay.notify() }
        runtime.record("iot \(request.deviceId) #\(request.sequence) \(request.dataType.rawValue) \(request.productId) \(request.quantity)\(stale == nil ? "" : " stale")")
        return DeviceReportAck(deviceId: request.deviceId, sequence: request.sequence, accepted: stale == nil, confirmedByShop: false, lastSequence: stale)
    }

    /// With `skip-silence-watch` planted: each device that fell silent for longer than the
    /// allowance, once per silence, recorded as the defect acting (it stays online).
    private func noteUndeclaredSilences() async {
        var noted: [String] = []
        while true {
            await runtime.sleep(for: settings.deviceHeartbeatInterval)
            let cutoff = runtime.clock.now.millisecondsSinceEpoch - Int64(settings.deviceSilenceMax.milliseconds)
            guard let silent = try? database.read({ db in
                try SQLRow.fetchAll(db, cached: """
                    SELECT deviceId FROM device WHERE silent = 0 AND lastSequence >= 0 AND lastReportAt < ? ORDER BY deviceId
                    """, arguments: cutoff).map { row -> String in try row["deviceId"] }
            }) else { continue }
            for deviceId in silent where !noted.contains(deviceId) {
                runtime.record(PlantedDefect.skipSilenceWatch.acted("device \(deviceId) silent past the allowance, not declared offline"))
            }
            noted = silent
        }
    }

    /// Every heartbeat interval: each device that reported once and has been silent for longer
    /// than its allowance is declared offline (its revision's silenced successor), in the same
    /// transaction as the event.
    private func watchForSilence() async {
        while true {
            await runtime.sleep(for: settings.deviceHeartbeatInterval)
            let now = runtime.clock.now.millisecondsSinceEpoch
            let cutoff = now - Int64(settings.deviceSilenceMax.milliseconds)
            do {
                let declared: [String] = try database.write { db in
                    let silent = try SQLRow.fetchAll(db, cached: """
                        SELECT deviceId, shopId, revision, lastReportAt FROM device
                        WHERE silent = 0 AND lastSequence >= 0 AND lastReportAt < ? ORDER BY deviceId
                        """, arguments: cutoff)
                    for row in silent {
                        let revision = DeviceRevision(value: try row["revision"]).silenced
                        let deviceId: String = try row["deviceId"]
                        try db.execute(cached: "UPDATE device SET silent = 1, status = ?, revision = ? WHERE deviceId = ?",
                                       arguments: DeviceStatus.offline.rawValue, revision.value, deviceId)
                        // Seen last when it was last heard, not when its silence was noticed: the
                        // shop's lastSeen jumped to the declaration, 3.3 s after the device's last
                        // report (a device developer's trial).
                        try self.context.publish(DeviceStatusUpdated(deviceId: deviceId, shopId: row["shopId"], status: .offline,
                                                                    lastSeen: try row["lastReportAt"], revision: revision),
                                                 correlationId: runtime.ids.next("corr"), in: db)
                    }
                    return try silent.map { try $0["deviceId"] }
                }
                if !declared.isEmpty {
                    relay.notify()
                    runtime.record("iot declared offline after silence: \(declared.joined(separator: ", "))")
                }
            } catch {
                runtime.logger.error("silence watch: \(error)")
            }
        }
    }
}
