// The synchronous calls of the seed's four patterns, as typed contracts.

// MARK: Gateway (client-facing; HTTP in production)

/// `POST /orders`.
public struct PlaceOrder: RPCRequest {
    public typealias Response = OrderView
    public static let method = "gateway.placeOrder"
    public static let service = ServiceName.gateway
    public var userId: String
    public var shopId: String
    public var items: [OrderLine]
    public init(userId: String, shopId: String, items: [OrderLine]) {
        self.userId = userId; self.shopId = shopId; self.items = items
    }

    /// The longest user id a client may give (UTF-8 bytes): it is stored with every order and
    /// travels in its events.
    public static let userIdByteCountMax = 256

    /// What is wrong with the order's user and shop ids, or nil: checked where an order comes in
    /// (HTTP, the gateway's RPC) and again by the order service, which every way in reaches.
    public static func idsProblem(userId: String, shopId: String) -> String? {
        if userId.isEmpty || shopId.isEmpty { return "fields 'userId' and 'shopId' must not be empty" }
        if userId.utf8.count > userIdByteCountMax { return "field 'userId' must be at most \(userIdByteCountMax) bytes" }
        if userId.containsControlCharacter { return "field 'userId' holds a control character" }
        return nil
    }
}

/// `GET /orders/{id}`.
public struct FetchOrder: RPCRequest {
    public typealias Response = OrderView
    public static let method = "gateway.getOrder"
    public static let service = ServiceName.gateway
    public static let isIdempotent = true
    public var orderId: String
    public init(orderId: String) { self.orderId = orderId }
}

/// A line as the customer asks for it: the price is the catalogue's, set by the order service.
public struct OrderLine: Codable, Sendable, Hashable {
    public var productId: String
    public var quantity: Int
    public init(productId: String, quantity: Int) { self.productId = productId; self.quantity = quantity }

    /// The most lines one order may have.
    public static let countMax = 100
    /// The most units one line may ask for. Together with `countMax` it keeps every sum of
    /// quantities and every priced total far inside 64 bits, so no request can make the services
    /// that add them up trap.
    public static let quantityMax = 1_000_000

    /// What is wrong with `lines` as an order's lines (naming the field, `items[3].quantity`), or
    /// nil. Every entry point checks this: the HTTP gateway, the order service, inventory.
    public static func problem(in lines: [OrderLine]) -> String? {
        if lines.isEmpty { return "field 'items' must list at least one item" }
        if lines.count > countMax { return "field 'items' lists \(lines.count) items; an order takes at most \(countMax)" }
        for (i, line) in lines.enumerated() {
            if line.productId.isEmpty { return "field 'items[\(i)].productId' must not be empty" }
            if line.quantity <= 0 || line.quantity > quantityMax {
                return "field 'items[\(i)].quantity' must be a whole number from 1 to \(quantityMax)"
            }
        }
        return nil
    }
}

public enum OrderStatus: String, Codable, Sendable, Hashable, CaseIterable {
    case pending, confirmed, cancelled
    public var isTerminal: Bool { self != .pending }
}

public struct OrderView: Codable, Sendable, Hashable {
    public var orderId: String
    public var userId: String
    public var shopId: String
    public var items: [OrderItem]
    public var totalAmount: Money
    public var status: OrderStatus
    /// Why a cancelled order was cancelled (`payment_failed`, `out_of_stock`).
    public var reason: String?
    /// How it was priced: `list`, `campaign` (some line at a campaign price) or `fallback` (list
    /// prices because campaign could not be asked).
    public var pricing: String?
    public init(orderId: String, userId: String, shopId: String, items: [OrderItem], totalAmount: Money,
                status: OrderStatus, reason: String?, pricing: String? = nil) {
        self.orderId = orderId; self.userId = userId; self.shopId = shopId; self.items = items
        self.totalAmount = totalAmount; self.status = status; self.reason = reason; self.pricing = pricing
    }
}

