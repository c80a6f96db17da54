import ERPCore
import ERPStorage
import ERPTransport
import GRDB

/// The external card provider "swishpay", simulated. Its ledger is the ground truth of money
/// movement that the checker audits. Like real providers it deduplicates on the charge key, and a
/// refund of a key it has not seen voids the key, so a charge still in flight is refused on arrival.
public final class SwishpayProvider: RetailService, @unchecked Sendable {
    public static let name = ServiceName.swishpay
    public static let database: DatabaseDeclaration? = DatabaseDeclaration("swishpay", migrations: migrations)

    let runtime: any Runtime
    let settings: ServiceSettings
    let database: ServiceDatabase

    public init(context: ServiceContext) {
        runtime = context.runtime
        settings = context.settings
        database = context.database
    }

    static let migrations: [Migration] = [
        ("swishpay-1", { db in
            try db.execute(sql: """
                CREATE TABLE charge (
                  chargeKey TEXT PRIMARY KEY, customerId TEXT NOT NULL,
                  amountMinor INTEGER NOT NULL, currency TEXT NOT NULL,
                  status TEXT NOT NULL, -- captured | declined | refunded | voided
                  declineReason TEXT, updatedAt INTEGER NOT NULL
                );
                """)
        }),
    ]

    public func start() async throws {
        runtime.transport.register(ProviderCharge.self) { [self] request, _ in try await self.charge(request) }
        runtime.transport.register(ProviderRefund.self) { [self] request, _ in try self.refund(request) }
    }

    func charge(_ request: ProviderCharge) async throws -> ProviderChargeResult {
        await runtime.sleep(for: settings.provider.processingTime)
        let declines = runtime.random.chance(settings.provider.declineRate)
        let now = runtime.clock.now.millisecondsSinceEpoch
        let result: ProviderChargeResult = try storage {
            try database.write { db in
                if let row = try SQLRow.fetchOne(db, cached: "SELECT status, declineReason FROM charge WHERE chargeKey = ?", arguments: request.chargeKey) {
                    let status: String = try row["status"]
                    let approved = status == "captured" || status == "refunded"
                    let reason: String? = status == "voided" ? "voided" : try row["declineReason"]
                    return ProviderChargeResult(chargeKey: request.chargeKey, approved: approved, declineReason: approved ? nil : reason)
                }
                let status = declines ? "declined" : "captured"
                let reason: String? = declines ? "insufficient_funds" : nil
                try db.execute(cached: """
                    INSERT INTO charge (chargeKey, customerId, amountMinor, currency, status, declineReason, updatedAt)
                    VALUES (?, ?, ?, ?, ?, ?, ?)
                    """, arguments: request.chargeKey, request.customerId, request.amount.minorUnits, request.amount.currency, status, reason, now)
                return ProviderChargeResult(chargeKey: request.chargeKey, approved: !declines, declineReason: reason)
            }
        }
        runtime.record("swishpay charge \(request.chargeKey) \(result.approved ? "captured" : "declined")")
        return result
    }

    func refund(_ request: ProviderRefund) throws -> ProviderRefundResult {
        let now = runtime.clock.now.millisecondsSinceEpoch
        let result: ProviderRefundResult = try storage {
            try database.write { db in
                guard let row = try SQLRow.fetchOne(db, cached: "SELECT status, amountMinor, currency FROM charge WHERE chargeKey = ?", arguments: request.chargeKey) else {
                    try db.execute(cached: """
                        INSERT INTO charge (chargeKey, customerId, amountMinor, currency, status, declineReason, updatedAt)
                        VALUES (?, '', 0, 'SEK', 'voided', 'voided', ?)
                        """, arguments: request.chargeKey, now)
                    return ProviderRefundResult(chargeKey: request.chargeKey, refunded: .zero())
                }
                let status: String = try row["status"]
                let amount = Money(minorUnits: try row["amountMinor"], currency: try row["currency"])
                switch status {
                case "captured":
                    try db.execute(cached: "UPDATE charge SET status = 'refunded', updatedAt = ? WHERE chargeKey = ?", arguments: now, request.chargeKey)
                    return ProviderRefundResult(chargeKey: request.chargeKey, refunded: amount)
                case "refunded":
                    return ProviderRefundResult(chargeKey: request.chargeKey, refunded: amount)
                default:
                    return ProviderRefundResult(chargeKey: request.chargeKey, refunded: .zero(amount.currency))
                }
            }
        }
        runtime.record("swishpay refund \(request.chargeKey) \(result.refunded)")
        return result
    }
}
