// ERPStorage owns each service's SQLite database (through GRDB): opening it with the right
// durability, running the service's migrations, and the tables every service shares: the outbox
// (events written in the same transaction as the state change), the inbox (which events a consumer
// group has applied) and the idempotency store (the response recorded for a key).
//
// Every call here is synchronous on purpose: GRDB's async variants resume on GRDB's own queues,
// outside the simulator's executor, which would make runs irreproducible.
import ERPCore
import Foundation
import GRDB
import GRDBSQLite

/// When a commit waits for the disk: SQLite's `synchronous` setting, or ours.
public enum SynchronousMode: String, Sendable, CaseIterable {
    /// Never: a power loss can lose or tear anything written since the file was made.
    case off
    /// In WAL mode, at checkpoints only: a power loss can lose the last commits, never tear one.
    case normal
    /// At every commit: a commit that returned survives a power loss.
    case full
    /// Before anything leaves the node: commits do not wait (SQLite's NORMAL), and every message
    /// the node sends waits for a sync of the WAL that covers every commit made before it. A
    /// power loss can take back only commits nobody has heard of, as a crash a moment earlier
    /// would; concurrent work shares one sync, and production syncs off the service's thread.
    case beforeSend = "before-send"

    /// Every mode's name, for the messages that refuse another: "off, normal, full, before-send".
    public static var choices: String { allCases.map(\.rawValue).joined(separator: ", ") }

    var pragma: String {
        switch self {
        case .off: "PRAGMA synchronous = OFF"
        case .normal, .beforeSend: "PRAGMA synchronous = NORMAL"
        case .full: "PRAGMA synchronous = FULL"
        }
    }
}

/// How a service's database meets its disk. Every service acknowledges what it commits to
/// another (an order accepted, stock reserved, a charge made, an event appended or applied), so a
/// commit must survive a power loss before it is acknowledged: WAL, synced before anything leaves
/// the node (`.beforeSend`), in production and in simulation alike (docs/durability.md shows the
/// power-loss scenario that catches a weaker setting).
public struct Durability: Sendable, Hashable {
    /// Where a transaction keeps what it needs to roll back or to recover.
    public enum Journal: String, Sendable, Hashable {
        /// A write-ahead log beside the file: commits append to it, checkpoints copy it back.
        /// Survives a crash of the process at any instant, and a power loss per `synchronous`.
        case wal
        /// A rollback journal in the connection's memory: a commit writes its pages into the file
        /// in place. A transaction still rolls back, but a process that dies inside a commit can
        /// leave the file torn; only for a simulated node, whose process dies between the jobs of
        /// its executor (a transaction runs inside one job) and whose disk never fails. (The erp
        /// process itself killed inside a commit can leave such a file torn: its run is lost anyway.)
        case memory
    }

    public var synchronous: SynchronousMode
    /// One connection holds the file's lock for its whole life (no lock calls around each
    /// transaction, and WAL's index in the connection's memory): the simulator, where nobody else
    /// opens a node's file while the node is up.
    public var exclusiveLock: Bool
    public var journal: Journal

    public init(synchronous: SynchronousMode, exclusiveLock: Bool, journal: Journal = .wal) {
        precondition(journal == .wal || synchronous == .off, "a journal in memory is never synced: synchronous must be off")
        self.synchronous = synchronous; self.exclusiveLock = exclusiveLock; self.journal = journal
    }

    /// Production: WAL synced before anything leaves the node, ordinary locking.
    public static let durable = Durability(synchronous: .beforeSend, exclusiveLock: false)

    /// Simulation: the production setting unless a scenario weakens it, on a simulated disk.
    public static func simulated(_ synchronous: SynchronousMode = .beforeSend) -> Durability {
        Durability(synchronous: synchronous, exclusiveLock: true)
    }
}

/// One step of a service's schema, applied once, in order.
public typealias Migration = (name: String, migrate: @Sendable (Database) throws -> Void)

