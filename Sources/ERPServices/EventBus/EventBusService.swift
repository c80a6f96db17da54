import ERPCore
import ERPStorage
import ERPTransport
import GRDB
import Synchronization

/// Where a consumer group's events go: the group's patterns and the nodes that share its events.
public struct EventRoute: Sendable, Hashable {
    public var subscription: Subscription
    public var members: [NodeName]
    public init(subscription: Subscription, members: [NodeName]) { self.subscription = subscription; self.members = members }
}

/// The event bus: a durable log of events and a durable queue per consumer group.
/// `AppendEvents` answers only after the events and their deliveries are committed (deduplicated on
/// `eventId`). A dispatcher per group delivers in log order with a bounded window (what is due for
/// a member node goes in one `DeliverEvents`), redelivers with capped backoff until the consumer
/// acknowledges, and dead-letters after `attemptCountMax`.
public final class EventBusService: RetailService, @unchecked Sendable {
    public static let name = ServiceName.eventBus
    public static let database: DatabaseDeclaration? = DatabaseDeclaration("bus", migrations: migrations)

    public struct Settings: Sendable {
        /// Deliveries a group has in flight at most. Over links of 1 – 4 ms, 16 let a group take
        /// about 2,000 events a second (the window over the round trip), and the report's group,
        /// about 5.9 events an order, fell behind at 1,000 whole sagas a second: 177,209 of its
        /// deliveries were never attempted by the end of a 100,000-order run. 64 is the queue
        /// head the dispatcher reads (`headCountMax`) whole.
        public var windowCountMax = 64
        /// Pending deliveries of a group the dispatcher reads at once, in log order. In an
        /// outage these are the ones tried until they are dead letters (a few dozen), so this,
        /// not the window, bounds what an outage dead-letters.
        public var headCountMax = 64
        public var deliveryTimeout: Duration = .seconds(1)
        public var attemptCountMax = 50
        public var backoffInitial: Duration = .milliseconds(100)
        public var backoffMax: Duration = .seconds(3)
        public var idlePollInterval: Duration = .seconds(1)
        public init() {}
    }

    let runtime: any Runtime
    let routes: [EventRoute]
    let settings: Settings
    let database: ServiceDatabase
    /// Every group's delivery outcomes, committed together: one transaction (and one sync) for the
    /// acknowledgements that arrive in the same moment rather than one each.
    let outcomes: GroupCommit
    private var dispatchers: [Dispatcher] = []
    /// The events appended since the bus started, the last 4,096 by log position.
    private(set) var recent = RecentEvents(capacity: 4_096)
    /// The routes each topic seen so far goes to (indices into `routes`, in order): a handful of
    /// topics, each matched against every pattern once instead of once per event (2.7 % of a
    /// chaos-mix run's CPU was `Subscription.matches`).
    private var routesByTopic: [String: [Int]] = [:]
    /// Each group's delivery outcomes since the bus started, for its `/metrics` (read on HTTP
    /// threads, hence the lock): which consumer fails could not be told from the calls' counts,
    /// which have no group (an on-call trial).
    private let groupCounts = Mutex([String: GroupCounts]())
    struct GroupCounts { var acked = 0, failed = 0, dead = 0 }

    public init(context: ServiceContext) {
        runtime = context.runtime
        // Sorted, so that fan-out order never depends on how the routes were gathered.
        routes = context.routes.sorted { $0.subscription.group < $1.subscription.group }
        settings = Settings()
        database = context.database
        outcomes = GroupCommit(runtime: context.runtime, database: context.database)
    }

