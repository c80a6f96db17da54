import ERPCore

/// A service: built with its runtime (doing no work in `init`), then started. `start` registers
/// the handlers, recovers what was in flight from the database and spawns background loops through
/// the runtime; it returns once the service is serving.
public protocol ERPService: AnyObject, Sendable {
    static var name: ServiceName { get }
    /// The consumer groups this service reads events as.
    static var subscriptions: [Subscription] { get }
    func start() async throws
}

extension ERPService {
    public static var subscriptions: [Subscription] { [] }
}
