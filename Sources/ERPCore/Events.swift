/// The seed's event envelope, field for field:
/// `eventId, eventType, eventVersion, source, timestamp, correlationId, data`.
public struct EventEnvelope: Hashable, Sendable, Codable {
    public var eventId: String
    public var eventType: String
    public var eventVersion: String
    public var source: String
    /// Unix time in milliseconds, from the publishing service's clock.
    public var timestamp: Int64
    public var correlationId: String
    public var data: JSONValue

    public init(eventId: String, eventType: String, eventVersion: String, source: String,
                timestamp: Int64, correlationId: String, data: JSONValue) {
        self.eventId = eventId
        self.eventType = eventType
        self.eventVersion = eventVersion
        self.source = source
        self.timestamp = timestamp
        self.correlationId = correlationId
        self.data = data
    }

    /// The dotted routing key the bus routes on (`order.created`), derived from the type so that
    /// a publisher cannot file an event under the wrong topic.
    public var topic: String { EventTypes.topic(for: eventType) ?? "unknown." + eventType }

    /// Wraps a typed payload.
    public init<P: EventPayload>(_ payload: P, eventId: String, source: ServiceName, timestamp: Timestamp,
                                 correlationId: String) throws {
        self.init(eventId: eventId, eventType: P.eventType, eventVersion: P.eventVersion,
                  source: source.sourceName, timestamp: timestamp.millisecondsSinceEpoch,
                  correlationId: correlationId, data: try JSONCoding.toJSONValue(payload))
    }

    /// Reads the payload as `P`, upcasting an older supported version to the current one.
    public func payload<P: EventPayload>(as type: P.Type) throws(EventDecodingError) -> P {
        guard eventType == P.eventType else { throw .wrongType(expected: P.eventType, actual: eventType) }
        let current: JSONValue
        if eventVersion == P.eventVersion {
            current = data
        } else if let upcast = P.upcast(from: eventVersion, data) {
            current = upcast
        } else {
            throw .unsupportedVersion(type: eventType, version: eventVersion)
        }
        do { return try JSONCoding.fromJSONValue(P.self, current) } catch {
            throw .malformed(type: eventType, reason: String(describing: error))
        }
    }
}

public enum EventDecodingError: Error, Equatable, CustomStringConvertible {
    case wrongType(expected: String, actual: String)
    case unsupportedVersion(type: String, version: String)
    case malformed(type: String, reason: String)

    public var description: String {
        switch self {
        case .wrongType(let e, let a): "expected event \(e), got \(a)"
        case .unsupportedVersion(let t, let v): "\(t) version \(v) is not supported"
        case .malformed(let t, let r): "malformed \(t): \(r)"
        }
    }
}

/// A typed event payload: the `data` of one event type at its current version.
public protocol EventPayload: Codable, Sendable, Hashable {
    static var eventType: String { get }
    static var eventVersion: String { get }
    /// The dotted routing key the bus routes this type on (`order.created`). A requirement with no
    /// default, so a new event type without a topic does not compile.
    static var topic: String { get }
    /// Turns `data` of an older supported version into the current shape, or nil if unsupported.
    static func upcast(from version: String, _ data: JSONValue) -> JSONValue?
}

extension EventPayload {
    public static func upcast(from version: String, _ data: JSONValue) -> JSONValue? { nil }
}

/// Every event type of the seed: the list the bus and the reports read (an envelope carries only
/// its type's name). A new type is one entry here.
public enum EventTypes {
    public static let all: [any EventPayload.Type] = [
        OrderCreated.self, OrderConfirmed.self, OrderCancelled.self,
        StockUpdated.self, InventoryReserved.self, LowStockAlert.self,
        PaymentProcessed.self, PaymentFailed.self, RefundProcessed.self,
        DeviceStatusUpdated.self, DeviceDataReceived.self,
    ]

