import ERPCore
@testable import ERPServices
@testable import ERPStorage
import Foundation
import GRDB
import Testing

/// `bus-2` and `shared-2` rebuild the bus's deliveries and every inbox clustered on their keys;
/// `bus-3` rebuilds the log without AUTOINCREMENT and with each event's type, version and
/// producer's time in columns. A database made before them keeps every row and position, and the
/// queries that read them use the new indexes.
@Suite struct ClusteredTablesTests {
    @Test func aBusDatabaseFromBeforeKeepsItsRowsAndReadsPendingDeliveriesFromTheirIndex() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("erp-clustered-\(UInt64.random(in: 0...UInt64.max)).sqlite").path
        defer { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) } }
        let declaration = try #require(EventBusService.database)
        // The database as the bus left it before these migrations: shared-1 and bus-1 only.
        do {
            let old = try DatabaseQueue(path: path)
            var migrator = DatabaseMigrator()
            migrator.registerMigration("shared-1") { db in try SharedTables.create(db) }
            let first = try #require(declaration.migrations.first)
            #expect(first.name == "bus-1")
            migrator.registerMigration(first.name, migrate: first.migrate)
            try migrator.migrate(old)
            try old.write { db in
                for seq in 1...3 {
                    let envelope = try EventEnvelope(OrderCancelled(orderId: "o\(seq)", reason: "r"), eventId: "e\(seq)", source: .order,
                                                     timestamp: .simulationEpoch, correlationId: "c")
                    try db.execute(sql: "INSERT INTO event (eventId, topic, envelope, appendedAt) VALUES (?, 'order.cancelled', ?, 0)",
                                   arguments: ["e\(seq)", try JSONCoding.encodeString(envelope)])
                }
                try db.execute(sql: """
                    INSERT INTO delivery (consumerGroup, seq, status, attempts, nextAttemptAt, lastError) VALUES
                      ('report', 1, 'acked', 1, 0, NULL), ('report', 2, 'dead', 50, 0, 'boom'), ('report', 3, 'pending', 2, 77, 'late');
                    INSERT INTO inbox (consumerGroup, eventId, eventType, appliedAt) VALUES ('orders', 'x1', 'OrderCancelled', 5);
                    """)
            }
            try old.close()
        }
        let database = try ServiceDatabase(path: path, durability: .simulated(), migrations: declaration.migrations)
        defer { try? database.close() }
        try database.read { db in
            for table in ["delivery", "inbox"] {
                let sql = try String.fetchOne(db, sql: "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", arguments: [table]) ?? ""
                #expect(sql.contains("WITHOUT ROWID"), "\(table): \(sql)")
            }
            #expect(try String.fetchAll(db, sql: "SELECT consumerGroup || ':' || seq || ':' || status || ':' || attempts || ':' || nextAttemptAt || ':' || COALESCE(lastError, '-') FROM delivery ORDER BY seq")
                    == ["report:1:acked:1:0:-", "report:2:dead:50:0:boom", "report:3:pending:2:77:late"])
            #expect(try String.fetchAll(db, sql: "SELECT consumerGroup || ':' || eventId || ':' || eventType || ':' || appliedAt FROM inbox") == ["orders:x1:OrderCancelled:5"])
            // bus-3: the log's columns filled from each event's text, its positions kept.
            #expect(try String.fetchAll(db, sql: "SELECT seq || ':' || eventId || ':' || eventType || ':' || eventVersion || ':' || producedAt FROM event ORDER BY seq")
                    == (1...3).map { "\($0):e\($0):OrderCancelled:1.0:\(Timestamp.simulationEpoch.millisecondsSinceEpoch)" })
            let table = try String.fetchOne(db, sql: "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'event'") ?? ""
            #expect(!table.contains("AUTOINCREMENT"), "\(table)")
            let letters = try EventLog.deadLetters(group: "report", limit: 10, in: db).letters
            #expect(letters.map(\.eventId) == ["e2"] && letters.first?.lastError == "boom")
            let plan = try Row.fetchAll(db, sql: "EXPLAIN QUERY PLAN " + QueueHead.refillSQL, arguments: ["report", 0, 10]).map { $0["detail"] as String }
            #expect(plan.contains { $0.contains("delivery_pending") }, "\(plan)")
        }
        // The next event takes the position after the last.
        try database.write { db in
            try db.execute(sql: "INSERT INTO event (eventId, topic, eventType, eventVersion, producedAt, envelope, appendedAt) VALUES ('e4', 't', 'T', '1.0', 0, '{}', 0)")
            #expect(db.lastInsertedRowID == 4)
        }
        let head = QueueHead(countMax: 8)
        try head.refill(group: "report", from: database)
        #expect(head.entries.map(\.seq) == [3] && head.entries.first?.nextAttemptAt == 77)
    }
}