    static let migrations: [Migration] = [
        ("bus-1", { db in
            try db.execute(sql: """
                CREATE TABLE event (
                  seq INTEGER PRIMARY KEY AUTOINCREMENT, eventId TEXT NOT NULL UNIQUE, topic TEXT NOT NULL,
                  envelope TEXT NOT NULL, appendedAt INTEGER NOT NULL
                );
                CREATE TABLE delivery (
                  consumerGroup TEXT NOT NULL, seq INTEGER NOT NULL,
                  status TEXT NOT NULL, -- pending | acked | dead
                  attempts INTEGER NOT NULL DEFAULT 0, nextAttemptAt INTEGER NOT NULL, lastError TEXT,
                  PRIMARY KEY (consumerGroup, seq)
                );
                CREATE INDEX delivery_due ON delivery (consumerGroup, status, seq);
                """)
        }),
        // The deliveries clustered on their key (`WITHOUT ROWID`), with an index of the pending
        // ones only (covering what the queue's head reads) and one of the dead letters: a
        // delivery's insert writes two B-trees instead of three, and its acknowledgement takes it
        // out of one index instead of moving it within another. Three of every five statements
        // the bus runs are these (a happy-path run: 36,538 of about 61,000).
        ("bus-2", { db in
            try db.execute(sql: """
                CREATE TABLE delivery_clustered (
                  consumerGroup TEXT NOT NULL, seq INTEGER NOT NULL,
                  status TEXT NOT NULL, -- pending | acked | dead
                  attempts INTEGER NOT NULL DEFAULT 0, nextAttemptAt INTEGER NOT NULL, lastError TEXT,
                  PRIMARY KEY (consumerGroup, seq)
                ) WITHOUT ROWID;
                INSERT INTO delivery_clustered (consumerGroup, seq, status, attempts, nextAttemptAt, lastError)
                  SELECT consumerGroup, seq, status, attempts, nextAttemptAt, lastError FROM delivery;
                DROP TABLE delivery;
                ALTER TABLE delivery_clustered RENAME TO delivery;
                CREATE INDEX delivery_pending ON delivery (consumerGroup, seq, nextAttemptAt) WHERE status = 'pending';
                CREATE INDEX delivery_dead ON delivery (consumerGroup, seq) WHERE status = 'dead';
                """)
        }),
        // The log without AUTOINCREMENT, which wrote sqlite_sequence at every append: events are
        // never deleted, so the largest position plus one is the next, as it was. And each event's
        // type, version and producer's timestamp in columns of their own, which the consistency
        // checker read from the JSON text of every event (two parses per event and group).
        ("bus-3", { db in
            try db.execute(sql: """
                CREATE TABLE event_plain (
                  seq INTEGER PRIMARY KEY, eventId TEXT NOT NULL UNIQUE, topic TEXT NOT NULL,
                  eventType TEXT NOT NULL, eventVersion TEXT NOT NULL, producedAt INTEGER NOT NULL,
                  envelope TEXT NOT NULL, appendedAt INTEGER NOT NULL
                );
                INSERT INTO event_plain (seq, eventId, topic, eventType, eventVersion, producedAt, envelope, appendedAt)
                  SELECT seq, eventId, topic,
                    COALESCE(CASE WHEN json_valid(envelope) THEN json_extract(envelope, '$.eventType') END, ''),
                    COALESCE(CASE WHEN json_valid(envelope) THEN json_extract(envelope, '$.eventVersion') END, ''),
                    COALESCE(CASE WHEN json_valid(envelope) THEN json_extract(envelope, '$.timestamp') END, appendedAt),
                    envelope, appendedAt
                  FROM event;
                DROP TABLE event;
                ALTER TABLE event_plain RENAME TO event;
                """)
        }),
    ]

    public func start() async throws {
        dispatchers = routes.map { Dispatcher(bus: self, route: $0) }
        runtime.transport.register(AppendEvents.self) { [self] request, context in try self.append(request, from: context.caller) }
        runtime.transport.register(ReplayGroup.self) { [self] request, _ in try self.replay(request) }
        runtime.transport.register(ListDeadLetters.self) { [self] request, _ in
            try storage { try database.read { try EventLog.deadLetters(group: request.group, limit: request.limit, in: $0) } }
        }
        runtime.transport.register(RequeueDeadLetters.self) { [self] request, _ in try self.requeue(request) }
        for dispatcher in dispatchers {
            runtime.spawn("dispatch-\(dispatcher.route.subscription.group)") { await dispatcher.run() }
        }
    }