// MARK: Order service

/// Gateway → Order: Create Order (REST in the seed).
public struct CreateOrder: RPCRequest {
    public typealias Response = OrderView
    public static let method = "order.createOrder"
    public static let service = ServiceName.order
    public var userId: String
    public var shopId: String
    public var items: [OrderLine]
    public init(userId: String, shopId: String, items: [OrderLine]) {
        self.userId = userId; self.shopId = shopId; self.items = items
    }
}

public struct GetOrder: RPCRequest {
    public typealias Response = OrderView
    public static let method = "order.getOrder"
    public static let service = ServiceName.order
    public static let isIdempotent = true
    public var orderId: String
    public init(orderId: String) { self.orderId = orderId }
}

// MARK: Inventory service

/// Order → Inventory: stock check (REST in the seed).
public struct CheckStock: RPCRequest {
    public typealias Response = StockLevel
    public static let method = "inventory.checkStock"
    public static let service = ServiceName.inventory
    public static let isIdempotent = true
    public var shopId: String
    public var productId: String
    public init(shopId: String, productId: String) { self.shopId = shopId; self.productId = productId }
}

public struct StockLevel: Codable, Sendable, Hashable {
    public var shopId: String
    public var productId: String
    public var available: Int
    public var reserved: Int
    public var sold: Int
    public init(shopId: String, productId: String, available: Int, reserved: Int, sold: Int) {
        self.shopId = shopId; self.productId = productId; self.available = available; self.reserved = reserved; self.sold = sold
    }
}

/// Order → Inventory: Reserve Stock (gRPC in the seed). All lines or none.
public struct ReserveStock: RPCRequest {
    public typealias Response = StockReservation
    public static let method = "inventory.reserveStock"
    public static let service = ServiceName.inventory
    public var orderId: String
    public var shopId: String
    public var items: [OrderLine]
    public init(orderId: String, shopId: String, items: [OrderLine]) {
        self.orderId = orderId; self.shopId = shopId; self.items = items
    }
}

public struct StockReservation: Codable, Sendable, Hashable {
    public enum Status: String, Codable, Sendable { case reserved, released, committed }
    public var orderId: String
    public var status: Status
    public init(orderId: String, status: Status) { self.orderId = orderId; self.status = status }
}

/// Order → Inventory: Release Stock (gRPC in the seed), the saga's compensation.
public struct ReleaseStock: RPCRequest {
    public typealias Response = StockReservation
    public static let method = "inventory.releaseStock"
    public static let service = ServiceName.inventory
    public static let isIdempotent = true
    public var orderId: String
    public init(orderId: String) { self.orderId = orderId }
}

// MARK: Payment service

/// Order → Payment: Process Payment (gRPC in the seed). One charge per order, however often asked.
public struct ProcessPayment: RPCRequest {
    public typealias Response = PaymentResult
    public static let method = "payment.processPayment"
    public static let service = ServiceName.payment
    public var orderId: String
    public var userId: String
    public var amount: Money
    public init(orderId: String, userId: String, amount: Money) {
        self.orderId = orderId; self.userId = userId; self.amount = amount
    }
}

public struct PaymentResult: Codable, Sendable, Hashable {
    public enum Status: String, Codable, Sendable { case success, failed }
    public var paymentId: String
    public var orderId: String
    public var status: Status
    public var reason: String?
    public init(paymentId: String, orderId: String, status: Status, reason: String?) {
        self.paymentId = paymentId; self.orderId = orderId; self.status = status; self.reason = reason
    }
}

/// Refund what was captured for an order (compensation after an ambiguous payment).
public struct RefundPayment: RPCRequest {
    public typealias Response = RefundResult
    public static let method = "payment.refund"
    public static let service = ServiceName.payment
    public static let isIdempotent = true
    public var orderId: String
    public init(orderId: String) { self.orderId = orderId }
}

