import ERPCore
@testable import ERPServices
import ERPStorage
import Foundation
import GRDB
import Testing

/// The bus dispatcher's queue head, kept in memory, must always be what the database would answer:
/// the first `countMax` pending deliveries of the group in log order, with their next attempt
/// times and texts. Checked against the SQL after every step of a random mix of what the bus
/// does to its queue (appends, acknowledgements, retries, dead letters, requeues, replays).
@Suite struct QueueHeadTests {
    let group = "report"

    func busDatabase() throws -> (ServiceDatabase, String) {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("erp-queuehead-\(UInt64.random(in: 0...UInt64.max)).sqlite").path
        let declaration = try #require(EventBusService.database)
        return (try ServiceDatabase(path: path, durability: .simulated(), migrations: declaration.migrations), path)
    }

    /// What the dispatcher used to read on every wake-up.
    func headFromSQL(_ database: ServiceDatabase, countMax: Int) throws -> [String] {
        try database.read { db in
            try Row.fetchAll(db, sql: """
                SELECT d.seq, d.nextAttemptAt, e.envelope FROM delivery d JOIN event e ON e.seq = d.seq
                WHERE d.consumerGroup = ? AND d.status = 'pending' ORDER BY d.seq LIMIT ?
                """, arguments: [group, countMax]).map { "\($0[0] as Int64)@\($0[1] as Int64):\($0[2] as String)" }
        }
    }

    func describe(_ head: QueueHead) -> [String] { head.entries.map { "\($0.seq)@\($0.nextAttemptAt):\($0.envelope)" } }

    /// Appends `count` events with a delivery each, as the bus does; returns the head's entries.
    func append(_ count: Int, at now: Int64, into database: ServiceDatabase) throws -> [QueueHead.Entry] {
        try database.write { db in
            var new: [QueueHead.Entry] = []
            for _ in 0..<count {
                let next = (try Int64.fetchOne(db, sql: "SELECT COALESCE(MAX(seq), 0) + 1 FROM event")) ?? 1
                let text = "{\"n\":\(next)}"
                try db.execute(sql: "INSERT INTO event (eventId, topic, eventType, eventVersion, producedAt, envelope, appendedAt) VALUES (?, 'order.created', 'OrderCreated', '1.0', 0, ?, ?)",
                               arguments: ["e\(next)", text, now])
                let seq = db.lastInsertedRowID
                try db.execute(sql: "INSERT INTO delivery (consumerGroup, seq, status, nextAttemptAt) VALUES (?, ?, 'pending', ?)",
                               arguments: [group, seq, now])
                new.append(QueueHead.Entry(seq: seq, nextAttemptAt: now, envelope: text))
            }
            return new
        }
    }

