// ERPServices: the retail ERP's services, written against ERPTransport only. They take time,
// randomness, ids, sleeps and new tasks from their Runtime and never know which backend runs them.
import ERPCore
import ERPTransport

/// Defects that can be planted on purpose, to prove the consistency checker catches each one.
/// All off in a normal run.
public struct PlantedDefects: Sendable, Hashable, Codable {
    /// The order saga skips the stock release when a payment fails.
    public var skipStockRelease = false
    /// The payment service forgets its per-order idempotency and charges on every attempt.
    public var ignorePaymentIdempotency = false
    /// Event consumers apply an effect even when the inbox already has the event.
    public var skipInbox = false
    /// The order service confirms an order even when the payment was declined.
    public var confirmDeclinedPayments = false
    public init() {}

    public static let names = ["skip-stock-release", "ignore-payment-idempotency", "skip-inbox", "confirm-declined-payments"]

    public mutating func enable(_ name: String) -> Bool {
        switch name {
        case "skip-stock-release": skipStockRelease = true
        case "ignore-payment-idempotency": ignorePaymentIdempotency = true
        case "skip-inbox": skipInbox = true
        case "confirm-declined-payments": confirmDeclinedPayments = true
        default: return false
        }
        return true
    }

    public var enabledNames: [String] {
        var out: [String] = []
        if skipStockRelease { out.append("skip-stock-release") }
        if ignorePaymentIdempotency { out.append("ignore-payment-idempotency") }
        if skipInbox { out.append("skip-inbox") }
        if confirmDeclinedPayments { out.append("confirm-declined-payments") }
        return out
    }
}

/// How swishpay behaves, changeable during a run (a provider fault). Shared by reference between
/// the scenario runner and the provider; read on the provider's executor only.
public final class ProviderKnobs: @unchecked Sendable {
    /// Probability that swishpay declines a new charge with `insufficient_funds`.
    public var declineRate: Double = 0
    /// How long swishpay takes to answer a charge.
    public var processingTime: Duration = .milliseconds(20)
    public init() {}
}

/// Settings every service may read. One value for the whole topology, so that a scenario sets
/// each knob in one place.
public struct ServiceSettings: Sendable {
    public var fixtures: Fixtures
    public var defects = PlantedDefects()
    /// The simulated provider's behaviour; a scenario may change it while the run goes on.
    public var provider = ProviderKnobs()
    /// Timeout of one saga step call (reserve, pay, release, refund).
    public var sagaStepTimeout: Duration = .seconds(1)
    /// Attempts of one saga step whose outcome stays unknown before the saga compensates.
    public var sagaStepAttemptCountMax = 40
    public var sagaBackoffInitial: Duration = .milliseconds(100)
    public var sagaBackoffMax: Duration = .seconds(2)
    /// Breakers, retries and rate limits of every synchronous path.
    public var resilience = ResilienceSettings()
    /// What those policies did, shared with the runner for its report.
    public var resilienceMetrics = ResilienceMetrics()
    /// How long before a caller's deadline a service answers with what it has (an order still
    /// pending) rather than let the caller time out.
    public var answerMargin: Duration = .milliseconds(100)
    /// Timeout the gateway gives the order service for creating an order.
    public var gatewayOrderTimeout: Duration = .seconds(4)

    public init(fixtures: Fixtures) { self.fixtures = fixtures }
}

/// The services of the order slice, in the order they start (dependencies first).
public enum ServiceCatalog {
    public static let startOrder: [ServiceName] = [.eventBus, .swishpay, .inventory, .product, .payment, .order, .notification, .gateway]

    /// Every consumer group: what the bus must route to whom.
    public static func subscriptions(of service: ServiceName) -> [Subscription] {
        switch service {
        case .inventory: InventoryService.subscriptions
        case .notification: NotificationService.subscriptions
        case .product: ProductService.subscriptions
        default: []
        }
    }

    /// Routes for the bus when each service in `services` runs as one node named after it.
    public static func routes(for services: [ServiceName]) -> [EventRoute] {
        services.flatMap { service in
            subscriptions(of: service).map { EventRoute(subscription: $0, members: [NodeName(service)]) }
        }
    }

    /// Builds a service (doing no work: `start` does that).
    public static func make(_ service: ServiceName, runtime: any Runtime, settings: ServiceSettings,
                            routes: [EventRoute]) throws -> any ERPService {
        switch service {
        case .eventBus: return EventBusService(runtime: runtime, routes: routes)
        case .swishpay: return SwishpayProvider(runtime: runtime, settings: settings)
        case .inventory: return InventoryService(runtime: runtime, settings: settings)
        case .payment: return PaymentService(runtime: runtime, settings: settings)
        case .order: return OrderService(runtime: runtime, settings: settings)
        case .notification: return NotificationService(runtime: runtime, settings: settings)
        case .gateway: return GatewayService(runtime: runtime, settings: settings)
        case .product: return ProductService(runtime: runtime, settings: settings)
        case .report, .shop, .iotGateway, .campaign:
            throw ServiceCatalogError.notInThisRelease(service)
        }
    }
}

public enum ServiceCatalogError: Error, CustomStringConvertible {
    case notInThisRelease(ServiceName)
    public var description: String {
        switch self {
        case .notInThisRelease(let s): "the \(s) service is not implemented yet; this release runs \(ServiceCatalog.startOrder.map(\.rawValue).joined(separator: ", "))"
        }
    }
}

/// Runs a storage transaction, turning a storage failure into the RPC error a caller can act on.
func storage<T>(_ body: () throws -> T) throws -> T {
    do { return try body() } catch let error as RPCError { throw error } catch {
        throw RPCError.unavailable("storage: \(error)")
    }
}