public struct RefundResult: Codable, Sendable, Hashable {
    public var orderId: String
    /// What was refunded now or before; zero when nothing had been captured.
    public var refunded: Money
    public init(orderId: String, refunded: Money) { self.orderId = orderId; self.refunded = refunded }
}

// MARK: Swishpay (the external card provider, simulated)

/// Payment → swishpay. The provider deduplicates on `chargeKey`.
public struct ProviderCharge: RPCRequest {
    public typealias Response = ProviderChargeResult
    public static let method = "swishpay.charge"
    public static let service = ServiceName.swishpay
    public var chargeKey: String
    public var customerId: String
    public var amount: Money
    public init(chargeKey: String, customerId: String, amount: Money) {
        self.chargeKey = chargeKey; self.customerId = customerId; self.amount = amount
    }
}

public struct ProviderChargeResult: Codable, Sendable, Hashable {
    public var chargeKey: String
    public var approved: Bool
    public var declineReason: String?
    public init(chargeKey: String, approved: Bool, declineReason: String?) {
        self.chargeKey = chargeKey; self.approved = approved; self.declineReason = declineReason
    }
}

/// Payment → swishpay: refund a charge, or void the key so that a charge still in flight is refused.
public struct ProviderRefund: RPCRequest {
    public typealias Response = ProviderRefundResult
    public static let method = "swishpay.refund"
    public static let service = ServiceName.swishpay
    public static let isIdempotent = true
    public var chargeKey: String
    public init(chargeKey: String) { self.chargeKey = chargeKey }
}

public struct ProviderRefundResult: Codable, Sendable, Hashable {
    public var chargeKey: String
    public var refunded: Money
    public init(chargeKey: String, refunded: Money) { self.chargeKey = chargeKey; self.refunded = refunded }
}

// MARK: Product, shop, devices (Patterns 2 and 4; served as those services arrive)

/// Campaign → Product: get product info (REST in the seed).
public struct GetProduct: RPCRequest {
    public typealias Response = ProductInfo
    public static let method = "product.getProduct"
    public static let service = ServiceName.product
    public static let isIdempotent = true
    public var productId: String
    public init(productId: String) { self.productId = productId }
}

public struct ProductInfo: Codable, Sendable, Hashable {
    public var productId: String
    public var name: String
    public var price: Money
    public var available: Bool
    public init(productId: String, name: String, price: Money, available: Bool) {
        self.productId = productId; self.name = name; self.price = price; self.available = available
    }
}

/// A device's state as the shop keeps it (one spelling for Swift, SQL and events).
public enum DeviceStatus: String, Codable, Sendable, Hashable, CaseIterable {
    case online, offline, fault
}

/// Orders the reports of one device: the device's own sequence number × 2, plus 1 when the IoT
/// gateway declares the device offline after its silence. A device's next report (sequence + 1)
/// then outranks the gateway's declaration, which outranks the report it followed. The shop
/// applies a status only with a higher revision than it holds, so stale or replayed reports never
/// overwrite newer ones, whatever order they arrive in.
public struct DeviceRevision: Codable, Sendable, Hashable, Comparable {
    public var value: Int64
    public init(value: Int64) { self.value = value }
    /// The largest sequence a device may send: twice it still fits in 64 bits.
    public static let sequenceMax: Int64 = Int64.max / 2 - 1
    /// The revision of the device's report `sequence` (0...`sequenceMax`), or nil past the range.
    public static func reported(sequence: Int64) -> DeviceRevision? {
        (0...sequenceMax).contains(sequence) ? DeviceRevision(value: sequence * 2) : nil
    }
    /// The gateway's declaration that the device fell silent after this revision's report.
    public var silenced: DeviceRevision { DeviceRevision(value: value | 1) }
    public static func < (a: DeviceRevision, b: DeviceRevision) -> Bool { a.value < b.value }

    /// A plain number on the wire and in events.
    public init(from decoder: any Decoder) throws { value = try decoder.singleValueContainer().decode(Int64.self) }
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(value)
    }
}

