import ERPWire

/// The seed's event envelope, field for field:
/// `eventId, eventType, eventVersion, source, timestamp, correlationId, data`.
public struct EventEnvelope: Hashable, Sendable, Codable {
    public var eventId: String { didSet { forgetCaches() } }
    public var eventType: String { didSet { forgetCaches() } }
    public var eventVersion: String { didSet { forgetCaches() } }
    public var source: String { didSet { forgetCaches() } }
    /// Unix time in milliseconds, from the publishing service's clock.
    public var timestamp: Int64 { didSet { forgetCaches() } }
    public var correlationId: String { didSet { forgetCaches() } }
    public var data: JSONValue { didSet { forgetCaches() } }

    /// The JSON text this envelope was read from, while none of its fields has changed since: an
    /// event relayed from an outbox reaches the bus (in the simulator, as a value) with the text
    /// the bus stores, which is then not made a second time (encoding it again was 1.8 % of a
    /// chaos-mix run). Not part of the event: not encoded, not compared, not hashed.
    public var encodedText: String? { text.value }
    private var text = TextCache()

    private struct TextCache: Hashable, Sendable {
        var value: String?
        static func == (a: TextCache, b: TextCache) -> Bool { true }
        func hash(into hasher: inout Hasher) {}
    }

    /// The typed payload this envelope was made from (`init(_:eventId:…)` at the type's current
    /// version), while no field has changed: in the simulator an event travels as a value from
    /// its publisher to its consumers, whose `payload(as:)` then returns it instead of decoding
    /// `data` (2.8 % of a simulated order). Not part of the event, like `text`.
    private var typed = TypedCache()

    private struct TypedCache: Hashable, Sendable {
        var value: (any EventPayload)?
        static func == (a: TypedCache, b: TypedCache) -> Bool { true }
        func hash(into hasher: inout Hasher) {}
    }

    private mutating func forgetCaches() {
        text = TextCache()
        typed = TypedCache()
    }

    /// The envelope's JSON text, kept with it (`encodedText`) for whoever stores or sends it next.
    ///
    /// Written field by field, in the sorted order of its keys, byte for byte what `WireJSON`
    /// writes for the same fields through `Codable` (`CoreTests` checks it against a copy of the
    /// fields), which turned `data` into two trees first, 2.9 % of a simulated happy-path run.
    public mutating func encodeText() throws -> String {
        if let text = text.value { return text }
        let encoded = try writtenText()
        text = TextCache(value: encoded)
        return encoded
    }

    /// The envelope's JSON text, written field by field (`encodeText` keeps it).
    private func writtenText() throws -> String {
        var out = WireTextWriter(capacity: 512)
        out.raw("{\"correlationId\":")
        out.string(correlationId)
        out.raw(",\"data\":")
        try data.write(into: &out)
        out.raw(",\"eventId\":")
        out.string(eventId)
        out.raw(",\"eventType\":")
        out.string(eventType)
        out.raw(",\"eventVersion\":")
        out.string(eventVersion)
        out.raw(",\"source\":")
        out.string(source)
        out.raw(",\"timestamp\":")
        out.integer(timestamp)
        out.raw("}")
        return out.text
    }

    /// On the wire (`WireJSON`, the ZeroMQ transport's bodies: `AppendEvents`, `DeliverEvents`)
    /// the envelope's text is spliced in as it is: the text it was read from or already wrote,
    /// else written field by field. An event relayed from an outbox to the bus and from the bus's
    /// log to its consumers was encoded again at each hop through the `Codable` path (6.6 % of
    /// the bus's CPU at 400 orders/s; `perf`). Other encoders get the fields, as the synthesized
    /// conformance gave them.
    public func encode(to encoder: any Encoder) throws {
        if let wire = encoder as? any WireTreeEncoder {
            wire.encodeRawJSON(try text.value ?? writtenText())
            return
        }
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(eventId, forKey: .eventId)
        try container.encode(eventType, forKey: .eventType)
        try container.encode(eventVersion, forKey: .eventVersion)
        try container.encode(source, forKey: .source)
        try container.encode(timestamp, forKey: .timestamp)
        try container.encode(correlationId, forKey: .correlationId)
        try container.encode(data, forKey: .data)
    }

    private enum CodingKeys: String, CodingKey {
        case eventId, eventType, eventVersion, source, timestamp, correlationId, data
    }

    /// Reads an envelope from its JSON text, keeping the text (`encodedText`).
    public static func decode(fromText text: String) throws -> EventEnvelope {
        var envelope = try JSONCoding.decode(EventEnvelope.self, from: text)
        envelope.text = TextCache(value: text)
        return envelope
    }

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

    /// Wraps a typed payload, written at `version` (the current one unless told; an older one the
    /// type can write is produced by `P.downcast`).
    public init<P: EventPayload>(_ payload: P, eventId: String, source: ServiceName, timestamp: Timestamp,
                                 correlationId: String, version: String? = nil) throws {
        var data = try JSONCoding.toJSONValue(payload)
        let version = version ?? P.eventVersion
        if version != P.eventVersion {
            guard let older = P.downcast(to: version, data) else { throw EventVersionError.notWritable(type: P.eventType, version: version) }
            data = older
        }
        self.init(eventId: eventId, eventType: P.eventType, eventVersion: version,
                  source: source.sourceName, timestamp: timestamp.millisecondsSinceEpoch,
                  correlationId: correlationId, data: data)
        if version == P.eventVersion { typed = TypedCache(value: payload) }
    }

