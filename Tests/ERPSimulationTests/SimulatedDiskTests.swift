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
        let db = try ServiceDatabase(path: dir + "/n-t.sqlite", durability: .simulated(), migrations: Self.migrations)
        defer { try? db.close() }
        disk.syncLatencyNanoseconds = 5_000_000
        let before = disk.syncs
        try insert(db, 1...1)
        let syncs = disk.syncs - before
        #expect(syncs >= 1, "synchronous = FULL syncs at commit")
        // Syncs queue behind one another from the moment they are asked for.
        #expect(disk.busyUntil == 1_000 + Int64(syncs) * 5_000_000)
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