/// Device → IoT Gateway: a heartbeat with the device's status (MQTT/gRPC in the seed).
/// Deduplicated per (device, sequence); a sequence at or below the last accepted one is stale.
public struct ReportDevice: RPCRequest {
    public typealias Response = DeviceReportAck
    public static let method = "iot.reportDevice"
    public static let service = ServiceName.iotGateway
    public static let isIdempotent = true
    public var deviceId: String
    /// Increases with every report the device sends (a restarted device goes on from its last).
    public var sequence: Int64
    public var status: DeviceStatus
    public init(deviceId: String, sequence: Int64, status: DeviceStatus) {
        self.deviceId = deviceId; self.sequence = sequence; self.status = status
    }
}

public struct DeviceReportAck: Codable, Sendable, Hashable {
    public var deviceId: String
    public var sequence: Int64
    /// False for a report already seen or older than one seen (dropped, counted).
    public var accepted: Bool
    /// Whether the shop confirmed the status (the seed's "needs confirmation"); when it could not
    /// be reached the event still carries the status to it.
    public var confirmedByShop: Bool
    /// With `accepted` false: the newest sequence the gateway holds for the device, past which
    /// the device must count (a device whose counter went back learns where to go on).
    public var lastSequence: Int64?
    public init(deviceId: String, sequence: Int64, accepted: Bool, confirmedByShop: Bool, lastSequence: Int64? = nil) {
        self.deviceId = deviceId; self.sequence = sequence; self.accepted = accepted; self.confirmedByShop = confirmedByShop
        self.lastSequence = lastSequence
    }
}

/// What a device's data report is about (the seed's `DeviceDataReceived.dataType`).
public enum DeviceDataType: String, Codable, Sendable, Hashable, CaseIterable {
    /// A shelf sensor's count of a product's units on the shelf: recorded by inventory, compared
    /// with what it holds, never moving stock by itself.
    case stockUpdate = "stock_update"
    /// A delivery put on the shelf: inventory adds the units to the shop's stock (`restocked`).
    case restock
}

/// Device → IoT Gateway: data from a device (a shelf count, a restock delivery). Shares the
/// device's sequence with its status reports: deduplicated per (device, sequence), stale refused.
public struct ReportDeviceData: RPCRequest {
    public typealias Response = DeviceReportAck
    public static let method = "iot.reportDeviceData"
    public static let service = ServiceName.iotGateway
    public static let isIdempotent = true
    public var deviceId: String
    public var sequence: Int64
    public var dataType: DeviceDataType
    public var productId: String
    /// Units counted or delivered: 0...`OrderLine.quantityMax`.
    public var quantity: Int
    public init(deviceId: String, sequence: Int64, dataType: DeviceDataType, productId: String, quantity: Int) {
        self.deviceId = deviceId; self.sequence = sequence; self.dataType = dataType; self.productId = productId; self.quantity = quantity
    }
}

/// The `data` of a `DeviceDataReceived` event about stock.
public struct DeviceStockData: Codable, Sendable, Hashable {
    public var productId: String
    public var quantity: Int
    public var sequence: Int64
    public init(productId: String, quantity: Int, sequence: Int64) { self.productId = productId; self.quantity = quantity; self.sequence = sequence }
}

/// IoT Gateway → Shop: Update Device Status (gRPC in the seed). Idempotent per revision.
public struct UpdateDeviceStatus: RPCRequest {
    public typealias Response = DeviceStatusAck
    public static let method = "shop.updateDeviceStatus"
    public static let service = ServiceName.shop
    public static let isIdempotent = true
    public var deviceId: String
    public var shopId: String
    public var status: DeviceStatus
    /// Milliseconds since the epoch, on the gateway's clock, when the report arrived.
    public var lastSeen: Int64
    public var revision: DeviceRevision
    public init(deviceId: String, shopId: String, status: DeviceStatus, lastSeen: Int64, revision: DeviceRevision) {
        self.deviceId = deviceId; self.shopId = shopId; self.status = status; self.lastSeen = lastSeen; self.revision = revision
    }
}

