import ERPCore
import ERPServices
import ERPStorage
import Foundation
import GRDB
import Testing

/// The relay reads what a service appended in this process from the outbox's memo instead of
/// decoding the rows' text again; the rows stay the truth.
@Suite final class OutboxMemoTests {
    struct Failed: Error {}

    /// Each test's database files, removed when the test ends (Swift Testing makes a suite's
    /// instance per test).
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("erp-outbox-memo-\(UInt64.random(in: 0...UInt64.max))").path
    deinit { try? FileManager.default.removeItem(atPath: folder) }

    func database() throws -> ServiceDatabase {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        return try ServiceDatabase(path: folder + "/outbox.sqlite", durability: .simulated(), migrations: [])
    }

    func event(_ n: Int) throws -> EventEnvelope {
        try EventEnvelope(OrderCancelled(orderId: "order_\(n)", reason: "r"), eventId: "evt_\(n)", source: .order,
                          timestamp: Timestamp.simulationEpoch, correlationId: "c")
    }

    /// The row's text is replaced behind the memo's back (same event id, another reason): what the
    /// relay gets tells where it came from.
    func tamper(_ n: Int, in database: ServiceDatabase) throws {
        var altered = try event(n)
        altered.data = try JSONCoding.toJSONValue(OrderCancelled(orderId: "order_\(n)", reason: "from the row"))
        try database.write { try $0.execute(sql: "UPDATE outbox SET envelope = ? WHERE eventId = ?", arguments: [try JSONCoding.encodeString(altered), "evt_\(n)"]) }
    }

    func reasons(_ database: ServiceDatabase, memo: OutboxMemo?) throws -> [String] {
        try database.read { try Outbox.pending(limit: 10, in: $0, memo: memo).entries }.map { try $0.envelope.payload(as: OrderCancelled.self).reason }
    }

    @Test func theRelayGetsWhatWasAppendedAndTheRowsStayTheTruth() throws {
        let db = try database()
        let memo = db.outboxMemo
        try db.write { d in for n in 1...3 { try Outbox.append(try event(n), in: d, memo: memo) } }
        // A transaction that rolls back leaves its envelope in the memo, and no row: not sent.
        _ = try? db.write { d in
            try Outbox.append(try event(4), in: d, memo: memo)
            throw Failed()
        }
        #expect(memo.count == 4)
        for n in 1...3 { try tamper(n, in: db) }
        #expect(try reasons(db, memo: memo) == ["r", "r", "r"], "from the memo")
        #expect(try reasons(db, memo: nil) == ["from the row", "from the row", "from the row"])
        // Sent and removed: forgotten; a row still there (here, put back) is read from its text.
        memo.forget(["evt_1", "evt_2"])
        #expect(try reasons(db, memo: memo) == ["from the row", "from the row", "r"])
        #expect(try db.read { try Outbox.pending(limit: 10, in: $0, memo: memo).entries }.map(\.envelope.eventId) == ["evt_1", "evt_2", "evt_3"])
    }

    @Test func theMemoStartsAgainPastItsBound() throws {
        let db = try database()
        let memo = db.outboxMemo
        try db.write { d in for n in 0..<OutboxMemo.countMax { try Outbox.append(try event(n), in: d, memo: memo) } }
        #expect(memo.count == OutboxMemo.countMax)
        try db.write { d in try Outbox.append(try event(OutboxMemo.countMax), in: d, memo: memo) }
        #expect(memo.count == 1)
        #expect(try db.read { try Outbox.pending(limit: 2, in: $0, memo: memo).entries }.count == 2, "rows past the memo are decoded")
    }

    /// A burst's storage is given back once the relay has caught up: the soak saw a service's
    /// heap step up after one backlog and stay there for the rest of the run.
    @Test func theStorageOfABacklogIsGivenBackOnceItDrains() throws {
        let db = try database()
        let memo = db.outboxMemo
        let burst = 3_000
        try db.write { d in for n in 0..<burst { try Outbox.append(try event(n), in: d, memo: memo) } }
        #expect(memo.capacity >= burst)
        // The relay sends and forgets in batches; a few events newer than each batch stay.
        for start in stride(from: 0, to: burst - 10, by: 64) {
            memo.forget((start..<min(start + 64, burst - 10)).map { "evt_\($0)" })
        }
        #expect(memo.count == 10)
        #expect(memo.capacity <= OutboxMemo.keptCapacityMax, "storage for \(memo.capacity) entries kept for \(memo.count)")
        // What is left is still served from the memo.
        try tamper(burst - 1, in: db)
        let last = try db.read { try Outbox.pending(limit: 10_000, in: $0, memo: memo).entries }.last
        #expect(try last?.envelope.payload(as: OrderCancelled.self).reason == "r")
        // A memo whose storage is within the bound keeps it however few it holds (no copying
        // for every batch).
        let small = OutboxMemo()
        try db.write { d in for n in burst..<(burst + 150) { try Outbox.append(try event(n), in: d, memo: small) } }
        let kept = small.capacity
        #expect(kept <= OutboxMemo.keptCapacityMax && kept >= 150)
        small.forget((burst..<(burst + 145)).map { "evt_\($0)" })
        #expect(small.count == 5)
        #expect(small.capacity == kept, "storage within the bound was given back: \(small.capacity) of \(kept)")
    }

    /// A relay batch is bounded in bytes as well as in count, so that large events cannot make an
    /// append too big for a message (it would be refused every time it was sent again); an event
    /// larger than the bound goes alone.
    @Test func aBatchIsBoundedInBytesAndSaysWhetherMoreWait() throws {
        let db = try database()
        try db.write { d in for n in 1...5 { try Outbox.append(try event(n), in: d) } }
        let one = try db.read { d in try Int.fetchOne(d, sql: "SELECT length(CAST(envelope AS BLOB)) FROM outbox WHERE eventId = 'evt_1'") } ?? 0
        #expect(one > 0)
        let cut = try db.read { try Outbox.pending(limit: 10, byteCountMax: 2 * one + one / 2, in: $0) }
        #expect(cut.entries.map(\.envelope.eventId) == ["evt_1", "evt_2"] && cut.more)
        let alone = try db.read { try Outbox.pending(limit: 10, byteCountMax: 1, in: $0) }
        #expect(alone.entries.count == 1 && alone.more)
        let all = try db.read { try Outbox.pending(limit: 10, in: $0) }
        #expect(all.entries.count == 5 && !all.more)
        let counted = try db.read { try Outbox.pending(limit: 5, in: $0) }
        #expect(counted.entries.count == 5 && counted.more, "a full batch may have more behind it")
    }

    /// A database that cannot be opened names its file and what to look at (an operator's
    /// read-only data folder gave only "SQLite error 14: unable to open database file").
    @Test func aDatabaseThatCannotBeOpenedNamesItsFile() throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("erp-not-a-folder-\(UInt64.random(in: 0...UInt64.max))").path
        try "x".write(toFile: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: file) }
        let path = file + "/order.sqlite"
        do {
            _ = try ServiceDatabase(path: path, durability: .simulated(), migrations: [])
            Issue.record("a database opened under a file")
        } catch let error as StorageError {
            #expect(error.description.contains(path) && error.description.contains("writable"), "\(error)")
        }
    }
}
