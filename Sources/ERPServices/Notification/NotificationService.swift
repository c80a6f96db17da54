import ERPCore
import ERPStorage
import ERPTransport
import GRDB

/// Sends the customer a confirmation per confirmed order and a notice per cancelled one, and
/// records low-stock alerts for the shop. "Sending" is a row in its database: the checker counts them.
public final class NotificationService: RetailService, @unchecked Sendable {
    public static let name = ServiceName.notification
    public static let subscriptions = [Subscription(group: "notification", patterns: [
        TopicPattern(OrderConfirmed.topic), TopicPattern(OrderCancelled.topic), TopicPattern(LowStockAlert.topic),
    ])]
    public static let database: DatabaseDeclaration? = DatabaseDeclaration("notification", migrations: migrations)

    let context: ServiceContext
    let runtime: any Runtime

    public init(context: ServiceContext) {
        self.context = context
        runtime = context.runtime
    }

    static let migrations: [Migration] = [
        ("notification-1", { db in
            try db.execute(sql: """
                CREATE TABLE notification (
                  id INTEGER PRIMARY KEY AUTOINCREMENT,
                  kind TEXT NOT NULL, -- order_confirmation | order_cancellation | low_stock
                  subject TEXT NOT NULL, recipient TEXT NOT NULL, eventId TEXT NOT NULL, sentAt INTEGER NOT NULL
                );
                """)
        }),
    ]

    public func start() async throws {
        let consumer = context.consumer(group: "notification")
        consumer.on(OrderConfirmed.self) { [self] event, envelope, db in
            try self.send("order_confirmation", subject: event.orderId, recipient: event.userId, envelope: envelope, in: db)
        }
        consumer.on(OrderCancelled.self) { [self] event, envelope, db in
            try self.send("order_cancellation", subject: event.orderId, recipient: "customer-of:" + event.orderId, envelope: envelope, in: db)
        }
        consumer.on(LowStockAlert.self) { [self] event, envelope, db in
            try self.send("low_stock", subject: event.shopId + "/" + event.productId, recipient: "manager:" + event.shopId, envelope: envelope, in: db)
        }
        consumer.start()
    }

    private func send(_ kind: String, subject: String, recipient: String, envelope: EventEnvelope, in db: Database) throws {
        try db.execute(cached: "INSERT INTO notification (kind, subject, recipient, eventId, sentAt) VALUES (?, ?, ?, ?, ?)",
                       arguments: kind, subject, recipient, envelope.eventId, runtime.clock.now.millisecondsSinceEpoch)
    }
}
