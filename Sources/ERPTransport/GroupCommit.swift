import ERPCore
import ERPStorage
import GRDB

/// Group commit: what many tasks of one node ask to write goes into one transaction. A task hands
/// its writes over and waits; the first one schedules a flush as a new task, which runs after the
/// tasks already ready (in the simulator's executor and in a node's serial executor alike), so
/// writes asked for in the same moment share one commit and, with `synchronous = FULL`, one sync.
/// A waiter resumes only after the commit: what it wrote is durable before it answers anyone.
///
/// When a batch has several writes, each runs in a savepoint of its own (`isolated`), so one that
/// throws is undone alone and its waiter gets its error while the others commit; a write alone is
/// its own transaction. A failed commit fails every waiter of the batch. Confined to the node's
/// executor.
public final class GroupCommit: @unchecked Sendable {
    private struct Item {
        /// Whether an error thrown by the write undoes only its own writes (a savepoint of its own
        /// when it shares the transaction).
        var isolated: Bool
        /// Runs the write in the batch's transaction; returns how to resume its waiter once the
        /// transaction is committed, or throws the write's error.
        var run: (Database) throws -> () -> Void
        var fail: (any Error) -> Void
    }

    private let runtime: any Runtime
    private let database: ServiceDatabase
    private var queue: [Item] = []
    private var scheduled = false
    /// Transactions committed, and the writes committed in them.
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
            queue.append(Item(isolated: isolated, run: { db in
                let result = try work(db)
                return { waiter.resume(returning: result) }
            }, fail: { waiter.resume(throwing: $0) }))
            scheduleFlush()
        }
    }

    /// Runs each of `works` in the same batch (each in its own savepoint when there are several,
    /// so one that throws is undone alone) and returns, once the batch is committed, each one's
    /// result in order. Never throws: a failed commit is every work's failure.
    public func commitEach<T: Sendable>(_ works: [(Database) throws -> T]) async -> [Result<T, any Error>] {
        guard !works.isEmpty else { return [] }
        return await withUnsafeContinuation { (waiter: UnsafeContinuation<[Result<T, any Error>], Never>) in
            let results = Results<T>(count: works.count, waiter: waiter)
            for (i, work) in works.enumerated() {
                queue.append(Item(isolated: true, run: { db in
                    let value = try work(db)
                    return { results.set(i, .success(value)) }
                }, fail: { results.set(i, .failure($0)) }))
            }
            scheduleFlush()
        }
    }

    /// The first write of a batch schedules its flush, which runs after the tasks already ready.
    private func scheduleFlush() {
        guard !scheduled else { return }
        scheduled = true
        runtime.spawn("group-commit") { [self] in flush() }
    }

    /// The results of one `commitEach`, handed back when the last is in.
    private final class Results<T: Sendable> {
        private var values: [Result<T, any Error>?]
        private var missing: Int
        private let waiter: UnsafeContinuation<[Result<T, any Error>], Never>
        init(count: Int, waiter: UnsafeContinuation<[Result<T, any Error>], Never>) {
            values = Array(repeating: nil, count: count); missing = count; self.waiter = waiter
        }
        func set(_ i: Int, _ result: Result<T, any Error>) {
            values[i] = result
            missing -= 1
            if missing == 0 { waiter.resume(returning: values.map { $0! }) }
        }
    }

    private func flush() {
        let batch = queue
        queue.removeAll(keepingCapacity: true)
        scheduled = false
        // A write alone is its transaction: no savepoint is needed to undo it alone (when it
        // throws, the transaction is rolled back and it gets its error below). In the simulator,
        // where messages arrive at distinct instants, most batches are one write, and the
        // savepoint's two statements were a tenth of all statements run.
        let savepoints = batch.count > 1
        var committed = 0
        let resumes: [() -> Void]
        do {
            resumes = try database.write { db in
                try batch.map { item in
                    guard item.isolated, savepoints else {
                        let resume = try item.run(db)
                        committed += 1
                        return resume
                    }
                    try db.execute(cached: "SAVEPOINT groupCommitItem")
                    do {
                        let resume = try item.run(db)
                        try db.execute(cached: "RELEASE SAVEPOINT groupCommitItem")
                        committed += 1
                        return resume
                    } catch {
                        try db.execute(cached: "ROLLBACK TO SAVEPOINT groupCommitItem")
                        try db.execute(cached: "RELEASE SAVEPOINT groupCommitItem")
                        return { item.fail(error) }
                    }
                }
            }
        } catch {
            for item in batch { item.fail(error) }
            return
        }
        commits += 1
        writes += committed
        for resume in resumes { resume() }
    }
}