/// One service's database. Confined to the executor of the service that owns it.
public final class ServiceDatabase: @unchecked Sendable {
    public let path: String
    public let durability: Durability
    private var queue: DatabaseQueue?
    /// Under `.beforeSend`: something was committed since the WAL was last synced (set by
    /// `write`, and by `read` if its body changed rows after all). Whoever sends for the node
    /// syncs first (`syncLog`, or a sync of `logPath` of its own and `markSynced`).
    public private(set) var needsSync = false
    /// SQLite's count of rows changed on the connection when `needsSync` was last worked out.
    private var changesSeen: Int64 = 0
    /// The envelopes appended to this database's outbox since it was opened (`Outbox.append`).
    public let outboxMemo = OutboxMemo()

    /// The WAL file, which a sync makes durable.
    public var logPath: String { path + "-wal" }

    /// What SQLite holds for the whole process, in bytes (`sqlite3_memory_used`): every
    /// connection's page cache, prepared statements and schemas. Bounded by the caches' size,
    /// which it reaches as a database outgrows its cache; `erp soak` tells it apart from the rest
    /// of a process's heap.
    public static var sqliteMemoryInUse: Int { Int(sqlite3_memory_used()) }

    /// The longest path SQLite opens on Unix, in bytes (its `MAX_PATHNAME`): a database in a
    /// folder too deep for its journal's name fails with "unable to open database file".
    public static let pathLengthMax = 512

    /// Why databases named `names` (`fileName(node:database:)`) cannot be kept in `directory`, or
    /// nil: the folder's real path, a name and its journal's suffix must fit SQLite's path limit
    /// (`--out` of 461 bytes failed a run with "SQLite error 14: unable to open database file",
    /// naming neither the path nor the limit).
    public static func folderProblem(_ directory: String, names: [String]) -> String? {
        let real = MemoryVolume.absolute(directory)
        guard let longest = names.max(by: { $0.utf8.count < $1.utf8.count }) else { return nil }
        // The folder's separator, the name and its journal's "-journal".
        let beyondFolder = 1 + longest.utf8.count + 8
        guard real.utf8.count + beyondFolder > pathLengthMax else { return nil }
        return "\(real) is \(real.utf8.count) bytes long: with \(longest)'s journal the path would be \(real.utf8.count + beyondFolder) bytes, "
            + "past SQLite's \(pathLengthMax); a folder of at most \(pathLengthMax - beyondFolder) bytes"
    }

    /// The file a node keeps a database in: `<node>-<database>.sqlite`. Both runtimes and the
    /// checker that reads the files after a run use this one spelling.
    public static func fileName(node: NodeName, database: String) -> String {
        node.rawValue + "-" + database + ".sqlite"
    }

    /// Deletes every database file of `node` in `directory` (its WAL and shared-memory files too),
    /// as a lost disk would, on a simulated disk too: the files named by
    /// `fileName(node:database:)`, whatever the database. Returns the files that could not be removed, with why. The node must be down.
    public static func removeFiles(ofNode node: NodeName, in directory: String) -> [(file: String, error: any Error)] {
        let prefix = node.rawValue + "-"
        if let volume = MemoryVFS.volume(forDirectory: MemoryVolume.absolute(directory)) {
            _ = volume.removeFiles(withPrefix: prefix)
            return []
        }
        let files = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        var failures: [(file: String, error: any Error)] = []
        for file in files.sorted() where file.hasPrefix(prefix) && file.contains(".sqlite") {
            do { try FileManager.default.removeItem(atPath: directory + "/" + file) } catch { failures.append((file, error)) }
        }
        return failures
    }

