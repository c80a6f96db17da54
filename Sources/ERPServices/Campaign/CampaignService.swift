import ERPCore
import ERPStorage
import ERPTransport
import GRDB

/// Campaigns: a percentage off some products for a time window. Created and listed through the
/// gateway; each product is looked up at product when a campaign is created (the seed's Campaign →
/// Product), so a campaign names only real products and shows their list and campaign prices. The
/// order service asks `QuotePrices` for the campaign in force when it prices an order, and falls
/// back to the list price when campaign cannot answer: a campaign outage never fails an order.
public final class CampaignService: RetailService, @unchecked Sendable {
    public static let name = ServiceName.campaign
    public static let database: DatabaseDeclaration? = DatabaseDeclaration("campaign", migrations: migrations)
    public static let calls: [ServiceName] = [.product]
    public static let requests: [any RPCRequest.Type] = [GetProduct.self]

    let runtime: any Runtime
    let settings: ServiceSettings
    let database: ServiceDatabase
    private let caller: ResilientCaller
    /// Every campaign of each product quoted so far (whatever its window), so that pricing an
    /// order reads no SQL: two of every order's 68 statements were this lookup. Only `create`
    /// writes campaigns, and it empties the map; a restarted service starts with it empty.
    /// Confined to the service's executor, like the handlers that use it.
    private var offersByProduct: [String: [Offer]] = [:]
    /// Products with more campaigns than this are read from SQL each time (the map stays small
    /// whatever a client creates), and so is every product once the map holds `productCountMax`.
    static let offerCountMax = 64, productCountMax = 4_096

    struct Offer {
        var campaignId: String
        var percentOff: Int
        var startsAt: Int64
        var endsAt: Int64
        var createdAt: Int64

        /// Whether `self` wins over `other` as the SQL orders them: the larger discount, then the
        /// older campaign, then the smaller id (byte order, as SQLite compares text).
        func precedes(_ other: Offer) -> Bool {
            if percentOff != other.percentOff { return percentOff > other.percentOff }
            if createdAt != other.createdAt { return createdAt < other.createdAt }
            return campaignId.utf8.lexicographicallyPrecedes(other.campaignId.utf8)
        }
    }

    public init(context: ServiceContext) {
        runtime = context.runtime
        settings = context.settings
        database = context.database
        caller = ResilientCaller(runtime: runtime, caller: .campaign, settings: settings.resilience, metrics: settings.resilienceMetrics)
    }

    static let migrations: [Migration] = [
        ("campaign-1", { db in
            try db.execute(sql: """
                CREATE TABLE campaign (
                  campaignId TEXT PRIMARY KEY, name TEXT NOT NULL, percentOff INTEGER NOT NULL,
                  startsAt INTEGER NOT NULL, endsAt INTEGER NOT NULL, createdAt INTEGER NOT NULL
                );
                CREATE TABLE campaign_product (
                  campaignId TEXT NOT NULL REFERENCES campaign (campaignId), productId TEXT NOT NULL,
                  name TEXT NOT NULL, listPriceMinor INTEGER NOT NULL, currency TEXT NOT NULL,
                  PRIMARY KEY (campaignId, productId)
                );
                CREATE INDEX campaign_product_product ON campaign_product (productId);
                CREATE TABLE campaign_request (requestKey TEXT PRIMARY KEY, campaignId TEXT NOT NULL);
                """)
        }),
        // The request each key was first used for (its JSON), so that the key used again with
        // another request is refused instead of answered with the first campaign. NULL in rows
        // older than this column: those keys answer as before.
        ("campaign-2", { db in try db.execute(sql: "ALTER TABLE campaign_request ADD COLUMN request TEXT") }),
    ]

    public func start() async throws {
        let transport = runtime.transport
        transport.register(CreateCampaign.self) { [self] request, context in try await create(request, context) }
        transport.register(ListCampaigns.self) { [self] request, _ in try list(request) }
        transport.register(QuotePrices.self) { [self] request, _ in try quote(request) }
    }

