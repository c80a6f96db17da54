import ERPCore
import ERPStorage
import ERPTransport
import GRDB

/// Payments per order, charged through swishpay. One charge per order however often it is asked:
/// the order id is the payment's key here and the charge key at the provider.
public final class PaymentService: RetailService, @unchecked Sendable {
    /// The key swishpay deduplicates a charge on: the order's (the planted defect uses each
    /// payment's), as the checker reads the ledger back.
    public static func chargeKey(_ id: String) -> String { "charge:" + id }

    public static let name = ServiceName.payment
    public static let database: DatabaseDeclaration? = DatabaseDeclaration("payment", migrations: migrations)
    public static let publishes: [any EventPayload.Type] = [PaymentProcessed.self, PaymentFailed.self, RefundProcessed.self]
    public static let calls: [ServiceName] = [.swishpay]
    public static let requests: [any RPCRequest.Type] = [ProviderCharge.self, ProviderRefund.self]

    let context: ServiceContext
    let runtime: any Runtime
    let settings: ServiceSettings
    let database: ServiceDatabase
    let relay: OutboxRelay
    private lazy var caller = ResilientCaller(runtime: runtime, caller: .payment, settings: settings.resilience, metrics: settings.resilienceMetrics)

    public init(context: ServiceContext) {
        self.context = context
        runtime = context.runtime
        settings = context.settings
        database = context.database
        relay = context.relay!
    }

    static let migrations: [Migration] = [
        ("payment-1", { db in
            try db.execute(sql: """
                CREATE TABLE payment (
                  paymentId TEXT PRIMARY KEY, orderId TEXT NOT NULL, userId TEXT NOT NULL,
                  amountMinor INTEGER NOT NULL, currency TEXT NOT NULL,
                  chargeKey TEXT NOT NULL,
                  status TEXT NOT NULL, -- pending | captured | failed | refunded
                  reason TEXT, updatedAt INTEGER NOT NULL
                );
                CREATE INDEX payment_order ON payment (orderId);
                """)
        }),
    ]

    public func start() async throws {
        relay.start()
        runtime.transport.register(ProcessPayment.self) { [self] request, context in try await self.process(request, context) }
        runtime.transport.register(RefundPayment.self) { [self] request, context in try await self.refund(request, context) }
    }

    struct PaymentRow {
        var paymentId: String
        var status: String
        var reason: String?
        var chargeKey: String
    }

    func process(_ request: ProcessPayment, _ context: CallContext) async throws -> PaymentResult {
        let now = runtime.clock.now.millisecondsSinceEpoch
        // Find or create the payment for this order. With the planted defect every attempt is a new
        // payment with a new charge key: the double charge the checker must catch.
        let payment: PaymentRow = try storage {
            try database.write { db in
                if let row = try SQLRow.fetchOne(db, cached: "SELECT paymentId, status, reason, chargeKey FROM payment WHERE orderId = ? ORDER BY updatedAt LIMIT 1", arguments: request.orderId) {
                    guard settings.defects.ignorePaymentIdempotency else {
                        return PaymentRow(paymentId: try row["paymentId"], status: try row["status"], reason: try row["reason"], chargeKey: try row["chargeKey"])
                    }
                    runtime.record(PlantedDefect.ignorePaymentIdempotency.acted("order \(request.orderId) given a new payment though it has one"))
                }
                let paymentId = runtime.ids.next("pay")
                let chargeKey = Self.chargeKey(settings.defects.ignorePaymentIdempotency ? paymentId : request.orderId)
                try db.execute(cached: """
                    INSERT INTO payment (paymentId, orderId, userId, amountMinor, currency, chargeKey, status, updatedAt)
                    VALUES (?, ?, ?, ?, ?, ?, 'pending', ?)
                    """, arguments: paymentId, request.orderId, request.userId, request.amount.minorUnits, request.amount.currency, chargeKey, now)
                return PaymentRow(paymentId: paymentId, status: "pending", reason: nil, chargeKey: chargeKey)
            }
        }
        switch payment.status {
        case "captured": return PaymentResult(paymentId: payment.paymentId, orderId: request.orderId, status: .success, reason: nil)
        case "failed", "refunded":
            return PaymentResult(paymentId: payment.paymentId, orderId: request.orderId, status: .failed, reason: payment.reason ?? payment.status)
        default: break
        }
        // Pending: ask the provider (again). It deduplicates on the charge key, so asking twice
        // charges once. If it cannot be reached the outcome stays unknown and the caller retries.
        let charge = ProviderCharge(chargeKey: payment.chargeKey, customerId: request.userId, amount: request.amount)
        let answer: ProviderChargeResult
        do throws(RPCError) {
            answer = try await caller.call(charge, metadata: runtime.metadata(timeout: settings.sagaStepTimeout, context: context,
                                                                              idempotencyKey: payment.chargeKey))
        } catch {
            runtime.record("payment \(request.orderId) provider \(error.kind)")
            throw error.outcomeIsUnknown ? RPCError.unavailable("payment provider: \(error)") : error
        }
        let result: PaymentResult = try storage {
            try database.write { db in
                // Another attempt may have settled the payment while this one waited; then its
                // outcome is the answer, reason and all (a concurrent attempt answered `failed`
                // where the first said `insufficient_funds`, and the saga cancelled one decline
                // under two reasons: a report reader's trial).
                let settled = try SQLRow.fetchOne(db, cached: "SELECT status, reason FROM payment WHERE paymentId = ?", arguments: payment.paymentId)
                let status: String = try settled?["status"] ?? "pending"
                if status == "pending" {
                    let newStatus = answer.approved ? "captured" : "failed"
                    try db.execute(cached: "UPDATE payment SET status = ?, reason = ?, updatedAt = ? WHERE paymentId = ?",
                                   arguments: newStatus, answer.declineReason, runtime.clock.now.millisecondsSinceEpoch, payment.paymentId)
                    if answer.approved {
                        try self.context.publish(PaymentProcessed(paymentId: payment.paymentId, orderId: request.orderId, amount: request.amount), correlationId: context.correlationId, in: db)
                    } else {
                        try self.context.publish(PaymentFailed(paymentId: payment.paymentId, orderId: request.orderId, reason: answer.declineReason ?? "declined"), correlationId: context.correlationId, in: db)
                    }
                    return PaymentResult(paymentId: payment.paymentId, orderId: request.orderId,
                                         status: answer.approved ? .success : .failed, reason: answer.declineReason)
                }
                let reason: String? = try settled.flatMap { row -> String? in try row["reason"] }
                return PaymentResult(paymentId: payment.paymentId, orderId: request.orderId,
                                     status: status == "captured" ? .success : .failed, reason: status == "captured" ? nil : reason ?? status)
            }
        }
        relay.notify()
        runtime.record("payment \(request.orderId) \(result.status)")
        return result
    }

