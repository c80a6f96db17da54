import ERPCore
import ERPServices
import ERPStorage
import ERPTransport
import Foundation
import GRDB
import Testing

/// The bus's dead letters and replays, on a bus database made by the bus's own migrations.
@Suite struct EventLogTests {
    func busDatabase() throws -> (ServiceDatabase, String) {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("erp-eventlog-\(UInt64.random(in: 0...UInt64.max)).sqlite").path
        let declaration = try #require(EventBusService.database)
        return (try ServiceDatabase(path: path, durability: .simulated(), migrations: declaration.migrations), path)
    }

    func append(_ topic: String, _ id: String, in db: Database) throws {
        let envelope = try EventEnvelope(OrderCancelled(orderId: id, reason: "test"), eventId: id, source: .order,
                                         timestamp: .simulationEpoch, correlationId: "c")
        try db.execute(sql: "INSERT INTO event (eventId, topic, eventType, eventVersion, producedAt, envelope, appendedAt) VALUES (?, ?, 'OrderCancelled', '1.0', 0, ?, 0)",
                       arguments: [id, topic, try JSONCoding.encodeString(envelope)])
    }

    @Test func replayQueuesEveryEventOfTheGroupsTopicsFromAPosition() throws {
        let (database, path) = try busDatabase()
        defer { try? database.close(); try? FileManager.default.removeItem(atPath: path) }
        let report = Subscription(group: "report", patterns: [TopicPattern("order.*")])
        let queued = try database.write { db -> (Int, Int, [String]) in
            try append("order.cancelled", "e1", in: db)
            try append("inventory.stock-updated", "e2", in: db)
            try append("order.cancelled", "e3", in: db)
            // e1 was delivered and acknowledged long ago.
            try db.execute(sql: "INSERT INTO delivery (consumerGroup, seq, status, attempts, nextAttemptAt) VALUES ('report', 1, 'acked', 1, 0)")
            let all = try EventLog.replay(report, fromSequence: 0, now: 5, in: db)
            let later = try EventLog.replay(report, fromSequence: 2, now: 6, in: db)
            let pending = try String.fetchAll(db, sql: "SELECT consumerGroup || ':' || seq || ':' || status FROM delivery ORDER BY seq")
            return (all, later, pending)
        }
        #expect(queued.0 == 2 && queued.1 == 1)
        #expect(queued.2 == ["report:1:pending", "report:3:pending"])
    }

    @Test func deadLettersAreListedAndRequeued() throws {
        let (database, path) = try busDatabase()
        defer { try? database.close(); try? FileManager.default.removeItem(atPath: path) }
        let (listed, requeued, left) = try database.write { db -> (DeadLetters, (queued: Int, notDead: [Int64]), Int) in
            try append("order.cancelled", "e1", in: db)
            try append("order.cancelled", "e2", in: db)
            for seq in [1, 2] {
                try db.execute(sql: """
                    INSERT INTO delivery (consumerGroup, seq, status, attempts, nextAttemptAt, lastError) VALUES ('notification', ?, 'dead', 50, 0, 'rejected')
                    """, arguments: [seq])
            }
            let listed = try EventLog.deadLetters(group: "notification", limit: 10, in: db)
            // 2 is a dead letter; 1 is not the report group's, 999 nobody's: both left alone, and said.
            _ = try EventLog.requeue(group: "report", sequences: [1], now: 9, in: db)
            let requeued = try EventLog.requeue(group: "notification", sequences: [2, 999], now: 9, in: db)
            let left = try EventLog.deadLetters(group: nil, limit: 10, in: db).letters.count
            return (listed, requeued, left)
        }
        #expect(listed.letters.map(\.eventId) == ["e1", "e2"])
        #expect(listed.letters.allSatisfy { $0.eventType == "OrderCancelled" && $0.attempts == 50 && $0.lastError == "rejected" })
        #expect(requeued.queued == 1 && requeued.notDead == [999] && left == 1)
    }
}