    func create(_ request: CreateCampaign, _ context: CallContext) async throws -> Campaign {
        let now = runtime.clock.now.millisecondsSinceEpoch
        if let problem = request.problem(now: now) { throw RPCError.rejected(code: "bad_request", message: problem) }
        if let key = context.idempotencyKey, let problem = CallMetadata.idempotencyKeyProblem(key) {
            throw RPCError.rejected(code: "bad_idempotency_key", message: problem)
        }
        guard let window = request.window(now: now) else { preconditionFailure("problem(now:) checks the window") }
        let requestJSON = try JSONCoding.encodeString(request)
        if let key = context.idempotencyKey,
           let existing = try storage({ try database.read { try Self.campaignId(forKey: key, request: requestJSON, in: $0) } }) {
            return try campaign(existing)
        }
        // Campaign → Product: each product's name and list price, once per product.
        var productIds: [String] = []
        for id in request.productIds where !productIds.contains(id) { productIds.append(id) }
        var products: [ProductInfo] = []
        for id in productIds {
            do throws(RPCError) {
                products.append(try await caller.call(GetProduct(productId: id), metadata: runtime.metadata(timeout: .seconds(1), context: context)))
            } catch {
                if case .rejected(let code, _) = error, code == "not_found" {
                    throw RPCError.rejected(code: "unknown_product", message: "no product \(id)")
                }
                throw error
            }
        }
        // Whatever the write does (even a failure may have committed), the quotes read again.
        defer { offersByProduct.removeAll() }
        let campaignId: String = try storage {
            try database.write { db in
                if let key = context.idempotencyKey, let existing = try Self.campaignId(forKey: key, request: requestJSON, in: db) {
                    return existing
                }
                let campaignId = runtime.ids.next("camp")
                try db.execute(cached: "INSERT INTO campaign (campaignId, name, percentOff, startsAt, endsAt, createdAt) VALUES (?, ?, ?, ?, ?, ?)",
                               arguments: campaignId, request.name, request.percentOff, window.start, window.end, now)
                for product in products {
                    try db.execute(cached: "INSERT INTO campaign_product (campaignId, productId, name, listPriceMinor, currency) VALUES (?, ?, ?, ?, ?)",
                                   arguments: campaignId, product.productId, product.name, product.price.minorUnits, product.price.currency)
                }
                if let key = context.idempotencyKey {
                    try db.execute(cached: "INSERT INTO campaign_request (requestKey, campaignId, request) VALUES (?, ?, ?)",
                                   arguments: key, campaignId, requestJSON)
                }
                return campaignId
            }
        }
        runtime.record("campaign \(campaignId) \(request.percentOff)% off \(productIds.joined(separator: ",")) [\(window.start), \(window.end))")
        return try campaign(campaignId)
    }

    /// The campaign created for idempotency key `key`, if any. The key used again for another
    /// request is a client's bug (the IETF idempotency-key draft answers 422), never the first
    /// campaign again.
    static func campaignId(forKey key: String, request: String, in db: Database) throws -> String? {
        guard let row = try SQLRow.fetchOne(db, cached: "SELECT campaignId, request FROM campaign_request WHERE requestKey = ?", arguments: key) else {
            return nil
        }
        let campaignId: String = try row.decode(forColumn: "campaignId")
        if let first: String = try row.decode(forColumn: "request"), first != request {
            throw RPCError.rejected(code: "idempotency_key_reused",
                                    message: "Idempotency-Key '\(key)' was first used for another request (campaign \(campaignId)); use a new key for a new campaign")
        }
        return campaignId
    }

    private func campaign(_ id: String) throws -> Campaign {
        guard let found = try campaigns(where: "WHERE campaignId = ?", [id]).first else {
            throw RPCError.rejected(code: "not_found", message: "no campaign \(id)")
        }
        return found
    }

