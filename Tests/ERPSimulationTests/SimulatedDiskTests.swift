import ERPCore
import ERPStorage
import Foundation
import GRDB
import Testing

/// The simulator's disks (`MemoryVolume`, the VFS under SQLite): files in memory, power loss by
/// the seed, failing writes, slow syncs. Each test has a volume of its own.
@Suite struct SimulatedDiskTests {
    static let migrations: [Migration] = [("t", { db in try db.execute(sql: "CREATE TABLE t (n INTEGER PRIMARY KEY)") })]

    func directory(_ label: String) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("erp-disk-\(label)-\(UInt64.random(in: 0...UInt64.max))").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    func insert(_ db: ServiceDatabase, _ values: ClosedRange<Int>) throws {
        for n in values { try db.write { try $0.execute(sql: "INSERT INTO t (n) VALUES (?)", arguments: [n]) } }
    }

    func rows(_ db: ServiceDatabase) throws -> [Int] {
        try db.read { try Int.fetchAll($0, sql: "SELECT n FROM t ORDER BY n") }
    }

    @Test func filesLiveInMemoryUntilTheVolumeIsFlushed() throws {
        let dir = try directory("flush")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let volume = MemoryVolume(directory: dir, tracksUnsynced: false, now: { 0 })
        let path = dir + "/n-t.sqlite"
        var db = try ServiceDatabase(path: path, durability: .simulated(), migrations: Self.migrations)
        try insert(db, 1...20)
        #expect(!FileManager.default.fileExists(atPath: path), "nothing reaches the real disk while the volume serves it")
        #expect(volume.paths(withPrefix: "n-").contains(MemoryVolume.absolute(dir) + "/n-t.sqlite"))
        try db.close()
        // A process crash keeps what was written: the next incarnation reads it.
        db = try ServiceDatabase(path: path, durability: .simulated(), migrations: Self.migrations)
        #expect(try rows(db) == Array(1...20))
        try db.close()
        try volume.flush()
        #expect(FileManager.default.fileExists(atPath: path))
        // Written out, the file is an ordinary SQLite database.
        let plain = try DatabaseQueue(path: path)
        #expect(try plain.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM t") } == 20)
        #expect(try plain.read { try String.fetchOne($0, sql: "PRAGMA integrity_check") } == "ok")
    }

    /// Power loss on a database, with `synchronous` as given, at `seed`: what the next incarnation
    /// reads (nil: it could not open the file, or the file is damaged).
    func afterPowerLoss(_ synchronous: SynchronousMode, seed: UInt64, committed: Int = 40) throws -> [Int]? {
        let dir = try directory("power")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let volume = MemoryVolume(directory: dir, tracksUnsynced: true, now: { 0 })
        defer { volume.close() }
        let path = dir + "/n-t.sqlite"
        let db = try ServiceDatabase(path: path, durability: .simulated(synchronous), migrations: Self.migrations)
        try insert(db, 1...committed)
        _ = volume.powerLoss(prefix: "n-", random: SeededRandomSource(seed: seed))
        try db.close()
        volume.powerRestored(prefix: "n-")
        guard let again = try? ServiceDatabase(path: path, durability: .simulated(synchronous), migrations: Self.migrations) else { return nil }
        defer { try? again.close() }
        guard (try? again.read({ try String.fetchOne($0, sql: "PRAGMA integrity_check") })) == "ok" else { return nil }
        return try? rows(again)
    }

    @Test func aFullSyncKeepsEveryCommitThroughPowerLoss() throws {
        for seed in UInt64(1)...20 {
            #expect(try afterPowerLoss(.full, seed: seed) == Array(1...40), "seed \(seed)")
        }
    }

