import ERPCore
import ERPStorage
import ERPTransport
import GRDB

/// The bus's log and queues as SQL, shared by the running bus (its RPCs) and by `erp events` on a
/// stopped system's data directory, so both do exactly the same thing.
public enum EventLog {
    /// Makes every event of `subscription`'s topics from log position `fromSequence` on pending
    /// again for its group (attempts reset), adding the deliveries it never had.
    /// The first log position appended at or after `milliseconds` (past the end when none is).
    public static func firstSequence(since milliseconds: Int64, in db: Database) throws -> Int64 {
        try Int64.fetchOne(db, cached: "SELECT MIN(seq) FROM event WHERE appendedAt >= ?", arguments: milliseconds) ?? Int64.max
    }

    public static func replay(_ subscription: Subscription, fromSequence: Int64, now: Int64, in db: Database) throws -> Int {
        var queued = 0
        for row in try SQLRow.fetchAll(db, cached: "SELECT seq, topic FROM event WHERE seq >= ? ORDER BY seq", arguments: fromSequence) {
            guard subscription.matches(try row["topic"]) else { continue }
            try db.execute(cached: """
                INSERT INTO delivery (consumerGroup, seq, status, attempts, nextAttemptAt) VALUES (?, ?, 'pending', 0, ?)
                ON CONFLICT (consumerGroup, seq) DO UPDATE SET status = 'pending', attempts = 0, nextAttemptAt = excluded.nextAttemptAt,
                  lastError = NULL
                """, arguments: subscription.group, row["seq"] as Int64, now)
            queued += 1
        }
        return queued
    }

    /// The dead letters of `group` (or of every group), oldest first.
    public static func deadLetters(group: String?, limit: Int, in db: Database) throws -> DeadLetters {
        let rows = try SQLRow.fetchAll(db, cached: """
            SELECT d.consumerGroup AS g, d.seq AS seq, d.attempts AS a, d.lastError AS e, e.eventId AS id, e.envelope AS envelope
            FROM delivery d JOIN event e ON e.seq = d.seq
            WHERE d.status = 'dead' AND (? IS NULL OR d.consumerGroup = ?) ORDER BY d.seq, d.consumerGroup LIMIT ?
            """, arguments: group, group, max(0, min(limit, 10_000)))
        let total = try Int.fetchOne(db, cached: "SELECT COUNT(*) FROM delivery WHERE status = 'dead' AND (? IS NULL OR consumerGroup = ?)",
                                     arguments: group, group) ?? 0
        return DeadLetters(letters: try rows.map { row in
            let envelope = try? JSONCoding.decode(EventEnvelope.self, from: try row["envelope"] as String)
            return DeadLetters.Letter(group: try row["g"], sequence: try row["seq"], eventId: try row["id"], eventType: envelope?.eventType ?? "undecodable",
                                      attempts: try row["a"], lastError: try row["e"])
        }, total: total)
    }

    /// Puts `group`'s dead letters (all, or those at `sequences`) back in its queue; says how many,
    /// and which of `sequences` were no dead letter of the group (left alone).
    public static func requeue(group: String, sequences: [Int64]?, now: Int64, in db: Database) throws -> (queued: Int, notDead: [Int64]) {
        if let sequences {
            var queued = 0
            var notDead: [Int64] = []
            for seq in sequences {
                try db.execute(cached: """
                    UPDATE delivery SET status = 'pending', attempts = 0, nextAttemptAt = ?, lastError = NULL
                    WHERE consumerGroup = ? AND seq = ? AND status = 'dead'
                    """, arguments: now, group, seq)
                if db.changesCount == 0 { notDead.append(seq) } else { queued += db.changesCount }
            }
            return (queued, notDead)
        }
        try db.execute(cached: """
            UPDATE delivery SET status = 'pending', attempts = 0, nextAttemptAt = ?, lastError = NULL WHERE consumerGroup = ? AND status = 'dead'
            """, arguments: now, group)
        return (db.changesCount, [])
    }
}
