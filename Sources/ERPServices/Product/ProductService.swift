import ERPCore
import ERPStorage
import ERPTransport
import GRDB

/// The product catalogue: name and price per product, and whether any shop has it in stock.
/// Answers `GetProduct` (the seed's "get product info", asked by the gateway and by campaigns)
/// and follows inventory's `StockUpdated` events to keep availability current (the seed's
/// "Update Product Availability").
///
/// Availability is kept as units per shop, moved by each event's `change`, not set to its
/// `newStock`: with the inbox making each event count once, changes add up to the same total
/// whatever order the bus delivers them in, where "last newStock wins" would let a late, older
/// event undo a newer one.
public final class ProductService: RetailService, @unchecked Sendable {
    public static let name = ServiceName.product
    public static let subscriptions = [Subscription(group: "product", patterns: [TopicPattern(StockUpdated.topic)])]
    public static let database: DatabaseDeclaration? = DatabaseDeclaration("product", migrations: migrations)

    let context: ServiceContext
    let settings: ServiceSettings
    let database: ServiceDatabase

    public init(context: ServiceContext) {
        self.context = context
        settings = context.settings
        database = context.database
    }

    static let migrations: [Migration] = [
        ("product-1", { db in
            try db.execute(sql: """
                CREATE TABLE product (
                  productId TEXT PRIMARY KEY, name TEXT NOT NULL, priceMinor INTEGER NOT NULL, currency TEXT NOT NULL
                );
                CREATE TABLE availability (
                  productId TEXT NOT NULL, shopId TEXT NOT NULL, units INTEGER NOT NULL,
                  PRIMARY KEY (productId, shopId)
                );
                """)
        }),
    ]

    public func start() async throws {
        try database.write { db in
            // Seed the catalogue and the initial stock once; a restart finds the rows already there.
            for product in settings.fixtures.products {
                try db.execute(cached: "INSERT INTO product (productId, name, priceMinor, currency) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                               arguments: product.id, product.name, product.price.minorUnits, product.price.currency)
            }
            for shop in settings.fixtures.shops {
                for line in shop.stock {
                    try db.execute(cached: "INSERT INTO availability (productId, shopId, units) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                                   arguments: line.productId, shop.id, line.quantity)
                }
            }
        }
        let consumer = context.consumer(group: "product")
        consumer.on(StockUpdated.self) { event, _, db in
            try db.accumulate("""
                INSERT INTO availability (productId, shopId, units) VALUES (?, ?, ?)
                ON CONFLICT (productId, shopId) DO UPDATE SET units = units + excluded.units
                WHERE typeof(units + excluded.units) = 'integer'
                """, arguments: event.productId, event.shopId, event.change, for: "stock of \(event.productId)")
        }
        consumer.start()
        context.runtime.transport.register(GetProduct.self) { [self] request, _ in try self.getProduct(request) }
        context.runtime.transport.register(ListProducts.self) { [self] _, _ in try self.list() }
    }

    func list() throws -> ProductList {
        try storage {
            try database.read { db in
                ProductList(products: try SQLRow.fetchAll(db, cached: """
                    SELECT p.productId AS productId, p.name AS name, p.priceMinor AS priceMinor, p.currency AS currency,
                      COALESCE((SELECT SUM(MAX(units, 0)) FROM availability a WHERE a.productId = p.productId), 0) AS units
                    FROM product p ORDER BY p.productId
                    """).map {
                    ProductInfo(productId: try $0["productId"], name: try $0["name"], price: Money(minorUnits: try $0["priceMinor"], currency: try $0["currency"]),
                                available: (try $0["units"] as Int) > 0)
                })
            }
        }
    }

    func getProduct(_ request: GetProduct) throws -> ProductInfo {
        try storage {
            try database.read { db in
                guard let row = try SQLRow.fetchOne(db, cached: "SELECT name, priceMinor, currency FROM product WHERE productId = ?",
                                                    arguments: request.productId) else {
                    throw RPCError.rejected(code: "not_found", message: "no product \(request.productId)")
                }
                let units = try Int.fetchOne(db, cached: "SELECT COALESCE(SUM(MAX(units, 0)), 0) FROM availability WHERE productId = ?",
                                             arguments: request.productId) ?? 0
                return ProductInfo(productId: request.productId, name: try row["name"],
                                   price: Money(minorUnits: try row["priceMinor"], currency: try row["currency"]), available: units > 0)
            }
        }
    }
}