    /// Opens (creating if needed) the database at `path` and brings its schema up to date:
    /// the shared tables first, then the service's own migrations, in order.
    public init(path: String, durability: Durability, migrations: [Migration]) throws {
        self.path = path
        self.durability = durability
        var configuration = Configuration()
        configuration.prepareDatabase { db in
            // The lock first: a WAL left by a power loss is then read into the connection's own
            // memory (a simulated disk has no shared-memory index to offer).
            if durability.exclusiveLock { try db.execute(sql: "PRAGMA locking_mode = EXCLUSIVE") }
            try db.execute(sql: durability.synchronous.pragma)
        }
        let queue: DatabaseQueue
        do {
            queue = try DatabaseQueue(path: path, configuration: configuration)
            try queue.writeWithoutTransaction { db in
                try db.execute(sql: durability.journal == .wal ? "PRAGMA journal_mode = WAL" : "PRAGMA journal_mode = MEMORY")
            }
            var migrator = DatabaseMigrator()
            migrator.registerMigration("shared-1") { db in try SharedTables.create(db) }
            for m in migrations { migrator.registerMigration(m.name, migrate: m.migrate) }
            migrator.registerMigration("shared-2") { db in try SharedTables.clusterInbox(db) }
            try migrator.migrate(queue)
        } catch let error as DatabaseError where [SQLITE_CANTOPEN, SQLITE_READONLY, SQLITE_FULL, SQLITE_PERM].contains(error.resultCode.primaryResultCode.rawValue) {
            // "SQLite error 14: unable to open database file - while executing 'PRAGMA …'" named
            // neither the file nor what to look at.
            throw StorageError.cannotOpen(path, "\(error.message ?? "\(error)") (SQLite error \(error.resultCode.primaryResultCode.rawValue)); is its folder there, writable and not full?")
        }
        self.queue = queue
        if durability.synchronous == .beforeSend {
            changesSeen = queue.writeWithoutTransaction { sqlite3_total_changes64($0.sqliteConnection) }
            // What the migrations wrote (and the WAL file's own name in its folder: SQLite syncs
            // the folder at a new file's first sync) is made durable now. A disk that fails the
            // sync does not keep the service from starting (it may only read for a while): the
            // sync is then owed, and the first message waits for it like any other.
            do { try syncLog() } catch { needsSync = true }
        }
    }

    /// Makes every commit so far durable: a sync of the WAL through SQLite's own file (its VFS:
    /// the simulated disk in simulation), on the calling thread. Throws when the sync failed;
    /// `needsSync` then stays set.
    public func syncLog() throws {
        guard let queue else { throw StorageError.closed(path) }
        try queue.writeWithoutTransaction { db in
            var file: UnsafeMutablePointer<sqlite3_file>?
            let found = sqlite3_file_control(db.sqliteConnection, "main", SQLITE_FCNTL_JOURNAL_POINTER, &file)
            guard found == SQLITE_OK, let file, let methods = file.pointee.pMethods, let sync = methods.pointee.xSync else {
                throw StorageError.corrupt("\(path): no WAL file to sync")
            }
            let rc = sync(file, SQLITE_SYNC_NORMAL)
            guard rc == SQLITE_OK else { throw DatabaseError(resultCode: ResultCode(rawValue: rc), message: "sync of \(logPath) failed") }
        }
        needsSync = false
    }

    /// The WAL was synced by someone else (a sync of `logPath` on a descriptor of its own) after
    /// the last commit.
    public func markSynced() { needsSync = false }

    /// Runs `body` in one transaction: all of it is committed, or none of it.
    ///
    /// The transaction's BEGIN, COMMIT and ROLLBACK are cached statements: GRDB's own `write`
    /// compiles them again on every call, under its statement authorizer, and that was a tenth of
    /// a simulated order's CPU.
    public func write<T>(_ body: (Database) throws -> T) throws -> T {
        guard let queue else { throw StorageError.closed(path) }
        return try queue.writeWithoutTransaction { db in
            try db.execute(cached: "BEGIN IMMEDIATE TRANSACTION")
            let result: T
            do {
                result = try body(db)
            } catch {
                if db.isInsideTransaction { try? db.execute(cached: "ROLLBACK TRANSACTION") }
                noteChanges(db, committed: false)
                throw error
            }
            do {
                try db.execute(cached: "COMMIT TRANSACTION")
            } catch {
                if db.isInsideTransaction { try? db.execute(cached: "ROLLBACK TRANSACTION") }
                noteChanges(db, committed: false)
                throw error
            }
            noteChanges(db, committed: true)
            return result
        }
    }

