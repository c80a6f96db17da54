import ERPStorage
import Foundation
import GRDB
import Testing
@testable import ERPProduction

/// What a service's control report says of its heap, which `erp soak` judges leaks by: it must
/// follow what the program allocates and frees, and tell SQLite's part (its page caches) apart.
@Suite struct HeapUsageTests {
    @Test func followsWhatIsAllocatedAndFreed() {
        let before = HeapUsage.current()
        // 64 blocks of 256 KiB: glibc maps blocks this large on their own, counted in hblkhd.
        var blocks: [UnsafeMutableRawPointer] = (0..<64).map { _ in
            let block = malloc(256 << 10)!
            memset(block, 1, 256 << 10)
            return block
        }
        let held = HeapUsage.current()
        #expect(held.inUseBytes - before.inUseBytes >= 16 << 20, "\(before) → \(held)")
        #expect(held.heldBytes >= held.inUseBytes)
        for block in blocks { free(block) }
        blocks.removeAll()
        let after = HeapUsage.current()
        #expect(held.inUseBytes - after.inUseBytes >= 16 << 20, "\(held) → \(after)")
    }

    @Test func countsSQLitesPartApart() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("erp-heap-\(UInt64.random(in: 0...UInt64.max))").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let before = HeapUsage.current()
        let db = try ServiceDatabase(path: directory + "/heap.sqlite", durability: Durability(synchronous: .off, exclusiveLock: true),
                                     migrations: [("t", { try $0.execute(sql: "CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT NOT NULL)") })])
        defer { try? db.close() }
        // About 1 MiB of rows: their pages stay in the connection's page cache.
        try db.write { db in
            for i in 0..<1_000 { try db.execute(sql: "INSERT INTO t (id, body) VALUES (?, ?)", arguments: [i, String(repeating: "x", count: 1_000)]) }
        }
        let after = HeapUsage.current()
        #expect(after.sqliteBytes - before.sqliteBytes >= 512 << 10, "\(before) → \(after)")
        #expect(after.sqliteBytes <= after.inUseBytes)
        #expect(after.ownBytes == after.inUseBytes - after.sqliteBytes)
    }
}