    @Test func normalSyncLosesTheLastCommitsButNeverTearsOne() throws {
        var lost = 0
        for seed in UInt64(1)...20 {
            let survivors = try #require(try afterPowerLoss(.normal, seed: seed), "seed \(seed): the database must open and be intact")
            // WAL recovery stops at the first frame that did not survive: a prefix of the commits.
            #expect(survivors == Array(1...40).prefix(survivors.count).map { $0 }, "seed \(seed): \(survivors)")
            if survivors.count < 40 { lost += 1 }
        }
        #expect(lost > 0, "a power loss under synchronous = NORMAL must lose a commit on some seed")
    }

    /// `before-send`: commits do not sync; what a sync covered (the node sends only after one)
    /// survives a power loss, and of what followed it a prefix of the commits, never a torn one.
    @Test func beforeSendKeepsWhatASyncCoveredAndAPrefixOfTheRest() throws {
        var lost = 0
        for seed in UInt64(1)...20 {
            let dir = try directory("before-send")
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let volume = MemoryVolume(directory: dir, tracksUnsynced: true, now: { 0 })
            defer { volume.close() }
            let path = dir + "/n-t.sqlite"
            let db = try ServiceDatabase(path: path, durability: .simulated(.beforeSend), migrations: Self.migrations)
            #expect(!db.needsSync, "opening syncs what the migrations wrote")
            try insert(db, 1...20)
            #expect(db.needsSync)
            try db.syncLog()  // what a send does first
            #expect(!db.needsSync)
            try insert(db, 21...40)  // nobody heard of these
            _ = volume.powerLoss(prefix: "n-", random: SeededRandomSource(seed: seed))
            try db.close()
            volume.powerRestored(prefix: "n-")
            let again = try ServiceDatabase(path: path, durability: .simulated(.beforeSend), migrations: Self.migrations)
            defer { try? again.close() }
            #expect(try again.read { try String.fetchOne($0, sql: "PRAGMA integrity_check") } == "ok", "seed \(seed)")
            let survivors = try rows(again)
            #expect(survivors == Array(1...survivors.count), "seed \(seed): a prefix of the commits, \(survivors)")
            #expect(survivors.count >= 20, "seed \(seed): a synced commit was lost: \(survivors)")
            if survivors.count < 40 { lost += 1 }
        }
        #expect(lost > 0, "the commits after the sync must be at risk on some seed (else the sync proved nothing)")
    }