    /// Appends `request`'s events for `caller`. A service may append only the event types it
    /// publishes, each with itself as the source (so that one whose key is misused cannot forge
    /// another's events: a restock from the order service); callers that are not services (the
    /// harness, a test's client; in production clients' keys may not call this at all) are not
    /// checked.
    func append(_ request: AppendEvents, from caller: NodeName) throws -> AppendAck {
        if let service = ServiceName(rawValue: caller.rawValue), let allowed = ServiceCatalog.publishedEventTypes[service] {
            if let foreign = request.events.first(where: { !allowed.contains($0.eventType) }) {
                throw RPCError.rejected(code: "forbidden", message: "\(service) does not publish \(foreign.eventType) (event \(foreign.eventId))")
            }
            // Nor under another's name: an event's source is who published it.
            let source = service.sourceName
            if let forged = request.events.first(where: { $0.source != source }) {
                throw RPCError.rejected(code: "forbidden", message: "\(service) publishes as \(source), not \(forged.source) (event \(forged.eventId))")
            }
        }
        let now = runtime.clock.now.millisecondsSinceEpoch
        var queued = Array(repeating: [QueueHead.Entry](), count: routes.count)
        var appendedAt: [(seq: Int64, event: EventEnvelope)] = []
        let ack: AppendAck = try storage {
            try database.write { db in
                var appended = 0, duplicates = 0
                for var event in request.events {
                    // Relayed from an outbox, an event comes with the text it was read from;
                    // any other is written by the envelope's own writer, as an outbox row is.
                    let text = try event.encodeText()
                    try db.execute(cached: """
                        INSERT INTO event (eventId, topic, eventType, eventVersion, producedAt, envelope, appendedAt) VALUES (?, ?, ?, ?, ?, ?, ?)
                        ON CONFLICT DO NOTHING
                        """, arguments: event.eventId, event.topic, event.eventType, event.eventVersion, event.timestamp, text, now)
                    guard db.changesCount == 1 else { duplicates += 1; continue }
                    appended += 1
                    let seq = db.lastInsertedRowID
                    appendedAt.append((seq, event))
                    for i in routesMatching(event.topic) {
                        try db.execute(cached: "INSERT INTO delivery (consumerGroup, seq, status, nextAttemptAt) VALUES (?, ?, 'pending', ?)",
                                       arguments: routes[i].subscription.group, seq, now)
                        queued[i].append(QueueHead.Entry(seq: seq, nextAttemptAt: now, envelope: text, event: event))
                    }
                }
                return AppendAck(appended: appended, duplicates: duplicates)
            }
        }
        // Committed: the dispatchers' heads learn of the new deliveries.
        runtime.record("bus appended \(ack.appended) duplicates \(ack.duplicates)")
        for (seq, event) in appendedAt { recent.put(event, at: seq) }
        for (i, dispatcher) in dispatchers.enumerated() where !queued[i].isEmpty {
            dispatcher.head.appended(queued[i])
            dispatcher.signal.notify()
        }
        return ack
    }

    private func routesMatching(_ topic: String) -> [Int] {
        if let known = routesByTopic[topic] { return known }
        let matching = routes.indices.filter { routes[$0].subscription.matches(topic) }
        if routesByTopic.count < 1024 { routesByTopic[topic] = matching }  // bounded, whatever producers send
        return matching
    }

    func replay(_ request: ReplayGroup) throws -> ReplayAck {
        guard let index = routes.firstIndex(where: { $0.subscription.group == request.group }) else {
            throw RPCError.rejected(code: "unknown_group", message: "no consumer group \(request.group); groups: \(routes.map(\.subscription.group).joined(separator: ", "))")
        }
        // A negative position is a typo, not "from the start": replaying a whole log is no small thing.
        guard request.fromSequence >= 0, (request.sinceMilliseconds ?? 0) >= 0 else {
            throw RPCError.rejected(code: "bad_request", message: "fromSequence and sinceMilliseconds must not be negative")
        }
        let now = runtime.clock.now.millisecondsSinceEpoch
        let queued = try storage {
            try database.write { db in
                let start = try request.sinceMilliseconds.map { try EventLog.firstSequence(since: $0, in: db) } ?? max(0, request.fromSequence)
                return try EventLog.replay(routes[index].subscription, fromSequence: start, now: now, in: db)
            }
        }
        runtime.record("bus replay \(request.group) from \(request.fromSequence): \(queued) queued")
        dispatchers[index].head.invalidate()
        dispatchers[index].signal.notify()
        return ReplayAck(queued: queued)
    }