    /// Under `.beforeSend`, sets `needsSync` if rows changed since it was last worked out and
    /// they were `committed` (a transaction rolled back leaves nothing anyone must hear of; the
    /// WAL frames it may have written carry no commit).
    @inline(__always)
    private func noteChanges(_ db: Database, committed: Bool) {
        guard durability.synchronous == .beforeSend else { return }
        let changes = sqlite3_total_changes64(db.sqliteConnection)
        if changes != changesSeen {
            changesSeen = changes
            if committed { needsSync = true }
        }
    }

    /// Runs `body`, which only reads.
    ///
    /// Not GRDB's `read`, which also switches `query_only` on and off around every call (two more
    /// statements compiled each time), and no transaction of its own either: this connection is
    /// the database's only one while the service runs, and its calls are serialized, so nothing
    /// can write between the statements of `body`; each reads the same state as a transaction
    /// around them would. (Those BEGIN and COMMIT were a seventh of a simulated order's
    /// statements.)
    public func read<T>(_ body: (Database) throws -> T) throws -> T {
        guard let queue else { throw StorageError.closed(path) }
        return try queue.writeWithoutTransaction { db in
            // A body that wrote after all (each statement its own transaction) counts as committed.
            defer { noteChanges(db, committed: true) }
            return try body(db)
        }
    }

    /// Closes the connection. Work not yet committed is gone, as in a crash.
    public func close() throws {
        try queue?.close()
        queue = nil
    }
}

public enum StorageError: Error, CustomStringConvertible {
    case closed(String)
    case corrupt(String)
    /// The database file at a path could not be opened or set up, and why.
    case cannotOpen(String, String)
    public var description: String {
        switch self {
        case .closed(let p): "database \(p) is closed"
        case .cannotOpen(let p, let why): "cannot open the database \(p): \(why)"
        case .corrupt(let why): "stored data is unreadable: \(why)"
        }
    }
}

enum SharedTables {
    /// The inbox rebuilt as a table clustered on its key (`WITHOUT ROWID`): a consumer's insert
    /// writes one B-tree, not a rowid table and the key's index beside it. Every consumed event
    /// inserts a row, and so did a quarter of a simulated order's inserts.
    static func clusterInbox(_ db: Database) throws {
        try db.execute(sql: """
            CREATE TABLE inbox_clustered (
              consumerGroup TEXT NOT NULL,
              eventId TEXT NOT NULL,
              eventType TEXT NOT NULL,
              appliedAt INTEGER NOT NULL,
              PRIMARY KEY (consumerGroup, eventId)
            ) WITHOUT ROWID;
            INSERT INTO inbox_clustered (consumerGroup, eventId, eventType, appliedAt)
              SELECT consumerGroup, eventId, eventType, appliedAt FROM inbox;
            DROP TABLE inbox;
            ALTER TABLE inbox_clustered RENAME TO inbox;
            """)
    }

    static func create(_ db: Database) throws {
        try db.execute(sql: """
            CREATE TABLE outbox (
              seq INTEGER PRIMARY KEY AUTOINCREMENT,
              eventId TEXT NOT NULL UNIQUE,
              topic TEXT NOT NULL,
              envelope TEXT NOT NULL
            );
            CREATE TABLE inbox (
              consumerGroup TEXT NOT NULL,
              eventId TEXT NOT NULL,
              eventType TEXT NOT NULL,
              appliedAt INTEGER NOT NULL,
              PRIMARY KEY (consumerGroup, eventId)
            );
            CREATE TABLE idempotency (
              key TEXT PRIMARY KEY,
              response TEXT NOT NULL,
              recordedAt INTEGER NOT NULL
            );
            """)
    }
}
