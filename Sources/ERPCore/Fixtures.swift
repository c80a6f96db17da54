/// The world a run starts from: catalogue, shops with their initial stock, customers, devices.
public struct Fixtures: Codable, Sendable, Hashable {
    public struct Product: Codable, Sendable, Hashable {
        public var id: String
        public var name: String
        public var price: Money
        public init(id: String, name: String, price: Money) { self.id = id; self.name = name; self.price = price }
    }
    public struct Shop: Codable, Sendable, Hashable {
        public var id: String
        public var name: String
        /// Initial units per product id.
        public var stock: [StockLine]
        public init(id: String, name: String, stock: [StockLine]) { self.id = id; self.name = name; self.stock = stock }
    }
    public struct StockLine: Codable, Sendable, Hashable {
        public var productId: String
        public var quantity: Int
        /// Below this, inventory raises a LowStockAlert.
        public var minimumStock: Int
        public init(productId: String, quantity: Int, minimumStock: Int) {
            self.productId = productId; self.quantity = quantity; self.minimumStock = minimumStock
        }

        /// The most units a fixtures file may stock on one row, or ask as its minimum: a
        /// billion, so that a row multiplied by `Scenario.Limits.stockTimesMax` and the sums of
        /// many such rows stay far inside `Int` (the services and the checker add them up).
        public static let quantityMax = 1_000_000_000

        enum CodingKeys: String, CodingKey { case productId, quantity, minimumStock }
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            productId = try c.decode(String.self, forKey: .productId)
            quantity = try c.decode(Int.self, forKey: .quantity)
            minimumStock = try c.decode(Int.self, forKey: .minimumStock)
            for (key, value) in [(CodingKeys.quantity, quantity), (.minimumStock, minimumStock)] where !(0...Self.quantityMax).contains(value) {
                throw DecodingError.dataCorruptedError(forKey: key, in: c,
                                                       debugDescription: "\(key.stringValue) \(value) of \(productId) is outside 0…\(Self.quantityMax)")
            }
        }
    }
    public struct Customer: Codable, Sendable, Hashable {
        public var id: String
        public var name: String
        public init(id: String, name: String) { self.id = id; self.name = name }
    }
    public struct Device: Codable, Sendable, Hashable {
        public enum Kind: String, Codable, Sendable, Hashable, CaseIterable {
            case shelfSensor = "shelf_sensor", vendingMachine = "vending_machine", pos
        }
        public var id: String
        public var shopId: String
        /// A shelf sensor when the fixtures do not say.
        public var kind: Kind
        public init(id: String, shopId: String, kind: Kind = .shelfSensor) { self.id = id; self.shopId = shopId; self.kind = kind }

        enum CodingKeys: String, CodingKey { case id, shopId, kind }
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            id = try c.decode(String.self, forKey: .id)
            shopId = try c.decode(String.self, forKey: .shopId)
            kind = try c.decodeIfPresent(Kind.self, forKey: .kind) ?? .shelfSensor
        }
    }

    public var products: [Product]
    public var shops: [Shop]
    public var customers: [Customer]
    public var devices: [Device]

    public init(products: [Product], shops: [Shop], customers: [Customer], devices: [Device] = []) {
        self.products = products; self.shops = shops; self.customers = customers; self.devices = devices
    }

    public func product(_ id: String) -> Product? { products.first { $0.id == id } }

    /// These fixtures with every shop's stock multiplied by `factor` (at least 1), so that a load
    /// of orders is not cancelled for want of stock. A row past `StockLine.quantityMax` is what
    /// a decoded file cannot hold; such a row (built in code) stops at `Int.max`.
    public func withStock(times factor: Int) -> Fixtures {
        precondition(factor >= 1, "a stock multiplier of \(factor)")
        guard factor > 1 else { return self }
        var out = self
        for s in out.shops.indices {
            for l in out.shops[s].stock.indices {
                let (product, overflow) = out.shops[s].stock[l].quantity.multipliedReportingOverflow(by: factor)
                out.shops[s].stock[l].quantity = overflow ? .max : product
            }
        }
        return out
    }
}
