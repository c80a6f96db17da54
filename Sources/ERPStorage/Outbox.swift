import ERPCore
import GRDB

/// Events waiting to reach the bus. A service appends in the same transaction as the state change
/// the event describes, so the event exists if and only if the change was committed.
public enum Outbox {
    public struct Entry: Sendable {
        public var seq: Int64
        public var envelope: EventEnvelope
    }

    public static func append(_ envelope: EventEnvelope, in db: Database) throws {
        try db.execute(cached: "INSERT INTO outbox (eventId, topic, envelope) VALUES (?, ?, ?)",
                       arguments: [envelope.eventId, envelope.topic, try JSONCoding.encodeString(envelope)])
    }

    /// The oldest `limit` entries, in the order they were written.
    public static func pending(limit: Int, in db: Database) throws -> [Entry] {
        try Row.fetchAll(db, cached: "SELECT seq, envelope FROM outbox ORDER BY seq LIMIT ?", arguments: [limit]).map { row in
            let text: String = row["envelope"]
            do {
                return Entry(seq: row["seq"], envelope: try EventEnvelope.decode(fromText: text))
            } catch {
                throw StorageError.corrupt("outbox row \(row["seq"] as Int64): \(error)")
            }
        }
    }

    /// Forgets entries the bus has acknowledged.
    public static func remove(upTo seq: Int64, in db: Database) throws {
        try db.execute(cached: "DELETE FROM outbox WHERE seq <= ?", arguments: [seq])
    }
}

/// Which events a consumer group has applied. Recorded in the same transaction as the effect, so
/// a redelivered event is recognised and its effect happens once per group.
public enum Inbox {
    /// Records the event; false when it was already there (the effect must then be skipped).
    public static func insertIfAbsent(group: String, eventId: String, eventType: String, at time: Timestamp,
                                      in db: Database) throws -> Bool {
        try db.execute(cached: """
            INSERT INTO inbox (consumerGroup, eventId, eventType, appliedAt) VALUES (?, ?, ?, ?)
            ON CONFLICT DO NOTHING
            """, arguments: [group, eventId, eventType, time.millisecondsSinceEpoch])
        return db.changesCount == 1
    }
}

/// Responses recorded per idempotency key, so that a retried request gets the original answer.
/// Record a key only together with the effect it answers for, in one transaction, and never for a
/// request that failed.
public enum IdempotencyStore {
    public static func lookup<T: Decodable>(_ type: T.Type, key: String, in db: Database) throws -> T? {
        guard let text = try String.fetchOne(db, cached: "SELECT response FROM idempotency WHERE key = ?", arguments: [key]) else {
            return nil
        }
        do { return try JSONCoding.decode(type, from: text) } catch {
            throw StorageError.corrupt("idempotency key \(key): \(error)")
        }
    }

    /// Inserts if absent; returns false (and stores nothing) when the key already had a response.
    @discardableResult
    public static func record<T: Encodable>(_ response: T, key: String, at time: Timestamp, in db: Database) throws -> Bool {
        try db.execute(cached: "INSERT INTO idempotency (key, response, recordedAt) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                       arguments: [key, try JSONCoding.encodeString(response), time.millisecondsSinceEpoch])
        return db.changesCount == 1
    }
}