/// `GET /shops/{id}/devices`: a shop's devices as the shop holds them.
public struct GetShopDevices: RPCRequest {
    public typealias Response = ShopDevices
    public static let method = "shop.devices"
    public static let service = ServiceName.shop
    public static let isIdempotent = true
    public var shopId: String
    public init(shopId: String) { self.shopId = shopId }
}

public struct ShopDevices: Codable, Sendable, Hashable {
    public struct Device: Codable, Sendable, Hashable {
        public var deviceId: String
        public var status: DeviceStatus
        /// Milliseconds since the epoch (0: never seen).
        public var lastSeen: Int64
        public var revision: DeviceRevision
        public init(deviceId: String, status: DeviceStatus, lastSeen: Int64, revision: DeviceRevision) {
            self.deviceId = deviceId; self.status = status; self.lastSeen = lastSeen; self.revision = revision
        }
    }
    public var shopId: String
    public var devices: [Device]
    public init(shopId: String, devices: [Device]) { self.shopId = shopId; self.devices = devices }
}

public struct DeviceStatusAck: Codable, Sendable, Hashable {
    public var deviceId: String
    /// False when the shop already knew a newer report for the device.
    public var applied: Bool
    public init(deviceId: String, applied: Bool) { self.deviceId = deviceId; self.applied = applied }
}

// MARK: Report service (read models fed only by events; served through the gateway)

/// `GET /reports/sales`: confirmed orders and their value per shop and product, cancellations by
/// reason, and revenue (payments processed less refunds).
public struct GetSalesReport: RPCRequest {
    public typealias Response = SalesReport
    public static let method = "report.sales"
    public static let service = ServiceName.report
    public static let isIdempotent = true
    public init() {}
}

public struct SalesReport: Codable, Sendable, Hashable {
    public struct Line: Codable, Sendable, Hashable {
        public var shopId: String
        public var productId: String
        public var orders: Int
        public var units: Int
        public var amount: Money
        public init(shopId: String, productId: String, orders: Int, units: Int, amount: Money) {
            self.shopId = shopId; self.productId = productId; self.orders = orders; self.units = units; self.amount = amount
        }
    }
    public struct ShopTotal: Codable, Sendable, Hashable {
        public var shopId: String
        /// Confirmed orders and their total value.
        public var orders: Int
        public var amount: Money
        public init(shopId: String, orders: Int, amount: Money) { self.shopId = shopId; self.orders = orders; self.amount = amount }
    }
    public struct Cancellations: Codable, Sendable, Hashable {
        public var reason: String
        public var orders: Int
        public init(reason: String, orders: Int) { self.reason = reason; self.orders = orders }
    }
    /// Lists, sorted by key, not dictionaries: the same report gives the same bytes.
    public var lines: [Line]
    public var shops: [ShopTotal]
    public var cancellations: [Cancellations]
    public var paymentsProcessed: Money
    public var refunds: Money
    /// Declined payments by reason (PaymentFailed).
    public var paymentFailures: [Cancellations]
    public init(lines: [Line], shops: [ShopTotal], cancellations: [Cancellations], paymentsProcessed: Money, refunds: Money,
                paymentFailures: [Cancellations] = []) {
        self.lines = lines; self.shops = shops; self.cancellations = cancellations
        self.paymentsProcessed = paymentsProcessed; self.refunds = refunds; self.paymentFailures = paymentFailures
    }
}

/// `GET /reports/inventory`: stock levels per shop and product, and the low-stock history.
public struct GetInventoryReport: RPCRequest {
    public typealias Response = InventoryReport
    public static let method = "report.inventory"
    public static let service = ServiceName.report
    public static let isIdempotent = true
    public init() {}
}

