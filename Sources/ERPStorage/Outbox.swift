import ERPCore
import GRDB

/// Events waiting to reach the bus. A service appends in the same transaction as the state change
/// the event describes, so the event exists if and only if the change was committed.
public enum Outbox {
    public struct Entry: Sendable {
        public var seq: Int64
        public var envelope: EventEnvelope
    }

    /// `memo`: the database's (`ServiceDatabase.outboxMemo`), which keeps the envelope for the
    /// relay; nil to keep only the row.
    public static func append(_ envelope: EventEnvelope, in db: Database, memo: OutboxMemo? = nil) throws {
        var envelope = envelope
        try db.execute(cached: "INSERT INTO outbox (eventId, topic, envelope) VALUES (?, ?, ?)",
                       arguments: envelope.eventId, envelope.topic, try envelope.encodeText())
        memo?.keep(envelope)
    }

    /// The oldest entries, in the order they were written, at most `limit` of them and at most
    /// `byteCountMax` bytes of envelope text together (the first one whatever its size): each as
    /// `memo` kept it, or decoded from its row. `more` is true when a bound cut the batch short
    /// (the outbox may hold more). Without the byte bound a batch of large events could outgrow
    /// the message limit of the transport, and be refused every time it was sent again.
    public static func pending(limit: Int, byteCountMax: Int = .max, in db: Database, memo: OutboxMemo? = nil) throws -> (entries: [Entry], more: Bool) {
        var entries: [Entry] = []
        var bytes = 0, cut = false
        try db.forEachRow(cached: "SELECT seq, eventId, envelope, length(CAST(envelope AS BLOB)) FROM outbox ORDER BY seq LIMIT ?", arguments: limit) { row in
            guard !cut else { return }
            let size: Int = try row[3]
            if !entries.isEmpty && bytes + size > byteCountMax { cut = true; return }
            bytes += size
            let seq: Int64 = try row[0]
            if let memo, let envelope = memo.envelope(eventId: try row[1]) {
                entries.append(Entry(seq: seq, envelope: envelope))
                return
            }
            do {
                entries.append(Entry(seq: seq, envelope: try EventEnvelope.decode(fromText: try row[2])))
            } catch {
                throw StorageError.corrupt("outbox row \(seq): \(error)")
            }
        }
        return (entries, cut || entries.count == limit)
    }

    /// Forgets entries the bus has acknowledged.
    public static func remove(upTo seq: Int64, in db: Database) throws {
        try db.execute(cached: "DELETE FROM outbox WHERE seq <= ?", arguments: seq)
    }
}

/// The envelopes a service appended to its outbox in this process, by event id, so that its relay
/// sends them as they were made instead of decoding their rows' text again (in the simulator an
/// event then reaches its consumers as the value its publisher made). The rows stay the truth: an
/// entry is used only for a row with its event id (ids are never reused, so an entry left by a
/// transaction that rolled back matches nothing), a row without one is decoded, and a new
/// incarnation starts empty. Confined to the service's executor, like its database.
public final class OutboxMemo: @unchecked Sendable {
    /// Entries beyond which the memo starts again empty (entries of rolled-back transactions are
    /// never taken out otherwise).
    public static let countMax = 4_096
    /// Storage (in entries) the memo keeps however few it holds; past it, storage is given back
    /// once the entries fall to a quarter of it.
    public static let keptCapacityMax = 256
    private var envelopes: [String: EventEnvelope] = [:]

    public init() {}

    public var count: Int { envelopes.count }
    /// Entries the memo's storage has room for now.
    public var capacity: Int { envelopes.capacity }

    func keep(_ envelope: EventEnvelope) {
        if envelopes.count >= Self.countMax { envelopes.removeAll() }
        envelopes[envelope.eventId] = envelope
    }

    func envelope(eventId: String) -> EventEnvelope? { envelopes[eventId] }

    /// The bus has these events: their rows are being removed.
    public func forget(_ eventIds: some Sequence<String>) {
        for id in eventIds { envelopes[id] = nil }
        // A dictionary keeps the storage of its largest backlog: after the relay fell behind once
        // (the bus slow for a moment), up to `countMax` entries' worth, about 0.75 MiB, for the
        // rest of the process's life. A soak at 250 orders/s saw inventory's heap step up by half a
        // MiB that way and stay. Once the backlog has drained, the storage goes back. (Copying
        // into a new dictionary decides nothing: only lookups by id read it.)
        if envelopes.capacity > Self.keptCapacityMax && envelopes.count * 4 < envelopes.capacity {
            envelopes = Dictionary(uniqueKeysWithValues: envelopes.lazy.map { ($0.key, $0.value) })
        }
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
            """, arguments: group, eventId, eventType, time.millisecondsSinceEpoch)
        return db.changesCount == 1
    }
}

/// Responses recorded per idempotency key, so that a retried request gets the original answer.
/// Record a key only together with the effect it answers for, in one transaction, and never for a
/// request that failed.
public enum IdempotencyStore {
    public static func lookup<T: Decodable>(_ type: T.Type, key: String, in db: Database) throws -> T? {
        guard let text = try String.fetchOne(db, cached: "SELECT response FROM idempotency WHERE key = ?", arguments: key) else {
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
                       arguments: key, try JSONCoding.encodeString(response), time.millisecondsSinceEpoch)
        return db.changesCount == 1
    }
}
