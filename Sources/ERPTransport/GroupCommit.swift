import ERPCore
import ERPStorage
import GRDB

/// Group commit: what many tasks of one node ask to write goes into one transaction. A task hands
/// its writes over and waits; the first one schedules a flush as a new task, which runs after the
/// tasks already ready (in the simulator's executor and in a node's serial executor alike), so
/// writes asked for in the same moment share one commit and, with `synchronous = FULL`, one sync.
/// A waiter resumes only after the commit: what it wrote is durable before it answers anyone.
///
/// Each write runs in a savepoint of its own (`isolated`), so one that throws is undone alone and
/// its waiter gets its error while the others commit; a failed commit fails every waiter of the
/// batch. Confined to the node's executor.
public final class GroupCommit: @unchecked Sendable {
    private struct Item {
        /// Runs the write in the batch's transaction; returns how to resume its waiter once the
        /// transaction is committed.
        var run: (Database) throws -> () -> Void
        var fail: (any Error) -> Void
    }

    private let runtime: any Runtime
    private let database: ServiceDatabase
    private var queue: [Item] = []
    private var scheduled = false
    /// Transactions committed, and the writes they carried.
    public private(set) var commits = 0
    public private(set) var writes = 0

    public init(runtime: any Runtime, database: ServiceDatabase) {
        self.runtime = runtime
        self.database = database
    }

    /// Returns `work`'s result once it is committed with the others of its batch. With
    /// `isolated`, an error thrown by `work` undoes only its own writes; without, it fails the
    /// whole batch (for writes that cannot fail but on storage).
    public func commit<T: Sendable>(isolated: Bool = true, _ work: @escaping (Database) throws -> T) async throws -> T {
        try await withUnsafeThrowingContinuation { (waiter: UnsafeContinuation<T, any Error>) in
            queue.append(Item(run: { db in
                guard isolated else {
                    let result = try work(db)
                    return { waiter.resume(returning: result) }
                }
                try db.execute(cached: "SAVEPOINT groupCommitItem")
                do {
                    let result = try work(db)
                    try db.execute(cached: "RELEASE SAVEPOINT groupCommitItem")
                    return { waiter.resume(returning: result) }
                } catch {
                    try db.execute(cached: "ROLLBACK TO SAVEPOINT groupCommitItem")
                    try db.execute(cached: "RELEASE SAVEPOINT groupCommitItem")
                    return { waiter.resume(throwing: error) }
                }
            }, fail: { waiter.resume(throwing: $0) }))
            guard !scheduled else { return }
            scheduled = true
            runtime.spawn("group-commit") { [self] in flush() }
        }
    }

    private func flush() {
        let batch = queue
        queue.removeAll(keepingCapacity: true)
        scheduled = false
        let resumes: [() -> Void]
        do {
            resumes = try database.write { db in try batch.map { try $0.run(db) } }
        } catch {
            for item in batch { item.fail(error) }
            return
        }
        commits += 1
        writes += batch.count
        for resume in resumes { resume() }
    }
}
