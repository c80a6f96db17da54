// The contracts of the other half of the ERP: campaigns (Campaign → Product), vending
// (vm-service → Shop → Inventory), and the lists a client browses (products, shops). Those a
// client reaches through the gateway say how (`GatewayExposed`): the simulated client sends them
// to the gateway node, the real one as HTTP, and the gateway relays them to their service.

/// A request a client sends through the API gateway: its HTTP route, and its gateway RPC
/// (`Relayed<Self>`) in simulation.
public protocol GatewayExposed: RPCRequest {
    /// `GET` or `POST`.
    static var httpMethod: String { get }
    /// The path with the request's own values in it (`/vends/vend_1`).
    var httpPath: String { get }
}

extension GatewayExposed {
    /// A POST sends the request itself as its JSON body; a GET sends none.
    public var sendsBody: Bool { Self.httpMethod == "POST" }
}

/// A client request on its way through the gateway: `gateway.<its method>`, served by the
/// gateway, which relays `inner` to its service through that path's call policy.
public struct Relayed<Inner: GatewayExposed>: RPCRequest {
    public typealias Response = Inner.Response
    public static var method: String { "gateway." + Inner.method }
    public static var service: ServiceName { .gateway }
    public static var isIdempotent: Bool { Inner.isIdempotent }
    public var inner: Inner
    public init(_ inner: Inner) { self.inner = inner }
}

/// Percent-encodes one path segment (everything but RFC 3986's unreserved characters).
public func pathSegment(_ text: String) -> String {
    let hex = Array("0123456789ABCDEF".unicodeScalars)
    var out = String.UnicodeScalarView()
    for byte in text.utf8 {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
             UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
            out.append(Unicode.Scalar(byte))
        default:
            out.append("%")
            out.append(hex[Int(byte >> 4)])
            out.append(hex[Int(byte & 15)])
        }
    }
    return String(out)
}

// MARK: Products and shops

/// `GET /products`: the catalogue.
public struct ListProducts: GatewayExposed {
    public typealias Response = ProductList
    public static let method = "product.list"
    public static let service = ServiceName.product
    public static let isIdempotent = true
    public static let httpMethod = "GET"
    public var httpPath: String { "/products" }
    public init() {}
}

public struct ProductList: Codable, Sendable, Hashable {
    public var products: [ProductInfo]
    public init(products: [ProductInfo]) { self.products = products }
}

/// `GET /shops`: the shops and how many devices each has in each status.
public struct ListShops: GatewayExposed {
    public typealias Response = ShopList
    public static let method = "shop.list"
    public static let service = ServiceName.shop
    public static let isIdempotent = true
    public static let httpMethod = "GET"
    public var httpPath: String { "/shops" }
    public init() {}
}

public struct ShopList: Codable, Sendable, Hashable {
    public struct Shop: Codable, Sendable, Hashable {
        public var shopId: String
        public var name: String
        public var devices: Int
        public var online: Int
        public var offline: Int
        public var fault: Int
        public init(shopId: String, name: String, devices: Int, online: Int, offline: Int, fault: Int) {
            self.shopId = shopId; self.name = name; self.devices = devices; self.online = online; self.offline = offline; self.fault = fault
        }
    }
    public var shops: [Shop]
    public init(shops: [Shop]) { self.shops = shops }
}

// MARK: Campaigns

/// `POST /campaigns`: a percentage off some products for a time window. Campaign asks product for
/// each product (the seed's Campaign → Product), so an unknown product is refused.
public struct CreateCampaign: GatewayExposed {
    public typealias Response = Campaign
    public static let method = "campaign.create"
    public static let service = ServiceName.campaign
    public static let httpMethod = "POST"
    public var httpPath: String { "/campaigns" }
    public var name: String
    public var productIds: [String]
    /// 1…90.
    public var percentOff: Int
    /// Unix milliseconds; now when absent.
    public var startsAt: Int64?
    /// Unix milliseconds; or `lastsSeconds` from the start.
    public var endsAt: Int64?
    public var lastsSeconds: Int64?
    public init(name: String, productIds: [String], percentOff: Int, startsAt: Int64? = nil, endsAt: Int64? = nil, lastsSeconds: Int64? = nil) {
        self.name = name; self.productIds = productIds; self.percentOff = percentOff
        self.startsAt = startsAt; self.endsAt = endsAt; self.lastsSeconds = lastsSeconds
    }

