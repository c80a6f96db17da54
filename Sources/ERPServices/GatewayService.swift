import ERPCore
import ERPTransport

/// The API gateway: routes client calls to the services (the seed's REST hop), passing on the
/// correlation id, the idempotency key and what remains of the deadline.
public final class GatewayService: ERPService, @unchecked Sendable {
    public static let name = ServiceName.gateway

    let runtime: any Runtime
    let settings: ServiceSettings

    public init(runtime: any Runtime, settings: ServiceSettings) {
        self.runtime = runtime
        self.settings = settings
    }

    public func start() async throws {
        let transport = runtime.transport
        transport.register(PlaceOrder.self) { [self] request, context in
            try await runtime.transport.call(CreateOrder(userId: request.userId, shopId: request.shopId, items: request.items),
                                             metadata: runtime.metadata(timeout: settings.gatewayOrderTimeout, context: context,
                                                                        idempotencyKey: context.idempotencyKey))
        }
        transport.register(FetchOrder.self) { [self] request, context in
            try await runtime.transport.call(GetOrder(orderId: request.orderId),
                                             metadata: runtime.metadata(timeout: .seconds(1), context: context))
        }
    }
}