public struct InventoryReport: Codable, Sendable, Hashable {
    public struct Level: Codable, Sendable, Hashable {
        public var shopId: String
        public var productId: String
        public var available: Int
        public init(shopId: String, productId: String, available: Int) { self.shopId = shopId; self.productId = productId; self.available = available }
    }
    public struct LowStock: Codable, Sendable, Hashable {
        public var shopId: String
        public var productId: String
        public var currentStock: Int
        public var minimumStock: Int
        /// Milliseconds since the epoch, from the event.
        public var at: Int64
        public init(shopId: String, productId: String, currentStock: Int, minimumStock: Int, at: Int64) {
            self.shopId = shopId; self.productId = productId; self.currentStock = currentStock; self.minimumStock = minimumStock; self.at = at
        }
    }
    public var levels: [Level]
    public var lowStock: [LowStock]
    public init(levels: [Level], lowStock: [LowStock]) { self.levels = levels; self.lowStock = lowStock }
}

/// `GET /reports/devices`: each device's newest status and how many status changes it had.
public struct GetDeviceReport: RPCRequest {
    public typealias Response = DeviceReport
    public static let method = "report.devices"
    public static let service = ServiceName.report
    public static let isIdempotent = true
    public init() {}
}

public struct DeviceReport: Codable, Sendable, Hashable {
    public struct Line: Codable, Sendable, Hashable {
        public var deviceId: String
        public var shopId: String
        public var status: DeviceStatus
        public var revision: DeviceRevision
        /// DeviceStatusUpdated events the report took for this device (stale ones included: only a
        /// higher revision changes `status`).
        public var updates: Int
        public init(deviceId: String, shopId: String, status: DeviceStatus, revision: DeviceRevision, updates: Int) {
            self.deviceId = deviceId; self.shopId = shopId; self.status = status; self.revision = revision; self.updates = updates
        }
    }
    public var devices: [Line]
    public init(devices: [Line]) { self.devices = devices }
}

// MARK: Event bus

/// Outbox relay → bus: append events durably. The bus answers only after its commit, and
/// deduplicates on `eventId`, so a relay may resend freely.
public struct AppendEvents: RPCRequest {
    public typealias Response = AppendAck
    public static let method = "bus.append"
    public static let service = ServiceName.eventBus
    public static let isIdempotent = true
    public var events: [EventEnvelope]
    public init(events: [EventEnvelope]) { self.events = events }
}

public struct AppendAck: Codable, Sendable, Hashable {
    public var appended: Int
    public var duplicates: Int
    public init(appended: Int, duplicates: Int) { self.appended = appended; self.duplicates = duplicates }
}

/// Bus → consumer: the events of one consumer group that are due for this node, in log order
/// (usually what one append brought; at most `countMax`). The consumer applies each with its inbox
/// row in a savepoint of one transaction and answers, after the commit, one outcome per event in
/// the same order; the bus redelivers those not applied (or dead-letters those refused for good).
/// One call and one commit per batch: an append of four events for a group was four calls, four
/// transactions and four outcome updates at the bus.
public struct DeliverEvents: RPCRequest {
    public typealias Response = DeliveryAcks
    public static let method = "consumer.deliverEvents"
    /// Served by every consuming service; the bus addresses the member node directly.
    public static let service = ServiceName.eventBus
    public static let isIdempotent = true
    /// The most events a consumer accepts in one call (the bus sends at most its window).
    public static let countMax = 256
    public var group: String
    public var events: [EventEnvelope]
    public init(group: String, events: [EventEnvelope]) { self.group = group; self.events = events }
}

/// What became of each event of a `DeliverEvents`, in the request's order.
public struct DeliveryAcks: Codable, Sendable, Hashable {
    public var outcomes: [DeliveryOutcome]
    public init(outcomes: [DeliveryOutcome]) { self.outcomes = outcomes }
}

