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
}
