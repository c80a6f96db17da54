import ERPCore
import ERPResilience
import ERPTransport

/// The API gateway: routes client calls to the services (the seed's REST hop), passing on the
/// correlation id, the idempotency key and what remains of the deadline, through the call policy
/// of each path. It sheds load per client and as a whole with token buckets (`overloaded`, the
/// seed's 429, with a retry-after hint).
public final class GatewayService: ERPService, @unchecked Sendable {
    public static let name = ServiceName.gateway

    let runtime: any Runtime
    let settings: ServiceSettings
    private let caller: ResilientCaller
    private var perClient: RateLimiter?
    private var whole: TokenBucket?

    public init(runtime: any Runtime, settings: ServiceSettings) {
        self.runtime = runtime
        self.settings = settings
        self.caller = ResilientCaller(runtime: runtime, caller: .gateway, settings: settings.resilience, metrics: settings.resilienceMetrics)
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
        transport.register(PlaceOrder.self) { [self] request, context in
            try admit(client: request.userId)
            return try await caller.call(CreateOrder(userId: request.userId, shopId: request.shopId, items: request.items),
                                         metadata: runtime.metadata(timeout: settings.gatewayOrderTimeout, context: context,
                                                                    idempotencyKey: context.idempotencyKey))
        }
        transport.register(FetchOrder.self) { [self] request, context in
            try await caller.call(GetOrder(orderId: request.orderId), metadata: runtime.metadata(timeout: .seconds(1), context: context))
        }
    }
}
