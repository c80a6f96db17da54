import ERPCore
import ERPResilience
import ERPTransport

/// What the gateway offers its clients, whatever carries the request (RPC in simulation, HTTP in
/// production). Methods must run on the gateway node's executor.
public protocol GatewayOperations: Sendable {
    func placeOrder(_ request: PlaceOrder, context: CallContext) async throws(RPCError) -> OrderView
    func fetchOrder(_ request: FetchOrder, context: CallContext) async throws(RPCError) -> OrderView
    func checkStock(_ request: CheckStock, context: CallContext) async throws(RPCError) -> StockLevel
    func getProduct(_ request: GetProduct, context: CallContext) async throws(RPCError) -> ProductInfo
    func salesReport(_ request: GetSalesReport, context: CallContext) async throws(RPCError) -> SalesReport
    func inventoryReport(_ request: GetInventoryReport, context: CallContext) async throws(RPCError) -> InventoryReport
    func deviceReport(_ request: GetDeviceReport, context: CallContext) async throws(RPCError) -> DeviceReport
    func shopDevices(_ request: GetShopDevices, context: CallContext) async throws(RPCError) -> ShopDevices
    /// Relays a client request (products, shops, campaigns, vends) to its service through that
    /// path's call policy; writes are admitted like orders.
    func relay<R: GatewayExposed>(_ request: R, context: CallContext) async throws(RPCError) -> R.Response
}

/// The API gateway: routes client calls to the services (the seed's REST hop), passing on the
/// correlation id, the idempotency key and what remains of the deadline, through the call policy
/// of each path. It sheds load per client and as a whole with token buckets (`overloaded`, the
/// seed's 429, with a retry-after hint).
public final class GatewayService: RetailService, GatewayOperations, @unchecked Sendable {
    public static let name = ServiceName.gateway
    public static let calls: [ServiceName] = [.order, .inventory, .product, .report, .shop, .campaign, .vmService]
    public static let requests: [any RPCRequest.Type] = [CreateOrder.self, GetOrder.self, CheckStock.self, GetProduct.self, ListProducts.self, ListShops.self, GetShopDevices.self,
                                                                 CreateCampaign.self, ListCampaigns.self, Vend.self, GetVend.self,
                                                                 GetSalesReport.self, GetInventoryReport.self, GetDeviceReport.self]

    let runtime: any Runtime
    let settings: ServiceSettings
    private let caller: ResilientCaller
    private var perClient: RateLimiter?
    private var whole: TokenBucket?

    public init(context: ServiceContext) {
        runtime = context.runtime
        settings = context.settings
        caller = ResilientCaller(runtime: runtime, caller: .gateway, settings: settings.resilience, metrics: settings.resilienceMetrics)
    }

    /// Admits a request from `client`, or answers overloaded with when to come back.
    private func admit(client: String) throws(RPCError) {
        let now = runtime.clock.now
        if let bucket = settings.resilience.gatewayRateLimit {
            if whole == nil { whole = TokenBucket(settings: bucket, now: now) }
            if case .limited(let retryAfter) = whole!.tryAcquire(now: now) {
                settings.resilienceMetrics.recordRateLimited()
                throw .overloaded(retryAfterMilliseconds: max(1, retryAfter.nanoseconds / 1_000_000))
            }
        }
        if let bucket = settings.resilience.perClientRateLimit {
            if perClient == nil { perClient = RateLimiter(settings: RateLimiterSettings(bucket: bucket)) }
            if case .limited(let retryAfter) = perClient!.tryAcquire(key: client, now: now) {
                settings.resilienceMetrics.recordRateLimited()
                throw .overloaded(retryAfterMilliseconds: max(1, retryAfter.nanoseconds / 1_000_000))
            }
        }
    }

    public func start() async throws {
        let transport = runtime.transport
        transport.register(PlaceOrder.self) { [self] request, context in try await placeOrder(request, context: context) }
        transport.register(FetchOrder.self) { [self] request, context in try await fetchOrder(request, context: context) }
        registerRelay(ListProducts.self)
        registerRelay(ListShops.self)
        registerRelay(CreateCampaign.self)
        registerRelay(ListCampaigns.self)
        registerRelay(Vend.self)
        registerRelay(GetVend.self)
        registerRelay(GetSalesReport.self)
        registerRelay(GetInventoryReport.self)
        registerRelay(GetDeviceReport.self)
    }

    /// Serves `Relayed<R>` (the simulated client's way to the route HTTP serves in production).
    private func registerRelay<R: GatewayExposed>(_ type: R.Type) {
        runtime.transport.register(Relayed<R>.self) { [self] request, context in try await relay(request.inner, context: context) }
    }

    public func relay<R: GatewayExposed>(_ request: R, context: CallContext) async throws(RPCError) -> R.Response {
        if !R.isIdempotent { try admit(client: R.method) }
        return try await caller.call(request, metadata: runtime.metadata(timeout: .seconds(2), context: context,
                                                                         idempotencyKey: context.idempotencyKey))
    }

    public func placeOrder(_ request: PlaceOrder, context: CallContext) async throws(RPCError) -> OrderView {
        // The RPC way in (a ZeroMQ client) gets the checks HTTP makes.
        if let problem = PlaceOrder.idsProblem(userId: request.userId, shopId: request.shopId) ?? OrderLine.problem(in: request.items) {
            throw RPCError.rejected(code: "bad_request", message: problem)
        }
        try admit(client: request.userId)
        return try await caller.call(CreateOrder(userId: request.userId, shopId: request.shopId, items: request.items),
                                     metadata: runtime.metadata(timeout: settings.gatewayOrderTimeout, context: context,
                                                                idempotencyKey: context.idempotencyKey))
    }

    public func fetchOrder(_ request: FetchOrder, context: CallContext) async throws(RPCError) -> OrderView {
        try await caller.call(GetOrder(orderId: request.orderId), metadata: runtime.metadata(timeout: .seconds(1), context: context))
    }

    public func checkStock(_ request: CheckStock, context: CallContext) async throws(RPCError) -> StockLevel {
        try await caller.call(request, metadata: runtime.metadata(timeout: .seconds(1), context: context))
    }

    public func getProduct(_ request: GetProduct, context: CallContext) async throws(RPCError) -> ProductInfo {
        try await caller.call(request, metadata: runtime.metadata(timeout: .seconds(1), context: context))
    }

    public func salesReport(_ request: GetSalesReport, context: CallContext) async throws(RPCError) -> SalesReport {
        try await caller.call(request, metadata: runtime.metadata(timeout: .seconds(2), context: context))
    }

    public func inventoryReport(_ request: GetInventoryReport, context: CallContext) async throws(RPCError) -> InventoryReport {
        try await caller.call(request, metadata: runtime.metadata(timeout: .seconds(2), context: context))
    }

    public func deviceReport(_ request: GetDeviceReport, context: CallContext) async throws(RPCError) -> DeviceReport {
        try await caller.call(request, metadata: runtime.metadata(timeout: .seconds(2), context: context))
    }

    public func shopDevices(_ request: GetShopDevices, context: CallContext) async throws(RPCError) -> ShopDevices {
        try await caller.call(request, metadata: runtime.metadata(timeout: .seconds(1), context: context))
    }
}