    /// The routing key of the type named `eventType`, or nil for a type this build does not know.
    public static func topic(for eventType: String) -> String? {
        all.first { $0.eventType == eventType }?.topic
    }
}

public struct OrderItem: Codable, Sendable, Hashable {
    public var productId: String
    public var quantity: Int
    /// Price of one unit at the time of ordering.
    public var unitPrice: Money
    public init(productId: String, quantity: Int, unitPrice: Money) {
        self.productId = productId; self.quantity = quantity; self.unitPrice = unitPrice
    }
    /// `unitPrice × quantity`, or `.overflow`: the quantity came from a request.
    public var lineTotal: Money { get throws(MoneyError) { try unitPrice.multiplied(by: quantity) } }
}

// MARK: Order events

public struct OrderCreated: EventPayload {
    public static let eventType = "OrderCreated"
    public static let topic = "order.created"
    /// 2.0 carries `totalAmount` as `Money` (minor units). 1.0, the seed's shape, carried a decimal
    /// number of major units and items without prices; it is upcast on read.
    public static let eventVersion = "2.0"
    public var orderId: String
    public var shopId: String
    public var userId: String
    public var items: [OrderItem]
    public var totalAmount: Money
    public init(orderId: String, shopId: String, userId: String, items: [OrderItem], totalAmount: Money) {
        self.orderId = orderId; self.shopId = shopId; self.userId = userId; self.items = items; self.totalAmount = totalAmount
    }

    public static func upcast(from version: String, _ data: JSONValue) -> JSONValue? {
        guard version == "1.0", case .object(var o) = data else { return nil }
        let minor: Int64
        switch o["totalAmount"] {
        case .int(let whole)?:
            // An event from outside: a total too large for minor units is refused, not a trap.
            let (scaled, overflow) = whole.multipliedReportingOverflow(by: 100)
            guard !overflow else { return nil }
            minor = scaled
        // A 1.0 producer wrote a JSON number such as 100.5; its shortest decimal text is exact
        // to the cent, so parse the text rather than multiply the double.
        case .double(let d)?: guard let m = Money(decimal: String(d)) else { return nil }; minor = m.minorUnits
        default: return nil
        }
        o["totalAmount"] = .object(["minorUnits": .int(minor), "currency": .string("SEK")])
        if case .array(let items)? = o["items"] {
            o["items"] = .array(items.map { item in
                guard case .object(var i) = item else { return item }
                if i["unitPrice"] == nil { i["unitPrice"] = .object(["minorUnits": .int(0), "currency": .string("SEK")]) }
                return .object(i)
            })
        }
        return .object(o)
    }
}

public struct OrderConfirmed: EventPayload {
    public static let eventType = "OrderConfirmed"
    public static let topic = "order.confirmed"
    public static let eventVersion = "1.0"
    public var orderId: String
    public var status: String
    /// Not in the seed's example; consumers (inventory, notification) need to know what was sold.
    public var shopId: String
    public var userId: String
    public init(orderId: String, shopId: String, userId: String) {
        self.orderId = orderId; self.status = "confirmed"; self.shopId = shopId; self.userId = userId
    }
}

public struct OrderCancelled: EventPayload {
    public static let eventType = "OrderCancelled"
    public static let topic = "order.cancelled"
    public static let eventVersion = "1.0"
    public var orderId: String
    public var reason: String
    public init(orderId: String, reason: String) { self.orderId = orderId; self.reason = reason }
}

// MARK: Inventory events

public struct StockUpdated: EventPayload {
    public static let eventType = "StockUpdated"
    public static let topic = "inventory.stock-updated"
    public static let eventVersion = "1.0"
    public var shopId: String
    public var productId: String
    public var newStock: Int
    public var previousStock: Int
    public var change: Int
    public init(shopId: String, productId: String, newStock: Int, previousStock: Int) {
        self.shopId = shopId; self.productId = productId; self.newStock = newStock
        self.previousStock = previousStock; self.change = newStock - previousStock
    }
}

