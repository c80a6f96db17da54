import ERPCore
import ERPStorage
import ERPTransport
import Foundation
import Logging
import ZeroMQ

/// The runtime of one production node: wall time, the operating system's randomness, a
/// `ZeroMQTransport`, swift-log, and one `SerialTaskExecutor` that runs every task of the node.
///
/// Twin of the simulator's `SimRuntime`. Differences: time is `SystemClock` (wall time), randomness
/// is `SystemRandomSource`, sleeping waits for real, databases are `.durable` (WAL synced before
/// anything leaves the node, by `SyncBeforeSend`, with ordinary locking: a machine may lose power,
/// not only the process) and `record` writes to the log rather than to a hashed trace.
public final class ZeroMQRuntime: Runtime, @unchecked Sendable {
    // @unchecked Sendable: every stored property is immutable except `databases`, behind a lock.
    public let node: NodeName
    /// How the node's databases meet the disk (`.durable` unless the topology weakens it).
    public let durability: Durability
    public let clock: any ServiceClock
    public let random: any RandomSource
    public let ids: IDGenerator
    public let transport: any Transport
    public let logger: Logger
    /// The node's one thread: every task spawned here, and every handler the transport runs.
    public let executor: SerialTaskExecutor
    /// Where `openDatabase` puts `<node>-<name>.sqlite`.
    public let dataDirectory: String
    private let databases = Locked<[ServiceDatabase]>([])
    /// Syncs the node's WAL files before its transport sends (`.beforeSend`); shared with it.
    public let syncBeforeSend: SyncBeforeSend?

    /// - Parameters:
    ///   - transport: the node's transport; usually a `ZeroMQTransport` built on the same executor.
    ///   - random: the node's randomness; the operating system's unless given (a scenario runner
    ///     seeds its workload so that runs draw the same orders).
    ///   - logLevel: swift-log level of `logger` (its label is the node's name).
    ///   - syncBeforeSend: the barrier the node's transport waits on before it sends. Without one,
    ///     `.beforeSend` databases commit as `.full` (each commit waits for its own sync): nothing
    ///     would sync them otherwise.
    public init(node: NodeName, transport: any Transport, executor: SerialTaskExecutor, dataDirectory: String,
                clock: SystemClock = SystemClock(), random: (any RandomSource)? = nil, logLevel: Logger.Level = .info,
                durability: Durability = .durable, syncBeforeSend: SyncBeforeSend? = nil) {
        self.node = node
        self.syncBeforeSend = syncBeforeSend
        var durability = durability
        if durability.synchronous == .beforeSend && syncBeforeSend == nil { durability.synchronous = .full }
        self.durability = durability
        self.transport = transport
        self.executor = executor
        self.dataDirectory = dataDirectory
        self.clock = clock
        let random = random ?? SystemRandomSource()
        self.random = random
        self.ids = IDGenerator(random: random)
        var logger = Logger(label: node.rawValue, metadataProvider: CorrelationScope.metadataProvider)
        logger.logLevel = logLevel
        self.logger = logger
    }

    /// Waits `duration` of wall time. The wake-up comes from the node's executor thread (see
    /// `SerialTaskExecutor` for why not `Task.sleep`); if the node shuts down, the task never
    /// resumes, as in a process that died.
    public func sleep(for duration: Duration) async {
        let started = ContinuousClock.now
        await executor.sleep(for: duration)
        HandlerWaits.add(ContinuousClock.now - started)
    }

    /// Starts `body` on the node's executor. After `shutdown` the executor drops it.
    public func spawn(_ label: String, _ body: @escaping @Sendable () async -> Void) {
        Task(executorPreference: executor) { await body() }
    }

    public func openDatabase(_ name: String, migrations: [Migration]) throws -> ServiceDatabase {
        let path = dataDirectory + "/" + ServiceDatabase.fileName(node: node, database: name)
        let database = try ServiceDatabase(path: path, durability: durability, migrations: migrations)
        databases.withLock { $0.append(database) }
        if durability.synchronous == .beforeSend, let syncBeforeSend { try syncBeforeSend.add(database) }
        return database
    }

    public func record(_ transition: @autoclosure () -> String) {
        logger.info("\(transition())")
    }

    /// Closes every database this runtime opened (after the executor has stopped, so no task is
    /// in the middle of a transaction). Returns the failures, which the caller reports.
    public func closeDatabases() -> [any Error] {
        syncBeforeSend?.stop()
        let opened = databases.withLock { list in
            let taken = list
            list = []
            return taken
        }
        var failures: [any Error] = []
        for database in opened {
            do { try database.close() } catch { failures.append(error) }
        }
        return failures
    }
}
