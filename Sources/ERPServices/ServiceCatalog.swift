import ERPCore
import ERPStorage
import ERPTransport

/// The services this release runs, derived from one list of types. A new service is one folder
/// under `ERPServices/` and one entry in `serviceTypes`; start order, the bus's routes, what
/// `erp up` starts, which names a scenario accepts and where the checker finds each database
/// all follow from it.
public enum ServiceCatalog {
    /// Every service type. The order is a tie-break only: `startOrder` puts each service after
    /// the services it calls and after the bus when it publishes or consumes.
    static let serviceTypes: [any RetailService.Type] = [
        EventBusService.self, SwishpayProvider.self, InventoryService.self, ProductService.self,
        PaymentService.self, OrderService.self, NotificationService.self, GatewayService.self,
        ShopService.self, IoTGatewayService.self, ReportService.self, CampaignService.self, VendingMachineService.self,
    ]

    /// The services in the order they start: dependencies first (a stable topological order of
    /// `serviceTypes`).
    public static let startOrder: [ServiceName] = derivedStartOrder()

    /// The type serving `service`, or nil when this release does not run it.
    public static func type(of service: ServiceName) -> (any RetailService.Type)? {
        serviceTypes.first { $0.name == service }
    }

    /// The event types each service publishes (by their `eventType`): what the bus accepts from it.
    public static let publishedEventTypes: [ServiceName: Set<String>] = {
        var types: [ServiceName: Set<String>] = [:]
        for type in serviceTypes { types[type.name] = Set(type.publishes.map { $0.eventType }) }
        return types
    }()

    /// Every consumer group of `service`.
    public static func subscriptions(of service: ServiceName) -> [Subscription] {
        type(of: service)?.subscriptions ?? []
    }

    /// Routes for the bus when each service in `services` runs as one node named after it.
    public static func routes(for services: [ServiceName]) -> [EventRoute] {
        services.flatMap { service in
            subscriptions(of: service).map { EventRoute(subscription: $0, members: [NodeName(service)]) }
        }
    }

    /// Builds a service with a fresh context (its database opened and migrated, doing no other
    /// work: `start` does that).
    public static func make(_ service: ServiceName, runtime: any Runtime, settings: ServiceSettings,
                            routes: [EventRoute]) throws -> any ERPService {
        guard let type = type(of: service) else { throw ServiceCatalogError.notInThisRelease(service) }
        return try make(type, runtime: runtime, settings: settings, routes: routes)
    }

    private static func make<Service: RetailService>(_ type: Service.Type, runtime: any Runtime, settings: ServiceSettings,
                                                     routes: [EventRoute]) throws -> any ERPService {
        Service(context: try ServiceContext(for: type, runtime: runtime, settings: settings, routes: routes))
    }

    /// The database files of a run, as `(service, file name)`: `<node>-<database>.sqlite` for
    /// each service that declares a database, its node named after it.
    public static var databaseFiles: [(service: ServiceName, fileName: String)] {
        startOrder.compactMap { service in
            type(of: service)?.database.map { (service, ServiceDatabase.fileName(node: NodeName(service), database: $0.name)) }
        }
    }

    /// The file name of `service`'s database (as a node named after the service keeps it), or
    /// nil when it declares none.
    public static func databaseFileName(of service: ServiceName) -> String? {
        type(of: service)?.database.map { ServiceDatabase.fileName(node: NodeName(service), database: $0.name) }
    }

    /// Why the services' databases cannot be kept in `directory` (its path too long for SQLite
    /// with their names), or nil.
    public static func databaseFolderProblem(_ directory: String) -> String? {
        ServiceDatabase.folderProblem(directory, names: ServiceName.allCases.compactMap(databaseFileName(of:)))
    }

    /// The services that may call `service`'s methods: those that declare they call it (the seed's
    /// diagrams), and for the bus every service that publishes or consumes. Sorted.
    public static func callers(of service: ServiceName) -> [ServiceName] {
        var callers: [ServiceName] = []
        for type in serviceTypes where dependencies(of: type).contains(service) { callers.append(type.name) }
        return callers.sorted()
    }

    /// Whether `caller`'s key may call `method` on `service`: a request it declares sending there
    /// (`RetailService.requests`), appending its events to the bus when it publishes, and for
    /// the bus delivering events to their consumers. The seed's diagrams method by method: the
    /// gateway's key could sell stock and pin a device's status at the shop while every method
    /// of a service it calls was open to it (a security trial).
    public static func mayCall(_ caller: ServiceName, _ method: String, on service: ServiceName) -> Bool {
        guard let type = type(of: caller) else { return false }
        if method == DeliverEvents.method { return caller == .eventBus }
        if service == .eventBus && method == AppendEvents.method { return !type.publishes.isEmpty }
        return type.requests.contains { $0.service == service && $0.method == method }
    }

    /// What a service waits for: the services it calls, and the bus when it publishes or consumes.
    static func dependencies(of type: any RetailService.Type) -> [ServiceName] {
        let usesBus = !type.publishes.isEmpty || !type.subscriptions.isEmpty
        return type.calls + (usesBus && type.name != .eventBus ? [.eventBus] : [])
    }

    private static func derivedStartOrder() -> [ServiceName] {
        var placed: [ServiceName] = []
        var waiting = serviceTypes
        while !waiting.isEmpty {
            guard let next = waiting.firstIndex(where: { type in dependencies(of: type).allSatisfy(placed.contains) }) else {
                let stuck = waiting.map { "\($0.name) (calls \(dependencies(of: $0).map(\.rawValue).joined(separator: ", ")))" }
                preconditionFailure("the service catalogue has a cycle or a missing service: \(stuck.joined(separator: "; "))")
            }
            placed.append(waiting.remove(at: next).name)
        }
        return placed
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