    public static let percentOffRange = 1...90
    public static let productCountMax = 100
    /// The longest campaign: a year.
    public static let lengthMax: Int64 = 366 * 86_400_000

    /// What is wrong with the request (naming the field), or nil. The window is resolved against
    /// `now` (Unix milliseconds).
    public func problem(now: Int64) -> String? {
        // Counted in bytes too: one character may carry any number of combining marks, and a
        // name of 200 such characters was megabytes, stored and listed with every campaign.
        if name.isEmpty || name.count > 200 || name.utf8.count > 800 { return "field 'name' must be 1 to 200 characters (at most 800 bytes)" }
        if productIds.isEmpty || productIds.count > Self.productCountMax {
            return "field 'productIds' must list 1 to \(Self.productCountMax) products"
        }
        if productIds.contains(where: \.isEmpty) { return "field 'productIds' must not hold an empty id" }
        if productIds.contains(where: { $0.utf8.count > 256 }) { return "field 'productIds' must hold ids of at most 256 bytes" }
        if !Self.percentOffRange.contains(percentOff) { return "field 'percentOff' must be a whole number from 1 to 90" }
        if (endsAt == nil) == (lastsSeconds == nil) { return "give one of 'endsAt' (Unix milliseconds) or 'lastsSeconds'" }
        guard let window = window(now: now) else { return "the campaign must end after it starts and last at most 366 days" }
        // Over before it is made: nothing would ever be priced by it (often seconds sent as milliseconds).
        if window.end <= now { return "the campaign would be over already: 'endsAt' is in Unix milliseconds, and must be after now (\(now))" }
        return nil
    }

    /// `[start, end)` in Unix milliseconds, or nil when it is empty or too long.
    public func window(now: Int64) -> (start: Int64, end: Int64)? {
        let start = startsAt ?? now
        guard start >= 0, start <= Int64.max / 2 else { return nil }
        let end: Int64
        if let endsAt { end = endsAt } else if let lastsSeconds, lastsSeconds > 0, lastsSeconds <= Self.lengthMax / 1000 {
            end = start + lastsSeconds * 1000
        } else { return nil }
        guard end > start, end - start <= Self.lengthMax else { return nil }
        return (start, end)
    }
}

public struct Campaign: Codable, Sendable, Hashable {
    public struct Product: Codable, Sendable, Hashable {
        public var productId: String
        public var name: String
        public var listPrice: Money
        public var campaignPrice: Money
        public init(productId: String, name: String, listPrice: Money, campaignPrice: Money) {
            self.productId = productId; self.name = name; self.listPrice = listPrice; self.campaignPrice = campaignPrice
        }
    }
    public var campaignId: String
    public var name: String
    public var percentOff: Int
    public var startsAt: Int64
    public var endsAt: Int64
    public var products: [Product]
    public init(campaignId: String, name: String, percentOff: Int, startsAt: Int64, endsAt: Int64, products: [Product]) {
        self.campaignId = campaignId; self.name = name; self.percentOff = percentOff
        self.startsAt = startsAt; self.endsAt = endsAt; self.products = products
    }
}

/// `GET /campaigns[?after=ID&limit=N]`: campaigns, oldest first, a page at a time: at most
/// `limit` (1 to `pageSizeMax`, that by default) after the campaign `after`. The list grows with
/// every campaign ever made; one answer for all of them outgrew a message.
public struct ListCampaigns: GatewayExposed {
    public typealias Response = CampaignList
    public static let method = "campaign.list"
    public static let service = ServiceName.campaign
    public static let isIdempotent = true
    public static let httpMethod = "GET"
    public static let pageSizeMax = 100
    public var httpPath: String { "/campaigns" }
    public var after: String?
    public var limit: Int?
    public init(after: String? = nil, limit: Int? = nil) { self.after = after; self.limit = limit }

    public var problem: String? {
        if let limit, !(1...Self.pageSizeMax).contains(limit) { return "limit must be from 1 to \(Self.pageSizeMax)" }
        if let after, after.isEmpty || after.utf8.count > 256 { return "after must be a campaign id" }
        return nil
    }
}