    /// Reads the payload as `P`, upcasting an older supported version to the current one.
    public func payload<P: EventPayload>(as type: P.Type) throws(EventDecodingError) -> P {
        guard eventType == P.eventType else { throw .wrongType(expected: P.eventType, actual: eventType) }
        let current: JSONValue
        if eventVersion == P.eventVersion {
            if let payload = typed.value as? P { return payload }
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
    /// Turns `data` of the current version into an older one producers may still write (a rolling
    /// upgrade not yet done), or nil if this build cannot write it.
    static func downcast(to version: String, _ data: JSONValue) -> JSONValue?
    /// The older versions `downcast` produces.
    static var olderWritableVersions: [String] { get }
}

extension EventPayload {
    public static func upcast(from version: String, _ data: JSONValue) -> JSONValue? { nil }
    public static func downcast(to version: String, _ data: JSONValue) -> JSONValue? { nil }
    /// The versions a producer of this build can write: the current one and every older one
    /// `downcast` produces.
    public static var writableVersions: [String] { [eventVersion] + olderWritableVersions }
    public static var olderWritableVersions: [String] { [] }
}

public enum EventVersionError: Error, Equatable, CustomStringConvertible {
    case unknownType(String)
    case notWritable(type: String, version: String)
    public var description: String {
        switch self {
        case .unknownType(let t):
            "no event type \(t); the types are \(EventTypes.all.map { $0.eventType }.joined(separator: ", "))"
        case .notWritable(let t, let v):
            "this build cannot write \(t) \(v); it writes \(EventTypes.writableVersions(of: t).joined(separator: ", "))"
        }
    }
}

/// "Producers write `eventType` at `version`": a scenario's starting versions and each step of a
/// rolling upgrade.
public struct EventVersionSetting: Sendable, Hashable, Codable {
    public var eventType: String
    public var version: String
    public init(eventType: String, version: String) { self.eventType = eventType; self.version = version }
}

/// Which version of each event type the producers of a process write: the current one unless a
/// run says otherwise (a rolling upgrade changes it while the run goes on). Shared by reference by
/// every service of a process; read and changed on the services' executor only.
public final class EventWriterVersions: @unchecked Sendable {
    // @unchecked Sendable: confined to the executor the services run on (one thread).
    private var versions: [String: String] = [:]
    public init() {}

    /// The version producers write `P` at.
    public func version<P: EventPayload>(of type: P.Type) -> String { versions[P.eventType] ?? P.eventVersion }

    /// From now on, producers write `eventType` at `version`. Refused for an unknown type or a
    /// version this build cannot write.
    public func set(_ eventType: String, to version: String) throws(EventVersionError) {
        let writable = EventTypes.writableVersions(of: eventType)
        guard let current = writable.first else { throw .unknownType(eventType) }
        guard writable.contains(version) else { throw .notWritable(type: eventType, version: version) }
        versions[eventType] = version == current ? nil : version
    }

    public func set(_ setting: EventVersionSetting) throws(EventVersionError) { try set(setting.eventType, to: setting.version) }
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
        type(named: eventType)?.topic
    }

    public static func type(named eventType: String) -> (any EventPayload.Type)? {
        all.first { $0.eventType == eventType }
    }

    /// The versions this build writes the type named `eventType` at (none for an unknown type).
    public static func writableVersions(of eventType: String) -> [String] {
        guard let type = type(named: eventType) else { return [] }
        return type.writableVersions
    }
}

public struct OrderItem: Codable, Sendable, Hashable {
    public var productId: String
    public var quantity: Int
    /// Price of one unit at the time of ordering.
    public var unitPrice: Money
    /// The campaign whose price `unitPrice` is; nil for the list price.
    public var campaignId: String?
    public init(productId: String, quantity: Int, unitPrice: Money, campaignId: String? = nil) {
        self.productId = productId; self.quantity = quantity; self.unitPrice = unitPrice; self.campaignId = campaignId
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
        // 1.0 had no currency; this build's 1.0 writer adds it beside the number (see `downcast`).
        var currency = "SEK"
        if case .string(let c)? = o["currency"] { currency = c; o["currency"] = nil }
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
        o["totalAmount"] = .object(["minorUnits": .int(minor), "currency": .string(currency)])
        if case .array(let items)? = o["items"] {
            o["items"] = .array(items.map { item in
                guard case .object(var i) = item else { return item }
                if i["unitPrice"] == nil { i["unitPrice"] = .object(["minorUnits": .int(0), "currency": .string(currency)]) }
                return .object(i)
            })
        }
        return .object(o)
    }

    public static let olderWritableVersions = ["1.0"]

    /// The seed's 1.0 shape, as a producer not yet upgraded writes it: `totalAmount` a decimal
    /// number of major units. Additions a 1.0 reader ignores are kept, so nothing is lost on the
    /// way back up: each item's `unitPrice` and the total's `currency`.
    public static func downcast(to version: String, _ data: JSONValue) -> JSONValue? {
        guard version == "1.0", case .object(var o) = data, case .object(let total)? = o["totalAmount"],
              case .int(let minor)? = total["minorUnits"], case .string(let currency)? = total["currency"] else { return nil }
        o["totalAmount"] = minor % 100 == 0 ? .int(minor / 100) : .double(Double(minor) / 100)
        o["currency"] = .string(currency)
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

    public static let olderWritableVersions = ["1.0"]

    /// 1.0 without `revision`: a consumer cannot order such reports (it upcasts them to revision
    /// 0), which is why 2.0 exists.
    public static func downcast(to version: String, _ data: JSONValue) -> JSONValue? {
        guard version == "1.0", case .object(var o) = data else { return nil }
        o["revision"] = nil
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