    func requeue(_ request: RequeueDeadLetters) throws -> ReplayAck {
        guard let index = routes.firstIndex(where: { $0.subscription.group == request.group }) else {
            throw RPCError.rejected(code: "unknown_group", message: "no consumer group \(request.group)")
        }
        let now = runtime.clock.now.millisecondsSinceEpoch
        let (queued, notDead) = try storage { try database.write { try EventLog.requeue(group: request.group, sequences: request.sequences, now: now, in: $0) } }
        runtime.record("bus requeue \(request.group): \(queued) dead letters")
        dispatchers[index].head.invalidate()
        dispatchers[index].signal.notify()
        return ReplayAck(queued: queued, notDeadLetters: notDead.isEmpty ? nil : notDead)
    }

    /// Each consumer group's deliveries acknowledged, failed (to be tried again) and
    /// dead-lettered since the bus started, in Prometheus's text format.
    public func prometheusText() -> String {
        let counts = groupCounts.withLock { $0 }
        guard !counts.isEmpty else { return "" }
        var out = ""
        for (name, help, value) in [("erp_bus_deliveries_acked_total", "Deliveries each consumer group acknowledged.", { (c: GroupCounts) in c.acked }),
                                    ("erp_bus_delivery_failures_total", "Delivery attempts to each consumer group that failed (to be tried again).", { $0.failed }),
                                    ("erp_bus_dead_letters_total", "Deliveries each consumer group lost to the dead letters (erp events requeue sends them again).", { $0.dead })] {
            out += "# HELP \(name) \(help)\n# TYPE \(name) counter\n"
            for group in counts.keys.sorted() { out += "\(name){group=\"\(group)\"} \(value(counts[group]!))\n" }
        }
        return out
    }

    /// Refusals that mean an event can never be applied, whatever the retries.
    static let poisonCodes: Set<String> = ["undecodable_event", "bad_event"]

    /// Delivers one group's queue.
    final class Dispatcher: @unchecked Sendable {
        unowned let bus: EventBusService
        let route: EventRoute
        let signal: WakeSignal
        /// The first deliveries of the group's queue, kept as the database holds them.
        let head: QueueHead
        private var inFlight: Set<Int64> = []

        init(bus: EventBusService, route: EventRoute) {
            self.bus = bus
            self.route = route
            self.signal = WakeSignal(runtime: bus.runtime)
            self.head = QueueHead(countMax: bus.settings.headCountMax)
        }

        var group: String { route.subscription.group }

        func run() async {
            let runtime = bus.runtime, settings = bus.settings
            while true {
                let now = runtime.clock.now.millisecondsSinceEpoch
                var due: [QueueHead.Entry] = []
                var nextDue: Int64?
                let room = max(0, settings.windowCountMax - inFlight.count)
                do {
                    try head.refill(group: group, from: bus.database, recent: bus.recent)
                    // By index, reading two fields: iterating the entries copied each one whole
                    // (its text and event) at every wake-up.
                    let entries = head.entries
                    for i in entries.indices {
                        let seq = entries[i].seq, nextAttemptAt = entries[i].nextAttemptAt
                        if nextAttemptAt > now {
                            if !inFlight.contains(seq) { nextDue = min(nextDue ?? nextAttemptAt, nextAttemptAt) }
                            continue
                        }
                        guard due.count < room else { continue }
                        if inFlight.contains(seq) { continue }
                        due.append(entries[i])
                    }
                } catch {
                    runtime.logger.error("bus \(group): cannot read queue: \(error)")
                }
                // One call per member node with what is due for it, in log order.
                var batches = Array(repeating: [QueueHead.Entry](), count: route.members.count)
                for entry in due {
                    inFlight.insert(entry.seq)
                    batches[Int(entry.seq % Int64(route.members.count))].append(entry)
                }
                for (member, batch) in batches.enumerated() where !batch.isEmpty {
                    runtime.spawn("deliver") { [self] in await self.deliver(batch, to: route.members[member]) }
                }
                let wait = nextDue.map { Duration.milliseconds(max(1, $0 - now)) } ?? settings.idlePollInterval
                await signal.wait(timeout: min(wait, settings.idlePollInterval))
            }
        }

