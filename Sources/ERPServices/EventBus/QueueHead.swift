import ERPCore
import ERPStorage
import GRDB

/// The head of one consumer group's queue, kept in memory as the database holds it: the first
/// `countMax` pending deliveries in log order (or every one, when fewer are pending), each with
/// its next attempt's time and its event's text.
///
/// The dispatcher used to read this head from SQLite every time it woke (after each append and
/// each acknowledgement): a third of the transactions of a simulated order. The bus changes its
/// queue only through its own commits, so it tells the head what each commit did instead, after
/// the commit: an append adds at the tail, an outcome acknowledges, dead-letters or reschedules a
/// delivery. The database stays the truth: the head is read from it when the bus starts, when it
/// has fewer than `countMax` entries while more are pending (a backlog drained past the entries
/// held), and after a replay or a requeue (which can put back deliveries anywhere in the queue).
/// Confined to the bus's executor, like the dispatcher that owns it.
final class QueueHead: @unchecked Sendable {
    struct Entry {
        var seq: Int64
        var nextAttemptAt: Int64
        var envelope: String
        /// The event `envelope` is the text of, when the bus has it at hand (it was appended while
        /// the bus was up); nil when read from the database, to be decoded when it goes out.
        var event: EventEnvelope?

        init(seq: Int64, nextAttemptAt: Int64, envelope: String, event: EventEnvelope? = nil) {
            self.seq = seq; self.nextAttemptAt = nextAttemptAt; self.envelope = envelope; self.event = event
        }
    }

    let countMax: Int
    /// Pending deliveries in log order: the first `entries.count` of the group's queue.
    private(set) var entries: [Entry] = []
    /// Whether `entries` mirrors the database at all (false until the first read, and after `invalidate`).
    private var loaded = false
    /// Whether `entries` is every pending delivery of the group (nothing pending beyond the last).
    private var complete = false
    /// Reads from the database, for the tests: the head must not be read again after every commit.
    private(set) var reads = 0

    init(countMax: Int) {
        precondition(countMax > 0)
        self.countMax = countMax
    }

    /// Brings the head up to `countMax` entries from the database when it holds fewer than the
    /// queue has, or reads it whole after `invalidate`.
    /// Entries read back take their event from `recent` when it still holds it.
    func refill(group: String, from database: ServiceDatabase, recent: RecentEvents? = nil) throws {
        if loaded, complete || entries.count >= countMax { return }
        let after = loaded ? (entries.last?.seq ?? -1) : -1
        let wanted = loaded ? countMax - entries.count : countMax
        let rows = try database.read { db in try SQLRow.fetchAll(db, cached: Self.refillSQL, arguments: group, after, wanted) }
        reads += 1
        if !loaded { entries.removeAll(keepingCapacity: true) }
        for row in rows {
            let seq: Int64 = try row[0]
            entries.append(Entry(seq: seq, nextAttemptAt: try row[1], envelope: try row[2], event: recent?.event(at: seq)))
        }
        loaded = true
        complete = rows.count < wanted
    }

    /// The group's first pending deliveries after a log position (read from `delivery_pending`,
    /// which covers the delivery's part).
    static let refillSQL = """
        SELECT d.seq, d.nextAttemptAt, e.envelope FROM delivery d JOIN event e ON e.seq = d.seq
        WHERE d.consumerGroup = ? AND d.status = 'pending' AND d.seq > ?
        ORDER BY d.seq LIMIT ?
        """

    /// A commit appended these deliveries (in log order, after every delivery the queue had).
    func appended(_ new: [Entry]) {
        guard loaded, complete else { return }  // read from the database when the head gets there
        for entry in new {
            guard entries.count < countMax else { complete = false; return }
            entries.append(entry)
        }
    }

    /// A commit settled the delivery at `seq`: nil when it left the queue (acknowledged or dead),
    /// else the time of its next attempt.
    func settled(seq: Int64, nextAttemptAt: Int64?) {
        guard let i = index(of: seq) else { return }  // beyond the head: read when the head gets there
        if let nextAttemptAt { entries[i].nextAttemptAt = nextAttemptAt } else { entries.remove(at: i) }
    }

    /// The queue changed in a way the head cannot follow (a replay, a requeue): read it again.
    func invalidate() {
        loaded = false
        complete = false
    }

    private func index(of seq: Int64) -> Int? {
        var low = 0, high = entries.count
        while low < high {
            let mid = (low + high) / 2
            if entries[mid].seq < seq { low = mid + 1 } else { high = mid }
        }
        return low < entries.count && entries[low].seq == seq ? low : nil
    }
}

/// The last events the bus appended while it was up, by log position: a queue head read back from
/// the database (a backlog past the entries a head holds) takes each event from here instead of
/// decoding its text again, which was 1.6 % of a simulated happy-path run. A slot holds the last
/// event whose position falls in it; a restarted bus starts empty and decodes.
struct RecentEvents {
    private var slots: [(seq: Int64, event: EventEnvelope)?]

    init(capacity: Int) {
        precondition(capacity > 0)
        slots = Array(repeating: nil, count: capacity)
    }

    /// `event` was committed at log position `seq`.
    mutating func put(_ event: EventEnvelope, at seq: Int64) {
        slots[Int(seq.magnitude % UInt64(slots.count))] = (seq, event)
    }

    func event(at seq: Int64) -> EventEnvelope? {
        guard let slot = slots[Int(seq.magnitude % UInt64(slots.count))], slot.seq == seq else { return nil }
        return slot.event
    }
}