    @Test(arguments: [1, 2, 3, 4, 5] as [UInt64])
    func theHeadIsWhatTheDatabaseHoldsAfterEveryStep(seed: UInt64) throws {
        let (database, path) = try busDatabase()
        defer { try? database.close(); try? FileManager.default.removeItem(atPath: path) }
        let countMax = 4
        let head = QueueHead(countMax: countMax)
        let random = SeededRandomSource(seed: seed)
        var now: Int64 = 0
        var steps: [String] = []
        for _ in 0..<300 {
            now += 1
            let pending = try database.read { try Int64.fetchAll($0, sql: "SELECT seq FROM delivery WHERE consumerGroup = ? AND status = 'pending' ORDER BY seq", arguments: [group]) }
            let roll = random.unit()
            if roll < 0.35 || pending.isEmpty {
                let count = random.int(in: 1...3)
                head.appended(try append(count, at: now, into: database))
                steps.append("append \(count)")
            } else if roll < 0.85 {
                // An outcome for one pending delivery (anywhere in the queue, as in-flight ones
                // beyond the head can be after a requeue): acked, dead, or retried later.
                let seq = random.pick(pending)
                let kind = random.int(in: 0...2)
                let next: Int64? = kind == 2 ? now + Int64(random.int(in: 1...5)) : nil
                try database.write { db in
                    switch kind {
                    case 0: try db.execute(sql: "UPDATE delivery SET status = 'acked' WHERE consumerGroup = ? AND seq = ?", arguments: [group, seq])
                    case 1: try db.execute(sql: "UPDATE delivery SET status = 'dead' WHERE consumerGroup = ? AND seq = ?", arguments: [group, seq])
                    default: try db.execute(sql: "UPDATE delivery SET nextAttemptAt = ? WHERE consumerGroup = ? AND seq = ?", arguments: [next, group, seq])
                    }
                }
                head.settled(seq: seq, nextAttemptAt: next)
                steps.append(["ack", "dead", "retry"][kind] + " \(seq)")
            } else {
                // Dead letters back in the queue, or a replay: deliveries reappear anywhere.
                let n = try database.write { db in try EventLog.requeue(group: group, sequences: nil, now: now, in: db).queued }
                head.invalidate()
                steps.append("requeue \(n)")
            }
            try head.refill(group: group, from: database)
            let expected = try headFromSQL(database, countMax: countMax)
            #expect(describe(head) == expected, "after \(steps.suffix(5))")
            if describe(head) != expected { return }
        }
    }

    @Test func aQueueThatKeepsUpIsNotReadAgain() throws {
        let (database, path) = try busDatabase()
        defer { try? database.close(); try? FileManager.default.removeItem(atPath: path) }
        let head = QueueHead(countMax: 8)
        try head.refill(group: group, from: database)
        #expect(head.reads == 1)
        for round in 0..<50 {
            let new = try append(2, at: Int64(round), into: database)
            head.appended(new)
            try head.refill(group: group, from: database)
            for entry in new {
                try database.write { try $0.execute(sql: "UPDATE delivery SET status = 'acked' WHERE seq = ?", arguments: [entry.seq]) }
                head.settled(seq: entry.seq, nextAttemptAt: nil)
                try head.refill(group: group, from: database)
            }
        }
        #expect(head.reads == 1)
        #expect(head.entries.isEmpty)
        // A backlog longer than the head is read in pieces as it drains.
        head.appended(try append(20, at: 100, into: database))
        try head.refill(group: group, from: database)
        #expect(head.entries.count == 8)
        for _ in 0..<20 {
            let seq = try #require(head.entries.first?.seq)
            try database.write { try $0.execute(sql: "UPDATE delivery SET status = 'acked' WHERE seq = ?", arguments: [seq]) }
            head.settled(seq: seq, nextAttemptAt: nil)
            try head.refill(group: group, from: database)
            #expect(describe(head) == (try headFromSQL(database, countMax: 8)))
        }
        #expect(head.entries.isEmpty)
    }

    /// A head read back from the database takes the events the bus still has in memory, and
    /// leaves the others to be decoded (nil) when they go out.
    @Test func entriesReadBackTakeTheEventsTheBusStillHas() throws {
        let (database, path) = try busDatabase()
        defer { try? database.close(); try? FileManager.default.removeItem(atPath: path) }
        var recent = RecentEvents(capacity: 4)
        let appended = try append(6, at: 0, into: database)
        for entry in appended {
            recent.put(try EventEnvelope(OrderCancelled(orderId: "o\(entry.seq)", reason: "r"), eventId: "e\(entry.seq)", source: .order,
                                         timestamp: .simulationEpoch, correlationId: "c"), at: entry.seq)
        }
        let head = QueueHead(countMax: 8)
        try head.refill(group: group, from: database, recent: recent)
        // Capacity 4: positions 1 and 2 were overwritten by 5 and 6.
        #expect(head.entries.map { $0.event?.eventId ?? "-" } == ["-", "-", "e3", "e4", "e5", "e6"])
        #expect(recent.event(at: 2) == nil && recent.event(at: 6)?.eventId == "e6" && recent.event(at: 10) == nil)
    }
}