        /// One attempt's outcome for one delivery: acknowledged (`error` nil), to be retried, or
        /// dead-lettered (`final`).
        struct Outcome {
            var seq: Int64
            var error: String?
            var final: Bool
        }

        private func deliver(_ entries: [QueueHead.Entry], to member: NodeName) async {
            let runtime = bus.runtime, settings = bus.settings
            defer {
                for entry in entries { inFlight.remove(entry.seq) }
                signal.notify()
            }
            var outcomes: [Outcome] = []
            var events: [EventEnvelope] = [], sent: [Int64] = []
            for entry in entries {
                do {
                    // Appended while the bus was up: the event as the producer's relay sent it,
                    // which its text decodes to. Read back from the database: decoded here.
                    events.append(try entry.event ?? JSONCoding.decode(EventEnvelope.self, from: entry.envelope))
                    sent.append(entry.seq)
                } catch {
                    outcomes.append(Outcome(seq: entry.seq, error: "undecodable: \(error)", final: true))
                }
            }
            if !events.isEmpty {
                do {
                    let acks = try await runtime.transport.call(
                        DeliverEvents(group: group, events: events), to: member,
                        metadata: runtime.metadata(timeout: settings.deliveryTimeout,
                                                   correlationId: events.count == 1 ? events[0].correlationId : nil))
                    guard acks.outcomes.count == events.count,
                          zip(acks.outcomes, events).allSatisfy({ $0.eventId == $1.eventId }) else {
                        throw RPCError.rejected(code: "bad_ack", message: "\(member) answered \(acks.outcomes.count) outcomes for \(events.count) events, or for others")
                    }
                    for (seq, outcome) in zip(sent, acks.outcomes) {
                        if outcome.isAcknowledged {
                            outcomes.append(Outcome(seq: seq, error: nil, final: false))
                        } else {
                            let error = outcome.code.map { "\($0): \(outcome.message ?? "")" } ?? outcome.message ?? outcome.status.rawValue
                            // The consumer can never apply this event (an unsupported version, a
                            // malformed payload): dead-lettered at once with its reason, not
                            // retried fifty times.
                            let poison = outcome.status == .refused && EventBusService.poisonCodes.contains(outcome.code ?? "")
                            outcomes.append(Outcome(seq: seq, error: error, final: poison))
                        }
                    }
                } catch {
                    // The call as a whole failed (timeout, unreachable, a refusal of the call such
                    // as an unknown group): every event of it goes out again. Only an event's own
                    // outcome dead-letters it at once, never its neighbours in a call.
                    for seq in sent { outcomes.append(Outcome(seq: seq, error: String(describing: error), final: false)) }
                }
            }
            await settle(outcomes)
        }

        /// Failed attempts since the group's last acknowledgement, and when that was last said.
        private var failuresSinceAck = 0
        private var lastFailureWarning: Timestamp?