    func list(_ request: ListCampaigns) throws -> CampaignList {
        if let problem = request.problem { throw RPCError.rejected(code: "bad_request", message: problem) }
        let size = request.limit ?? ListCampaigns.pageSizeMax
        var page: [Campaign]
        if let after = request.after {
            guard try storage({ try database.read { try Bool.fetchOne($0, sql: "SELECT 1 FROM campaign WHERE campaignId = ?", arguments: [after]) } }) == true else {
                throw RPCError.rejected(code: "not_found", message: "no campaign \(after) to list after")
            }
            page = try campaigns(where: "WHERE (createdAt, campaignId) > (SELECT createdAt, campaignId FROM campaign WHERE campaignId = ?)",
                                 [after], limit: size + 1)
        } else {
            page = try campaigns(where: "", [], limit: size + 1)
        }
        let more = page.count > size
        if more { page.removeLast() }
        return CampaignList(campaigns: page, next: more ? page.last?.campaignId : nil)
    }

    private func campaigns(where filter: String, _ arguments: StatementArguments, limit: Int? = nil) throws -> [Campaign] {
        try storage {
            try database.read { db in
                try Row.fetchAll(db, sql: "SELECT * FROM campaign \(filter) ORDER BY createdAt, campaignId" + (limit.map { " LIMIT \($0)" } ?? ""),
                                 arguments: arguments).map { row in
                    // Throwing reads (GRDB's subscript traps on a NULL), as every row a service reads.
                    let percentOff: Int = try row.decode(forColumn: "percentOff")
                    let campaignId: String = try row.decode(forColumn: "campaignId")
                    let products = try SQLRow.fetchAll(db, cached: "SELECT * FROM campaign_product WHERE campaignId = ? ORDER BY productId",
                                                       arguments: campaignId).map { p in
                        let list = Money(minorUnits: try p["listPriceMinor"], currency: try p["currency"])
                        return Campaign.Product(productId: try p["productId"], name: try p["name"], listPrice: list,
                                                campaignPrice: list.discounted(percentOff: percentOff))
                    }
                    return Campaign(campaignId: campaignId, name: try row.decode(forColumn: "name"), percentOff: percentOff,
                                    startsAt: try row.decode(forColumn: "startsAt"), endsAt: try row.decode(forColumn: "endsAt"), products: products)
                }
            }
        }
    }

    /// The campaign in force now for each product: the largest discount, the oldest among equals.
    func quote(_ request: QuotePrices) throws -> PriceQuote {
        guard request.productIds.count <= OrderLine.countMax else {
            throw RPCError.rejected(code: "bad_request", message: "at most \(OrderLine.countMax) products per quote")
        }
        let now = runtime.clock.now.millisecondsSinceEpoch
        var discounts: [PriceQuote.Discount] = []
        for productId in request.productIds where !discounts.contains(where: { $0.productId == productId }) {
            var best: Offer?
            for offer in try offers(of: productId) where offer.startsAt <= now && now < offer.endsAt {
                if best.map({ offer.precedes($0) }) ?? true { best = offer }
            }
            if let best { discounts.append(PriceQuote.Discount(productId: productId, campaignId: best.campaignId, percentOff: best.percentOff)) }
        }
        return PriceQuote(discounts: discounts)
    }

    /// The campaigns of `productId`, from the map or read (and kept, within the bounds).
    private func offers(of productId: String) throws -> [Offer] {
        if let known = offersByProduct[productId] { return known }
        let offers = try storage {
            try database.read { db in
                try SQLRow.fetchAll(db, cached: """
                    SELECT c.campaignId, c.percentOff, c.startsAt, c.endsAt, c.createdAt
                    FROM campaign_product p JOIN campaign c ON c.campaignId = p.campaignId WHERE p.productId = ?
                    """, arguments: productId).map { row in
                    Offer(campaignId: try row[0], percentOff: try row[1], startsAt: try row[2], endsAt: try row[3], createdAt: try row[4])
                }
            }
        }
        if offers.count <= Self.offerCountMax && offersByProduct.count < Self.productCountMax { offersByProduct[productId] = offers }
        return offers
    }
}