public struct CampaignList: Codable, Sendable, Hashable {
    public var campaigns: [Campaign]
    /// The `after` that reads the next page; absent on the last one.
    public var next: String?
    public init(campaigns: [Campaign], next: String? = nil) { self.campaigns = campaigns; self.next = next }
}

/// Order → Campaign: the campaign in force now for each product (the largest discount; the
/// oldest campaign among equals). Products without one are not listed.
public struct QuotePrices: RPCRequest {
    public typealias Response = PriceQuote
    public static let method = "campaign.quote"
    public static let service = ServiceName.campaign
    public static let isIdempotent = true
    public var productIds: [String]
    public init(productIds: [String]) { self.productIds = productIds }
}

public struct PriceQuote: Codable, Sendable, Hashable {
    public struct Discount: Codable, Sendable, Hashable {
        public var productId: String
        public var campaignId: String
        public var percentOff: Int
        public init(productId: String, campaignId: String, percentOff: Int) {
            self.productId = productId; self.campaignId = campaignId; self.percentOff = percentOff
        }
    }
    public var discounts: [Discount]
    public init(discounts: [Discount]) { self.discounts = discounts }
}

extension Money {
    /// The price `percentOff` percent lower, rounded down to the minor unit (the customer's favour).
    /// `percentOff` is 0…100; the product stays far inside 64 bits for any price a catalogue holds.
    public func discounted(percentOff: Int) -> Money {
        let kept = Int64(100 - min(max(percentOff, 0), 100))
        let (product, overflow) = minorUnits.multipliedReportingOverflow(by: kept)
        return Money(minorUnits: overflow ? minorUnits / 100 * kept : product / 100, currency: currency)
    }
}

// MARK: Vending (vm-service → Shop → Inventory)

/// `POST /vends`: a vending machine sells units straight from its shop's stock. Idempotent per
/// `vendId`: the same id again gets the first answer and never sells twice.
public struct Vend: GatewayExposed {
    public typealias Response = VendResult
    public static let method = "vm.vend"
    public static let service = ServiceName.vmService
    public static let httpMethod = "POST"
    public var httpPath: String { "/vends" }
    public var vendId: String
    public var machineId: String
    public var productId: String
    public var quantity: Int
    public init(vendId: String, machineId: String, productId: String, quantity: Int) {
        self.vendId = vendId; self.machineId = machineId; self.productId = productId; self.quantity = quantity
    }

    /// The most units one vend may sell.
    public static let quantityMax = 20

    public var problem: String? {
        // Bytes, not characters: one character may carry any number of combining marks.
        if vendId.isEmpty || vendId.utf8.count > 128 { return "field 'vendId' must be 1 to 128 bytes" }
        // As a userId: a vend stored under an id with a newline could never be read back (GET
        // /vends/{id} refuses control characters in a path).
        if vendId.containsControlCharacter { return "field 'vendId' holds a control character" }
        if machineId.isEmpty || machineId.utf8.count > 256 { return "field 'machineId' must be 1 to 256 bytes" }
        if productId.isEmpty || productId.utf8.count > 256 { return "field 'productId' must be 1 to 256 bytes" }
        if !(1...Self.quantityMax).contains(quantity) { return "field 'quantity' must be a whole number from 1 to \(Self.quantityMax)" }
        return nil
    }
}

/// `GET /vends/{id}`.
public struct GetVend: GatewayExposed {
    public typealias Response = VendResult
    public static let method = "vm.getVend"
    public static let service = ServiceName.vmService
    public static let isIdempotent = true
    public static let httpMethod = "GET"
    public var httpPath: String { "/vends/" + pathSegment(vendId) }
    public var vendId: String
    public init(vendId: String) { self.vendId = vendId }
}

public struct VendResult: Codable, Sendable, Hashable {
    public enum Status: String, Codable, Sendable, Hashable { case pending, dispensed, refused }
    public var vendId: String
    public var machineId: String
    public var shopId: String
    public var productId: String
    public var quantity: Int
    public var status: Status
    /// Why a refused vend was refused (`out_of_stock`, `not_a_vending_machine`).
    public var reason: String?
    public init(vendId: String, machineId: String, shopId: String, productId: String, quantity: Int, status: Status, reason: String?) {
        self.vendId = vendId; self.machineId = machineId; self.shopId = shopId; self.productId = productId
        self.quantity = quantity; self.status = status; self.reason = reason
    }
}