        /// Counts committed outcomes for `/metrics`, and says in the log, at most every 10 s, that a
        /// group's deliveries fail (a consumer's outage was silent for 100 s, until its events
        /// began to be dead letters), and when they succeed again.
        private func tally(_ outcomes: [Outcome], next: [Int64?], now: Timestamp) {
            var acked = 0, failed = 0, dead = 0
            var lastError: String?
            for (outcome, next) in zip(outcomes, next) {
                if outcome.error == nil { acked += 1 } else if next == nil { dead += 1 } else { failed += 1; lastError = outcome.error }
            }
            bus.groupCounts.withLock { counts in
                counts[group, default: GroupCounts()].acked += acked
                counts[group, default: GroupCounts()].failed += failed
                counts[group, default: GroupCounts()].dead += dead
            }
            if acked > 0 && failed == 0 {
                if lastFailureWarning != nil {
                    bus.runtime.logger.warning("bus \(group): deliveries succeed again, after \(failuresSinceAck) failed attempts")
                }
                failuresSinceAck = 0
                lastFailureWarning = nil
            }
            failuresSinceAck += failed
            if failed > 0, lastFailureWarning.map({ now - $0 >= .seconds(10) }) ?? true {
                lastFailureWarning = now
                bus.runtime.logger.warning("bus \(group): deliveries to \(route.members.map(\.rawValue).joined(separator: ", ")) failing (\(lastError ?? "")): \(failuresSinceAck) failed attempts since the last success; an event is a dead letter after \(bus.settings.attemptCountMax) attempts (about 100 s of this)")
            }
        }

        /// Records the outcomes of one attempt, in one write: acked, retry later, or dead-lettered.
        /// Committed with the other outcomes of the moment (`GroupCommit`): an outcome lost in a
        /// crash before its commit leaves the delivery pending, and it goes out again.
        private func settle(_ outcomes: [Outcome]) async {
            let runtime = bus.runtime, settings = bus.settings
            let now = runtime.clock.now
            let group = self.group
            do {
                // Each delivery's next attempt, or nil when it left the queue (acked or dead).
                let next: [Int64?] = try await bus.outcomes.commit(isolated: false) { db in
                    try outcomes.map { outcome in
                        let seq = outcome.seq
                        guard let error = outcome.error else {
                            try db.execute(cached: "UPDATE delivery SET status = 'acked', attempts = attempts + 1 WHERE consumerGroup = ? AND seq = ?",
                                           arguments: group, seq)
                            return nil
                        }
                        let attempts = (try Int.fetchOne(db, cached: "SELECT attempts FROM delivery WHERE consumerGroup = ? AND seq = ?", arguments: group, seq) ?? 0) + 1
                        if outcome.final || attempts >= settings.attemptCountMax {
                            try db.execute(cached: "UPDATE delivery SET status = 'dead', attempts = ?, lastError = ? WHERE consumerGroup = ? AND seq = ?",
                                           arguments: attempts, error, group, seq)
                            runtime.record("bus \(group) dead-letter seq \(seq): \(error)")
                            // Not only a transition among the info lines: what this group's read
                            // models or notifications miss until someone requeues it.
                            runtime.logger.warning("bus \(group): the event at seq \(seq) is a dead letter after \(attempts) attempts (\(error)); `erp events dead-letters` lists it, `erp events requeue` sends it again")
                            return nil
                        }
                        let delay = runtime.random.fullJitterBackoff(attempt: attempts, initial: settings.backoffInitial, max: settings.backoffMax)
                        let at = (now + delay).millisecondsSinceEpoch
                        try db.execute(cached: "UPDATE delivery SET attempts = ?, nextAttemptAt = ?, lastError = ? WHERE consumerGroup = ? AND seq = ?",
                                       arguments: attempts, at, error, group, seq)
                        return at
                    }
                }
                for (outcome, next) in zip(outcomes, next) { head.settled(seq: outcome.seq, nextAttemptAt: next) }
                tally(outcomes, next: next, now: now)
            } catch {
                runtime.logger.error("bus \(group): cannot settle \(outcomes.count) deliveries from seq \(outcomes.first?.seq ?? -1): \(error)")
                // Not delivered again at once (the database still says they are due): on a full
                // disk that was a delivery and a failed write in a tight loop, 350,000 log lines
                // in minutes. They go out again after the longest backoff.
                let retryAt = (now + settings.backoffMax).millisecondsSinceEpoch
                for outcome in outcomes { head.settled(seq: outcome.seq, nextAttemptAt: retryAt) }
            }
        }
    }
}
