import ERPCore
import ERPSimulation
import ERPStorage
import ERPTransport
import Foundation
import GRDB
import Testing

/// A world whose disks cannot fail keeps its databases' journals in memory and never syncs
/// (`SimStorage.memoryWithoutDiskFaults`); a process crash must still keep every commit and
/// nothing of a transaction that failed.
@Suite struct DisksWithoutFaultsTests {
    struct Failed: Error {}

    /// What each start of the service found: its database's journal mode and its rows.
    final class Starts: @unchecked Sendable { var found: [(journal: String, rows: Int, failedRows: Int)] = [] }

    /// Every 100 ms: commits one row, then fails a transaction after its insert.
    final class Writer: ERPService, @unchecked Sendable {
        static let name = ServiceName.inventory
        let runtime: any Runtime
        let starts: Starts
        init(runtime: any Runtime, starts: Starts) { self.runtime = runtime; self.starts = starts }
        func start() async throws {
            let db = try runtime.openDatabase("w", migrations: [("t", { try $0.execute(sql: "CREATE TABLE t (n INTEGER PRIMARY KEY)") })])
            let journal = try db.read { try String.fetchOne($0, sql: "PRAGMA journal_mode") } ?? "?"
            let rows = try db.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM t WHERE n < 1000000") } ?? -1
            let failedRows = try db.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM t WHERE n >= 1000000") } ?? -1
            starts.found.append((journal, rows, failedRows))
            runtime.spawn("writer") { [runtime] in
                var n = rows
                while true {
                    await runtime.sleep(for: .milliseconds(100))
                    n += 1
                    _ = try? db.write { try $0.execute(sql: "INSERT INTO t (n) VALUES (?)", arguments: [n]) }
                    _ = try? db.write { db in
                        try db.execute(sql: "INSERT INTO t (n) VALUES (?)", arguments: [1_000_000 + n])
                        throw Failed()
                    }
                }
            }
        }
    }

    /// Ten commits by 1,000 ms, a crash at 1,050 ms, a restart at 1,200 ms: the restarted
    /// service finds the ten rows and none of the failed transactions', with any storage. Only the
    /// disks that can fail keep WAL.
    @Test(arguments: [SimStorage.memoryWithoutDiskFaults, .memory(modelsPowerLoss: false), .files])
    func commitsSurviveACrashAndFailedTransactionsLeaveNothing(storage: SimStorage) throws {
        let world = SimWorld(seed: 3, storageDirectory: scratchFolder(), trace: try SimTrace(), storage: storage)
        let starts = Starts()
        world.addNode("w", serving: .inventory) { Writer(runtime: $0, starts: starts) }.start()
        world.schedule(at: .milliseconds(1_050)) { world.crash("w") }
        world.schedule(at: .milliseconds(1_200)) { world.restart("w") }
        world.run(until: .milliseconds(1_300))

        let journal = storage == .memory(modelsPowerLoss: false) ? "wal" : "memory"
        #expect(starts.found.map(\.journal) == [journal, journal])
        #expect(starts.found.map(\.rows) == [0, 10])
        #expect(starts.found.map(\.failedRows) == [0, 0])
        #expect(world.modelsDiskFaults == (storage == .memory(modelsPowerLoss: false)))
    }
}