public struct DeliveryOutcome: Codable, Sendable, Hashable {
    public enum Status: String, Codable, Sendable, Hashable {
        /// Applied now, with its inbox row.
        case applied
        /// The inbox already had it (a redelivery): acknowledged without a second effect.
        case duplicate
        /// Of a type this group's code does not consume: acknowledged, nothing to do.
        case ignored
        /// Refused by the consumer's code (`code`, `message`): `undecodable_event` and `bad_event`
        /// can never be applied; other codes may be retried.
        case refused
        /// Not applied for a reason that may pass (storage): to be delivered again.
        case failed
    }
    public var eventId: String
    public var status: Status
    public var code: String?
    public var message: String?
    public init(eventId: String, status: Status, code: String? = nil, message: String? = nil) {
        self.eventId = eventId; self.status = status; self.code = code; self.message = message
    }
    /// Whether the bus may take the event off the group's queue.
    public var isAcknowledged: Bool { status == .applied || status == .duplicate || status == .ignored }
}

/// A consumer (or an operator) → bus: deliver again to `group` every event of its topics from log
/// position `fromSequence` on (0: the whole log), whatever was delivered before. A consumer whose
/// inbox still holds an event acknowledges it without a second effect; one whose database was
/// lost rebuilds its read model from the log.
public struct ReplayGroup: RPCRequest {
    public typealias Response = ReplayAck
    public static let method = "bus.replay"
    public static let service = ServiceName.eventBus
    public static let isIdempotent = true
    public var group: String
    public var fromSequence: Int64
    /// Instead of a position: events appended at or after this time (Unix milliseconds).
    public var sinceMilliseconds: Int64?
    public init(group: String, fromSequence: Int64 = 0, sinceMilliseconds: Int64? = nil) {
        self.group = group; self.fromSequence = fromSequence; self.sinceMilliseconds = sinceMilliseconds
    }
}

public struct ReplayAck: Codable, Sendable, Hashable {
    /// Deliveries made pending again (or for the first time).
    public var queued: Int
    /// Of a requeue's chosen log positions, those that were no dead letter of the group (left alone).
    public var notDeadLetters: [Int64]?
    public init(queued: Int, notDeadLetters: [Int64]? = nil) { self.queued = queued; self.notDeadLetters = notDeadLetters }
}

/// Operator → bus: the dead letters, oldest first, of one group or all.
public struct ListDeadLetters: RPCRequest {
    public typealias Response = DeadLetters
    public static let method = "bus.deadLetters"
    public static let service = ServiceName.eventBus
    public static let isIdempotent = true
    public var group: String?
    public var limit: Int
    public init(group: String? = nil, limit: Int = 100) { self.group = group; self.limit = limit }
}

public struct DeadLetters: Codable, Sendable, Hashable {
    public struct Letter: Codable, Sendable, Hashable {
        public var group: String
        public var sequence: Int64
        public var eventId: String
        public var eventType: String
        public var attempts: Int
        public var lastError: String?
        public init(group: String, sequence: Int64, eventId: String, eventType: String, attempts: Int, lastError: String?) {
            self.group = group; self.sequence = sequence; self.eventId = eventId; self.eventType = eventType
            self.attempts = attempts; self.lastError = lastError
        }
    }
    public var letters: [Letter]
    /// How many dead letters there are in all (of the group asked for), `letters` being at most
    /// the limit asked for: a script could not tell a list cut short. Optional: a bus of an
    /// earlier build does not send it.
    public var total: Int?
    public init(letters: [Letter], total: Int? = nil) { self.letters = letters; self.total = total }
}

/// Operator → bus: put a group's dead letters (all, or those at the given log positions) back in
/// its queue, with their attempts reset.
public struct RequeueDeadLetters: RPCRequest {
    public typealias Response = ReplayAck
    public static let method = "bus.requeue"
    public static let service = ServiceName.eventBus
    public static let isIdempotent = true
    public var group: String
    public var sequences: [Int64]?
    public init(group: String, sequences: [Int64]? = nil) { self.group = group; self.sequences = sequences }
}