/// vm-service → Shop: a vending-machine operation (gRPC with mTLS in the seed). The shop checks
/// that the machine is one of its vending machines, then sells through inventory.
public struct VendingMachineOperation: RPCRequest {
    public typealias Response = VendingResult
    public static let method = "shop.vendingOperation"
    public static let service = ServiceName.shop
    public enum Operation: String, Codable, Sendable { case dispense }
    /// The vend this operation carries out: inventory sells once per id.
    public var operationId: String
    public var machineId: String
    public var operation: Operation
    public var productId: String
    public var quantity: Int
    public init(operationId: String, machineId: String, operation: Operation, productId: String, quantity: Int) {
        self.operationId = operationId; self.machineId = machineId; self.operation = operation
        self.productId = productId; self.quantity = quantity
    }
}

public struct VendingResult: Codable, Sendable, Hashable {
    public var machineId: String
    public var shopId: String
    public var accepted: Bool
    public var reason: String?
    public init(machineId: String, shopId: String, accepted: Bool, reason: String?) {
        self.machineId = machineId; self.shopId = shopId; self.accepted = accepted; self.reason = reason
    }
}

/// Shop → Inventory: sell units outside the order flow (a vend). Idempotent per `saleId`; a sale
/// refused for want of stock stays refused.
public struct SellStock: RPCRequest {
    public typealias Response = SaleResult
    public static let method = "inventory.sell"
    public static let service = ServiceName.inventory
    public var saleId: String
    public var shopId: String
    public var productId: String
    public var quantity: Int
    public init(saleId: String, shopId: String, productId: String, quantity: Int) {
        self.saleId = saleId; self.shopId = shopId; self.productId = productId; self.quantity = quantity
    }
}

public struct SaleResult: Codable, Sendable, Hashable {
    public var saleId: String
    public var sold: Bool
    public var reason: String?
    public init(saleId: String, sold: Bool, reason: String?) { self.saleId = saleId; self.sold = sold; self.reason = reason }
}

// MARK: Reports through the gateway

extension GetSalesReport: GatewayExposed {
    public static let httpMethod = "GET"
    public var httpPath: String { "/reports/sales" }
}

extension GetInventoryReport: GatewayExposed {
    public static let httpMethod = "GET"
    public var httpPath: String { "/reports/inventory" }
}

extension GetDeviceReport: GatewayExposed {
    public static let httpMethod = "GET"
    public var httpPath: String { "/reports/devices" }
}

// MARK: Every method

/// Every method the ERP's services serve, by name: what a scenario's `network.serviceTime` may
/// name (a misspelt method there was a latency nobody ever waited for).
public enum ServiceMethods {
    /// Each request's method, and for one a client sends through the gateway its relay there
    /// too (`gateway.vm.vend`, `Relayed`).
    public static let all: [String] = ([
        PlaceOrder.self, FetchOrder.self, CreateOrder.self, GetOrder.self, CheckStock.self, ReserveStock.self, ReleaseStock.self,
        ProcessPayment.self, RefundPayment.self, ProviderCharge.self, ProviderRefund.self, GetProduct.self, ReportDevice.self,
        ReportDeviceData.self, UpdateDeviceStatus.self, GetShopDevices.self, GetSalesReport.self, GetInventoryReport.self,
        GetDeviceReport.self, AppendEvents.self, DeliverEvents.self, ReplayGroup.self, ListDeadLetters.self, RequeueDeadLetters.self,
        ListProducts.self, ListShops.self, CreateCampaign.self, ListCampaigns.self, QuotePrices.self, Vend.self, GetVend.self,
        VendingMachineOperation.self, SellStock.self,
    ] as [any RPCRequest.Type]).flatMap { type in
        [type.method] + ((type as? any GatewayExposed.Type).map { [relayMethod($0)] } ?? [])
    }.sorted()

    private static func relayMethod<Inner: GatewayExposed>(_: Inner.Type) -> String { Relayed<Inner>.method }
}