public struct InventoryReserved: EventPayload {
    public static let eventType = "InventoryReserved"
    public static let topic = "inventory.reserved"
    public static let eventVersion = "1.0"
    public var orderId: String
    public var shopId: String
    public var productId: String
    public var quantity: Int
    public init(orderId: String, shopId: String, productId: String, quantity: Int) {
        self.orderId = orderId; self.shopId = shopId; self.productId = productId; self.quantity = quantity
    }
}

public struct LowStockAlert: EventPayload {
    public static let eventType = "LowStockAlert"
    public static let topic = "inventory.low-stock"
    public static let eventVersion = "1.0"
    public var shopId: String
    public var productId: String
    public var currentStock: Int
    public var minimumStock: Int
    public init(shopId: String, productId: String, currentStock: Int, minimumStock: Int) {
        self.shopId = shopId; self.productId = productId; self.currentStock = currentStock; self.minimumStock = minimumStock
    }
}

// MARK: Payment events

public struct PaymentProcessed: EventPayload {
    public static let eventType = "PaymentProcessed"
    public static let topic = "payment.processed"
    public static let eventVersion = "1.0"
    public var paymentId: String
    public var orderId: String
    public var amount: Money
    public var status: String
    public var gateway: String
    public init(paymentId: String, orderId: String, amount: Money, gateway: String = "swishpay") {
        self.paymentId = paymentId; self.orderId = orderId; self.amount = amount; self.status = "success"; self.gateway = gateway
    }
}

public struct PaymentFailed: EventPayload {
    public static let eventType = "PaymentFailed"
    public static let topic = "payment.failed"
    public static let eventVersion = "1.0"
    public var paymentId: String
    public var orderId: String
    public var reason: String
    public init(paymentId: String, orderId: String, reason: String) {
        self.paymentId = paymentId; self.orderId = orderId; self.reason = reason
    }
}

public struct RefundProcessed: EventPayload {
    public static let eventType = "RefundProcessed"
    public static let topic = "payment.refunded"
    public static let eventVersion = "1.0"
    public var refundId: String
    public var paymentId: String
    public var amount: Money
    public var status: String
    public init(refundId: String, paymentId: String, amount: Money) {
        self.refundId = refundId; self.paymentId = paymentId; self.amount = amount; self.status = "success"
    }
}

// MARK: Device events

public struct DeviceStatusUpdated: EventPayload {
    public static let eventType = "DeviceStatusUpdated"
    public static let topic = "device.status-updated"
    /// 2.0 adds `revision` (see `DeviceRevision`), so consumers can order a device's reports.
    /// 1.0, the seed's shape, is upcast with revision 0: any report with a revision outranks it.
    public static let eventVersion = "2.0"
    public var deviceId: String
    public var shopId: String
    public var status: String
    public var lastSeen: Int64
    public var revision: DeviceRevision
    public init(deviceId: String, shopId: String, status: DeviceStatus, lastSeen: Int64, revision: DeviceRevision) {
        self.deviceId = deviceId; self.shopId = shopId; self.status = status.rawValue; self.lastSeen = lastSeen; self.revision = revision
    }

    public static func upcast(from version: String, _ data: JSONValue) -> JSONValue? {
        guard version == "1.0", case .object(var o) = data else { return nil }
        o["revision"] = .int(0)
        return .object(o)
    }
}

public struct DeviceDataReceived: EventPayload {
    public static let eventType = "DeviceDataReceived"
    public static let topic = "device.data-received"
    public static let eventVersion = "1.0"
    public var deviceId: String
    public var shopId: String
    public var dataType: String
    public var data: JSONValue
    public init(deviceId: String, shopId: String, dataType: String, data: JSONValue) {
        self.deviceId = deviceId; self.shopId = shopId; self.dataType = dataType; self.data = data
    }
}