    /// Refunds what was captured for the order (all its payments), voiding charges still unknown.
    func refund(_ request: RefundPayment, _ context: CallContext) async throws -> RefundResult {
        let payments: [PaymentRow] = try storage {
            try database.read { db in
                try SQLRow.fetchAll(db, cached: "SELECT paymentId, status, reason, chargeKey FROM payment WHERE orderId = ? ORDER BY paymentId", arguments: request.orderId).map {
                    PaymentRow(paymentId: try $0["paymentId"], status: try $0["status"], reason: try $0["reason"], chargeKey: try $0["chargeKey"])
                }
            }
        }
        var total = Money.zero()
        for payment in payments where payment.status == "pending" || payment.status == "captured" {
            let answer: ProviderRefundResult
            if settings.defects.refundSkipsProvider {
                // The planted defect: the provider is never asked; the charge is called refunded.
                runtime.record(PlantedDefect.refundSkipsProvider.acted("payment \(payment.paymentId) of order \(request.orderId) called refunded, swishpay not asked"))
                let amount = try storage { try database.read { db in
                    try Int64.fetchOne(db, cached: "SELECT amountMinor FROM payment WHERE paymentId = ?", arguments: payment.paymentId) ?? 0
                } }
                answer = ProviderRefundResult(chargeKey: payment.chargeKey, refunded: Money(minorUnits: amount))
            } else {
                answer = try await caller.call(ProviderRefund(chargeKey: payment.chargeKey),
                                               metadata: runtime.metadata(timeout: settings.sagaStepTimeout, context: context))
            }
            try storage {
                try database.write { db in
                    let status = try String.fetchOne(db, cached: "SELECT status FROM payment WHERE paymentId = ?", arguments: payment.paymentId)
                    guard status == "pending" || status == "captured" else { return }
                    let refunded = answer.refunded.minorUnits > 0
                    try db.execute(cached: "UPDATE payment SET status = ?, reason = ?, updatedAt = ? WHERE paymentId = ?",
                                   arguments: refunded ? "refunded" : "failed", refunded ? "refunded" : "voided",
                                              runtime.clock.now.millisecondsSinceEpoch, payment.paymentId)
                    if refunded && status == "pending" {
                        // The provider had captured a charge this service never heard back about:
                        // the capture is news too, so revenue (processed less refunded) nets to zero.
                        let orderId = request.orderId
                        try self.context.publish(PaymentProcessed(paymentId: payment.paymentId, orderId: orderId, amount: answer.refunded),
                                                 correlationId: context.correlationId, in: db)
                    }
                    if refunded {
                        try self.context.publish(RefundProcessed(refundId: runtime.ids.next("ref"), paymentId: payment.paymentId, amount: answer.refunded), correlationId: context.correlationId, in: db)
                    }
                }
            }
            total = total + answer.refunded
        }
        relay.notify()
        runtime.record("payment refund \(request.orderId) \(total)")
        return RefundResult(orderId: request.orderId, refunded: total)
    }

}
