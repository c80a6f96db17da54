import ERPCore
import ERPStorage
import ERPTransport
import GRDB

/// A service of the retail ERP as the catalogue knows it: its type declares what it owns and what
/// it needs, and the host (simulator or `erp serve`) builds its `ServiceContext` from that. Start
/// order, the bus's routes, what `erp up` starts and which database files the checker reads are
/// all derived from these declarations (see `ServiceCatalog`).
public protocol RetailService: ERPService {
    /// The SQLite database this service owns, with its migrations; nil when it keeps no state.
    static var database: DatabaseDeclaration? { get }
    /// Event types this service writes to its outbox. Non-empty: the context carries an outbox
    /// relay to the bus.
    static var publishes: [any EventPayload.Type] { get }
    /// Services it calls synchronously: they start before it.
    static var calls: [ServiceName] { get }
    /// The requests it sends, by type: what its key may call on the services it calls (and on the
    /// bus besides appending its events); anything else is refused `forbidden` in production.
    /// Kept beside the code that sends them (a test checks each type's services are `calls`).
    static var requests: [any RPCRequest.Type] { get }
    /// Builds the service, doing no work (`start` does that).
    init(context: ServiceContext)
}

extension RetailService {
    public static var database: DatabaseDeclaration? { nil }
    public static var publishes: [any EventPayload.Type] { [] }
    public static var calls: [ServiceName] { [] }
    public static var requests: [any RPCRequest.Type] { [] }
}

/// A service's database: its name (the file is `<node>-<name>.sqlite`) and its migrations.
public struct DatabaseDeclaration: Sendable {
    public var name: String
    public var migrations: [Migration]
    public init(_ name: String, migrations: [Migration]) { self.name = name; self.migrations = migrations }
}

/// What a host hands a service at each start (one per incarnation): the runtime, the settings of
/// the run, its database opened and migrated, its outbox relay (not yet started: the service starts
/// it where its recovery allows), and consumers that carry the run's planted defects. Built once
/// here, so no service repeats the wiring.
public final class ServiceContext: @unchecked Sendable {
    // @unchecked Sendable: every stored property is immutable; the objects it hands out are
    // confined to the node's executor like the service itself.
    public let service: ServiceName
    public let runtime: any Runtime
    public let settings: ServiceSettings
    /// Every consumer group of the topology and the nodes that share its events (the bus reads it).
    public let routes: [EventRoute]
    private let openedDatabase: ServiceDatabase?
    /// Carries the outbox to the bus; nil for a service that publishes nothing.
    public let relay: OutboxRelay?

    /// Opens the database `Service` declares and makes its relay. Throws when the database cannot
    /// be opened or migrated.
    public init<Service: RetailService>(for service: Service.Type, runtime: any Runtime, settings: ServiceSettings,
                                        routes: [EventRoute]) throws {
        self.service = Service.name
        self.runtime = runtime
        self.settings = settings
        self.routes = routes
        let database = try Service.database.map { try runtime.openDatabase($0.name, migrations: $0.migrations) }
        openedDatabase = database
        if !Service.publishes.isEmpty {
            guard let database else { preconditionFailure("\(Service.name) publishes events but declares no database for its outbox") }
            relay = OutboxRelay(runtime: runtime, database: database)
        } else {
            relay = nil
        }
    }

    /// The service's database. Only for a service that declares one.
    public var database: ServiceDatabase {
        guard let openedDatabase else { preconditionFailure("\(runtime.node) declares no database") }
        return openedDatabase
    }

    /// Writes an event to the outbox inside the caller's transaction, at the version this run's
    /// producers write its type, stamped with the runtime's clock and a fresh id, the service as
    /// its source. The relay publishes it after the commit.
    public func publish<P: EventPayload>(_ payload: P, correlationId: String, in db: Database) throws {
        try Outbox.append(EventEnvelope(payload, eventId: runtime.ids.next("evt"), source: service, timestamp: runtime.clock.now,
                                        correlationId: correlationId, version: settings.eventVersions.version(of: P.self)),
                          in: db, memo: database.outboxMemo)
    }

    /// A consumer reading events as `group`, with the run's planted defects, whose commits wake
    /// the relay (an effect may have written to the outbox). The service registers its effects,
    /// then calls `start()`.
    public func consumer(group: String) -> EventConsumer {
        let consumer = EventConsumer(runtime: runtime, database: database, group: group)
        consumer.skipInbox = settings.defects.skipInbox
        if let relay { consumer.afterCommit = { relay.notify() } }
        return consumer
    }
}