    /// Only a commit that changed rows asks for a sync: not a rolled-back one, not one that
    /// changed nothing, not a read; and never under FULL, where every commit synced itself.
    @Test func onlyACommitThatChangedRowsNeedsASync() throws {
        let dir = try directory("needs-sync")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let volume = MemoryVolume(directory: dir, tracksUnsynced: false, now: { 0 })
        defer { volume.close() }
        struct Refused: Error {}
        let db = try ServiceDatabase(path: dir + "/n-t.sqlite", durability: .simulated(.beforeSend), migrations: Self.migrations)
        #expect(throws: Refused.self) {
            try db.write { db in
                try db.execute(sql: "INSERT INTO t (n) VALUES (1)")
                throw Refused()
            }
        }
        #expect(!db.needsSync, "a rolled-back transaction")
        _ = try rows(db)
        #expect(!db.needsSync, "a read")
        try insert(db, 1...1)
        #expect(db.needsSync)
        try db.syncLog()
        try db.write { try $0.execute(sql: "INSERT INTO t (n) VALUES (1) ON CONFLICT DO NOTHING") }
        #expect(!db.needsSync, "a commit that changed no row")
        try db.close()
        let full = try ServiceDatabase(path: dir + "/m-t.sqlite", durability: .simulated(.full), migrations: Self.migrations)
        try insert(full, 1...3)
        #expect(!full.needsSync)
        try full.close()
    }

    /// A service restarted while its disk fails (a power loss inside a `diskErrors` window) still
    /// starts: the sync its database's opening owes is made before its first message instead.
    @Test func aBeforeSendDatabaseOpensOnADiskThatFailsItsSyncs() throws {
        let dir = try directory("open-failing")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let volume = MemoryVolume(directory: dir, tracksUnsynced: false, now: { 0 })
        defer { volume.close() }
        let disk = volume.disk(forPrefix: "n-")
        let path = dir + "/n-t.sqlite"
        let first = try ServiceDatabase(path: path, durability: .simulated(.beforeSend), migrations: Self.migrations)
        try insert(first, 1...3)
        try first.syncLog()
        try first.close()
        disk.writeFailure = .ioError
        let again = try ServiceDatabase(path: path, durability: .simulated(.beforeSend), migrations: Self.migrations)
        defer { try? again.close() }
        #expect(try rows(again) == [1, 2, 3], "it reads while its disk fails")
        #expect(again.needsSync, "the sync it could not make is owed")
        #expect(throws: (any Error).self) { try again.syncLog() }
        disk.writeFailure = nil
        try again.syncLog()
        #expect(!again.needsSync)
    }

    @Test func theSameSeedLosesTheSameWrites() throws {
        for seed in UInt64(1)...5 {
            #expect(try afterPowerLoss(.normal, seed: seed) == afterPowerLoss(.normal, seed: seed))
        }
    }

    /// A power cut inside a commit, at each write or sync of the first transactions in turn
    /// (each spans several pages): under FULL the database opens intact, holds every transaction
    /// that returned before the cut, and the interrupted one whole or not at all. (It is kept only
    /// when every one of its unsynced frames comes through, 45 % each: over these cuts, never.)
    @Test func aPowerCutInsideACommitLeavesWholeTransactions() throws {
        let wide: [Migration] = [("w", { db in try db.execute(sql: "CREATE TABLE w (n INTEGER PRIMARY KEY, pad BLOB)") })]
        final class Fired: @unchecked Sendable { var yes = false }
        var interruptedLost = 0
        for operation in 1...16 {
            for seed in UInt64(1)...3 {
                let dir = try directory("cut")
                defer { try? FileManager.default.removeItem(atPath: dir) }
                let volume = MemoryVolume(directory: dir, tracksUnsynced: true, now: { 0 })
                defer { volume.close() }
                let path = dir + "/n-w.sqlite"
                _ = volume.disk(forPrefix: "n-")  // as a world makes its nodes' disks: before their files open
                let db = try ServiceDatabase(path: path, durability: .simulated(.full), migrations: wide)
                let fired = Fired()
                volume.armPowerCut(prefix: "n-", id: 1, atOperation: operation, random: SeededRandomSource(seed: seed)) { _ in fired.yes = true }
                var returned: [Int] = []
                var interrupted: Int?
                for t in 1...8 where interrupted == nil {
                    try db.write { db in
                        for n in 1...20 { try db.execute(sql: "INSERT INTO w (n, pad) VALUES (?, zeroblob(700))", arguments: [t * 1000 + n]) }
                    }
                    if fired.yes { interrupted = t } else { returned.append(t) }
                }
                let cut = try #require(interrupted, "operation \(operation): the cut must land in the first 8 transactions")
                try db.close()
                volume.powerRestored(prefix: "n-")
                let again = try ServiceDatabase(path: path, durability: .simulated(.full), migrations: wide)
                defer { try? again.close() }
                #expect(try again.read { try String.fetchOne($0, sql: "PRAGMA integrity_check") } == "ok", "operation \(operation), seed \(seed)")
                let rows = try again.read { try Int.fetchAll($0, sql: "SELECT n FROM w ORDER BY n") }
                let kept = Set(rows.map { $0 / 1000 })
                for t in kept { #expect(rows.filter { $0 / 1000 == t }.count == 20, "transaction \(t) half there: operation \(operation), seed \(seed)") }
                #expect(Set(returned).isSubset(of: kept), "a commit that returned before the cut is gone: operation \(operation), seed \(seed)")
                #expect(kept.isSubset(of: Set(returned + [cut])), "a transaction after the cut: operation \(operation), seed \(seed)")
                if !kept.contains(cut) { interruptedLost += 1 }
            }
        }
        #expect(interruptedLost > 0, "the power cut never took back the transaction it interrupted")
    }

    @Test func aFullDiskFailsWritesCleanlyAndTheServiceCarriesOnAfter() throws {
        let dir = try directory("full")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let volume = MemoryVolume(directory: dir, tracksUnsynced: false, now: { 0 })
        defer { volume.close() }
        let disk = volume.disk(forPrefix: "n-")
        let db = try ServiceDatabase(path: dir + "/n-t.sqlite", durability: .simulated(), migrations: Self.migrations)
        defer { try? db.close() }
        try insert(db, 1...5)
        for failure in [SimulatedDisk.WriteFailure.full, .ioError] {
            disk.writeFailure = failure
            // Enough rows that the commit must write pages, inside one transaction.
            let error = #expect(throws: DatabaseError.self) {
                try db.write { db in for n in 100...400 { try db.execute(sql: "INSERT INTO t (n) VALUES (?)", arguments: [n]) } }
            }
            #expect(error?.resultCode == (failure == .full ? .SQLITE_FULL : .SQLITE_IOERR), "\(String(describing: error))")
            disk.writeFailure = nil
            #expect(try rows(db) == Array(1...5), "the failed transaction left nothing behind")
        }
        #expect(disk.failedWrites >= 2)
        try insert(db, 6...7)
        #expect(try rows(db) == Array(1...7))
    }

    @Test func aSlowSyncKeepsTheDiskBusy() throws {
        let dir = try directory("slow")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let volume = MemoryVolume(directory: dir, tracksUnsynced: false, now: { 1_000 })
        defer { volume.close() }
        let disk = volume.disk(forPrefix: "n-")
        let db = try ServiceDatabase(path: dir + "/n-t.sqlite", durability: .simulated(.full), migrations: Self.migrations)
        defer { try? db.close() }
        disk.syncLatencyNanoseconds = 5_000_000
        let before = disk.syncs
        try insert(db, 1...1)
        let syncs = disk.syncs - before
        #expect(syncs >= 1, "synchronous = FULL syncs at commit")
        // Syncs queue behind one another from the moment they are asked for.
        #expect(disk.busyUntil == 1_000 + Int64(syncs) * 5_000_000)

        // Under before-send the commits do not sync; the one sync before a send covers them all.
        let later = try ServiceDatabase(path: dir + "/n-u.sqlite", durability: .simulated(.beforeSend), migrations: Self.migrations)
        defer { try? later.close() }
        let busy = disk.busyUntil, counted = disk.syncs
        try insert(later, 1...5)
        #expect(disk.syncs == counted, "a before-send commit does not sync")
        try later.syncLog()
        #expect(disk.syncs == counted + 1)
        #expect(disk.busyUntil == busy + 5_000_000)
    }

    /// Before a send, a node's syncs are batched as production's sync thread batches them: a burst
    /// of messages while a slow sync is under way waits for one more sync, not one each (the
    /// simulator once queued a sync per message, and a swarm seed with 500 sagas recovered behind
    /// a 188 ms sync found the payment service's messages arriving up to 44 s late).
    @Test func syncsBeforeSendingShareABatch() throws {
        let dir = try directory("batch")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let volume = MemoryVolume(directory: dir, tracksUnsynced: false, now: { 0 })
        defer { volume.close() }
        let disk = volume.disk(forPrefix: "n-")
        let db = try ServiceDatabase(path: dir + "/n-t.sqlite", durability: .simulated(.beforeSend), migrations: Self.migrations)
        defer { try? db.close() }
        let other = try ServiceDatabase(path: dir + "/n-o.sqlite", durability: .simulated(.beforeSend), migrations: Self.migrations)
        defer { try? other.close() }
        let ms: Int64 = 1_000_000
        disk.syncLatencyNanoseconds = 5 * ms
        var row = 0
        func send(at now: Int64, committing: Bool = true) throws {
            if committing { row += 1; try insert(db, row...row) }
            try disk.syncBatch(now: now) { if db.needsSync { try db.syncLog() } }
        }
        try send(at: 10 * ms)
        #expect(disk.busyUntil == 15 * ms, "an idle disk starts the sync at once")
        let counted = disk.syncs
        // Commits during that sync need the next one, which starts when it ends: every sender in
        // the meantime shares it.
        for at in [11, 12, 12, 14] { try send(at: Int64(at) * ms) }
        #expect(disk.busyUntil == 20 * ms)
        #expect(disk.syncs == counted + 4, "each sender's sync is still counted")
        // Once the next batch is under way, a new commit needs a third.
        try send(at: 16 * ms)
        #expect(disk.busyUntil == 25 * ms)
        // A sender with nothing new asks for no sync (and `SimWorld.send` holds its message until
        // `busyUntil` all the same).
        try send(at: 17 * ms, committing: false)
        #expect(disk.busyUntil == 25 * ms)
        // A sender with commits in two files, while that batch of one file waits: the batch
        // syncs the second file too, one sync longer.
        row += 1
        try insert(db, row...row)
        try insert(other, row...row)
        try disk.syncBatch(now: 18 * ms) { for d in [db, other] where d.needsSync { try d.syncLog() } }
        #expect(disk.busyUntil == 30 * ms, "the waiting batch grew by the second file's sync")
        try send(at: 19 * ms)
        #expect(disk.busyUntil == 30 * ms, "a later sender of one file finds it covered")
        // SQLite's own syncs (a commit under FULL, a checkpoint) still queue one after another.
        let full = try ServiceDatabase(path: dir + "/n-u.sqlite", durability: .simulated(.full), migrations: Self.migrations)
        defer { try? full.close() }
        #expect(disk.busyUntil > 30 * ms, "opening it synced behind the batches")
        let before = disk.syncs, busy = disk.busyUntil
        try insert(full, 1...1)
        let inline = Int64(disk.syncs - before)
        #expect(inline >= 1)
        #expect(disk.busyUntil == busy + inline * 5 * ms)
        // A sender whose commit came after SQLite's own sync, while that sync still waits: it is
        // not covered by it (it rode along for nothing before; power-loss's trace changed).
        let queued = disk.busyUntil
        row += 1
        try insert(db, row...row)
        try disk.syncBatch(now: 20 * ms) { if db.needsSync { try db.syncLog() } }
        #expect(disk.busyUntil == queued + 5 * ms, "SQLite's own sync covers nothing committed after it")
        let idleAgain = disk.busyUntil + ms
        try send(at: idleAgain)
        #expect(disk.busyUntil == idleAgain + 5 * ms)
    }

    @Test func filesOutsideEveryVolumeAreOrdinaryFiles() throws {
        let inside = try directory("inside"), outside = try directory("outside")
        defer { try? FileManager.default.removeItem(atPath: inside); try? FileManager.default.removeItem(atPath: outside) }
        let volume = MemoryVolume(directory: inside, tracksUnsynced: false, now: { 0 })
        defer { volume.close() }
        let db = try ServiceDatabase(path: outside + "/n-t.sqlite", durability: .durable, migrations: Self.migrations)
        try insert(db, 1...3)
        try db.close()
        #expect(FileManager.default.fileExists(atPath: outside + "/n-t.sqlite"))
        #expect(volume.paths(withPrefix: "").isEmpty)
        // Nor are the files of a folder inside the volume's: a volume serves its own files only.
        try FileManager.default.createDirectory(atPath: inside + "/sub", withIntermediateDirectories: true)
        let nested = try ServiceDatabase(path: inside + "/sub/n-t.sqlite", durability: .durable, migrations: Self.migrations)
        try insert(nested, 1...1)
        try nested.close()
        #expect(FileManager.default.fileExists(atPath: inside + "/sub/n-t.sqlite"))
        #expect(volume.paths(withPrefix: "").isEmpty)
    }
}
