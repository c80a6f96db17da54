import Foundation
import GRDB
import Testing
@testable import ERPScenario

/// The checker reads the databases of a run that has just ended; a process still letting go of
/// one may hold its lock for a moment. The checker waits for it instead of failing the whole
/// check with "database is locked".
@Suite struct CheckerLockTests {
    @Test func aReadWaitsForALockHeldForAMoment() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("erp-lock-\(UInt64.random(in: 0...UInt64.max)).sqlite").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        // A rollback journal, where a writer's exclusive lock keeps readers out (in WAL they pass).
        let writer = try DatabaseQueue(path: path)
        try writer.write { try $0.execute(sql: "CREATE TABLE t (n INTEGER); INSERT INTO t VALUES (1)") }
        let held = DispatchSemaphore(value: 0)
        let holder = Thread {
            try? writer.writeWithoutTransaction { db in
                try db.execute(sql: "BEGIN EXCLUSIVE")
                held.signal()
                Thread.sleep(forTimeInterval: 0.3)  // pool-exempt: on the holder's own thread
                try db.execute(sql: "COMMIT")
            }
        }
        holder.start()
        held.wait()  // pool-exempt: until the holder has begun, a moment
        let started = Date()
        let reader = try ConsistencyChecker.openReadOnly(path: path)
        let n = try reader.read { try Int.fetchOne($0, sql: "SELECT n FROM t") }
        #expect(n == 1)
        #expect(Date().timeIntervalSince(started) >= 0.2, "the read did not wait for the lock: was it held?")
    }
}
