import ERPCore
import ERPResilience
import ERPServices
import ERPStorage
import ERPTransport
import Foundation
import GRDB
import Logging
import Synchronization
import Testing

struct Echo: RPCRequest {
    typealias Response = String
    static let method = "test.echo"
    static let service = ServiceName.inventory
    var text: String
}

struct Slow: RPCRequest {
    typealias Response = String
    static let method = "test.slow"
    static let service = ServiceName.inventory
    var delayMilliseconds: Int64
}

struct Refuse: RPCRequest {
    typealias Response = String
    static let method = "test.refuse"
    static let service = ServiceName.inventory
}

struct Unserved: RPCRequest {
    typealias Response = String
    static let method = "test.unserved"
    static let service = ServiceName.inventory
}

/// Counts handler runs across restarts of a node.
final class Counter: @unchecked Sendable { var value = 0 }

func registerTestHandlers(_ runtime: any Runtime, runs: Counter) {
    runtime.transport.register(Echo.self) { request, context in
        runs.value += 1
        return request.text + " from " + runtime.node.rawValue + " for " + context.caller.rawValue
    }
    runtime.transport.register(Slow.self) { request, _ in
        runs.value += 1
        await runtime.sleep(for: .milliseconds(request.delayMilliseconds))
        return "late"
    }
    runtime.transport.register(Refuse.self) { _, _ in throw RPCError.rejected(code: "no_way", message: "refused on purpose") }
}

/// The transport contract, proven on every backend with the same test bodies.
@Suite struct TransportConformanceTests {
    @Test(arguments: Backend.allCases)
    func callGetsTheAnswerAndCarriesTheCaller(backend: Backend) async throws {
        let h = try backend.makeHarness()
        let runs = Counter()
        h.addNode("inventory", serving: .inventory) { registerTestHandlers($0, runs: runs) }
        try await h.run(limit: .seconds(5)) { client in
            let answer = try await client.transport.call(Echo(text: "hello"), metadata: client.metadata(timeout: .seconds(1)))
            #expect(answer == "hello from inventory for test-client")
        }
        #expect(runs.value == 1)
    }

    /// The seed's rate limiting per service: past its bucket a node answers `overloaded` with the
    /// time after which the caller may try again, without running the handler.
    @Test(arguments: Backend.allCases)
    func aServicesRateLimitRefusesTheExcessWithARetryAfter(backend: Backend) async throws {
        let h = try backend.makeHarness()
        let runs = Counter()
        h.addNode("inventory", serving: .inventory) { registerTestHandlers($0, runs: runs) }
        h.limitIncoming("inventory", RateLimiterSettings(bucket: TokenBucketSettings(capacity: 2, refillRatePerSecond: 2)))
        try await h.run(limit: .seconds(10)) { client in
            var answers: [String] = []
            for i in 0..<4 {
                do {
                    _ = try await client.transport.call(Echo(text: "\(i)"), metadata: client.metadata(timeout: .seconds(1)))
                    answers.append("ok")
                } catch RPCError.overloaded(let retryAfter) {
                    #expect((retryAfter ?? 0) > 0 && (retryAfter ?? 0) <= 500, "retry after \(String(describing: retryAfter)) ms")
                    answers.append("overloaded")
                }
            }
            #expect(answers == ["ok", "ok", "overloaded", "overloaded"])
            // Half a second later the bucket holds a token again.
            await client.sleep(for: .milliseconds(550))
            _ = try await client.transport.call(Echo(text: "again"), metadata: client.metadata(timeout: .seconds(1)))
        }
        #expect(runs.value == 3, "a refused request never reaches the handler")
    }

    /// Writes asked for in the same moment share one transaction; one that throws is undone
    /// alone, and every waiter resumes only after the commit.
    @Test(arguments: Backend.allCases)
    func groupCommitSharesOneTransactionAndIsolatesAFailure(backend: Backend) async throws {
        let h = try backend.makeHarness()
        try await h.run(limit: .seconds(10)) { client in
            let db = try client.openDatabase("group", migrations: [("t", { try $0.execute(sql: "CREATE TABLE t (n INTEGER PRIMARY KEY)") })])
            let commits = GroupCommit(runtime: client, database: db)
            struct Refused: Error {}
            func insert(_ n: Int, fail: Bool = false) async throws -> Int {
                try await commits.commit { db in
                    try db.execute(sql: "INSERT INTO t (n) VALUES (?)", arguments: [n])
                    if fail { throw Refused() }
                    return n
                }
            }
            async let a = insert(1)
            async let b = insert(2)
            async let c = insert(3, fail: true)
            async let d = insert(4)
            let (x, y, z) = try await (a, b, d)
            #expect(x == 1 && y == 2 && z == 4)
            var refused = false
            do { _ = try await c } catch is Refused { refused = true }
            #expect(refused, "the failing write gets its own error")
            #expect(try db.read { try Int.fetchAll($0, sql: "SELECT n FROM t ORDER BY n") } == [1, 2, 4])
            // A serial executor runs the four writers before the flush: one commit. The simulator
            // picks ready tasks in a seeded random order, so the flush may come between them.
            let expected = backend == .zeromq ? 1...1 : 1...3
            #expect(commits.writes == 3 && expected.contains(commits.commits), "\(commits.commits) commits for \(commits.writes) writes")
            // Alone, a write is a transaction of its own; alone and failing, nothing is committed.
            let before = commits.commits
            #expect(try await insert(5) == 5)
            #expect(commits.commits == before + 1)
            await #expect(throws: Refused.self) { try await insert(6, fail: true) }
            #expect(commits.commits == before + 1 && commits.writes == 4)
            #expect(try db.read { try Int.fetchAll($0, sql: "SELECT n FROM t ORDER BY n") } == [1, 2, 4, 5])
        }
    }

    /// Each line a consumer records for a delivered event is written under that event's own
    /// correlation id, not the delivery's: one delivery carries the events of many orders, and a
    /// reader following one order through the logs must find its lines.
    @Test(arguments: Backend.allCases)
    func aConsumerRecordsEachEventUnderItsOwnCorrelationId(backend: Backend) async throws {
        let h = try backend.makeHarness()
        let lines = Mutex<[String]>([])
        h.addNode("report", serving: .report) { (runtime: any Runtime) throws -> Void in
            let watched = RecordWatchingRuntime(runtime) { line in
                lines.withLock { $0.append("\(CorrelationScope.correlationId ?? "none"): \(line)") }
            }
            let db = try runtime.openDatabase("consumer", migrations: [])
            let consumer = EventConsumer(runtime: watched, database: db, group: "g")
            consumer.on(OrderCancelled.self) { _, _, _ in }
            consumer.start()
        }
        try await h.run(limit: .seconds(10)) { client in
            let events = try ["a", "b"].map { id in
                try EventEnvelope(OrderCancelled(orderId: id, reason: "x"), eventId: "evt_" + id, source: .order,
                                  timestamp: .simulationEpoch, correlationId: "corr-" + id)
            }
            let acks = try await client.transport.call(DeliverEvents(group: "g", events: events + [events[0]]), to: "report",
                                                       metadata: client.metadata(timeout: .seconds(2), correlationId: "corr-delivery"))
            #expect(acks.outcomes.map(\.status) == [.applied, .applied, .duplicate])
        }
        #expect(lines.withLock { $0 } == ["corr-a: report applied OrderCancelled evt_a as g",
                                          "corr-b: report applied OrderCancelled evt_b as g",
                                          "corr-a: report skipped duplicate OrderCancelled evt_a as g"])
    }

    /// A consumer answers each event of a delivery, in the request's order, after one commit: the
    /// fresh ones applied, a repeat within the same call found in the inbox, an unconsumed type
    /// acknowledged, a version it cannot read refused for good, an effect's refusal passed on, and
    /// a failing effect undone alone while the others commit.
    @Test(arguments: Backend.allCases)
    func aConsumerAnswersEachEventOfADeliveryInOrder(backend: Backend) async throws {
        let h = try backend.makeHarness()
        struct Broken: Error {}
        h.addNode("report", serving: .report) { (runtime: any Runtime) throws -> Void in
            let db = try runtime.openDatabase("consumer", migrations: [("seen", { try $0.execute(sql: "CREATE TABLE seen (orderId TEXT PRIMARY KEY)") })])
            let consumer = EventConsumer(runtime: runtime, database: db, group: "g")
            consumer.on(OrderCancelled.self) { payload, _, db in
                try db.execute(sql: "INSERT INTO seen (orderId) VALUES (?)", arguments: [payload.orderId])
                if payload.reason == "broken" { throw Broken() }
                if payload.reason == "not yet" { throw RPCError.rejected(code: "not_yet", message: "try later") }
            }
            consumer.start()
            runtime.transport.register(Echo.self) { _, _ in
                try db.read { try String.fetchAll($0, sql: "SELECT orderId FROM seen ORDER BY orderId") }.joined(separator: ",")
            }
        }
        try await h.run(limit: .seconds(10)) { client in
            func cancelled(_ id: String, _ reason: String) throws -> EventEnvelope {
                try EventEnvelope(OrderCancelled(orderId: id, reason: reason), eventId: "evt_" + id, source: .order,
                                  timestamp: .simulationEpoch, correlationId: "c")
            }
            var future = try cancelled("f", "x")
            future.eventVersion = "9.0"
            var other = try cancelled("o", "x")
            other.eventType = "OrderConfirmed"
            let events = [try cancelled("a", "x"), try cancelled("b", "broken"), try cancelled("a", "x"), other, future,
                          try cancelled("n", "not yet"), try cancelled("c", "x")]
            let acks = try await client.transport.call(DeliverEvents(group: "g", events: events), to: "report",
                                                       metadata: client.metadata(timeout: .seconds(2)))
            #expect(acks.outcomes.map(\.eventId) == events.map(\.eventId))
            #expect(acks.outcomes.map(\.status) == [.applied, .failed, .duplicate, .ignored, .refused, .refused, .applied])
            #expect(acks.outcomes[4].code == "undecodable_event" && acks.outcomes[4].message?.contains("9.0") == true)
            #expect(acks.outcomes[5].code == "not_yet")
            #expect(acks.outcomes.map(\.isAcknowledged) == [true, false, true, true, false, false, true])
            #expect(try await client.transport.call(Echo(text: ""), to: "report", metadata: client.metadata(timeout: .seconds(1))) == "a,c",
                    "the failing and refused effects are undone alone")
            // Delivered again, what was applied is found in the inbox.
            let again = try await client.transport.call(DeliverEvents(group: "g", events: [events[0], events[6]]), to: "report",
                                                        metadata: client.metadata(timeout: .seconds(2)))
            #expect(again.outcomes.map(\.status) == [.duplicate, .duplicate])
            await #expect(throws: RPCError.rejected(code: "unknown_group", message: "report consumes as g, not h")) {
                try await client.transport.call(DeliverEvents(group: "h", events: events), to: "report", metadata: client.metadata(timeout: .seconds(2)))
            }
            let tooMany = Array(repeating: events[0], count: DeliverEvents.countMax + 1)
            do {
                _ = try await client.transport.call(DeliverEvents(group: "g", events: tooMany), to: "report", metadata: client.metadata(timeout: .seconds(2)))
                Issue.record("a delivery of \(tooMany.count) events was taken")
            } catch RPCError.rejected(let code, _) {
                #expect(code == "bad_request")
            }
        }
    }

    @Test(arguments: Backend.allCases)
    func deadlineExceededWhenTheAnswerIsLate(backend: Backend) async throws {
        let h = try backend.makeHarness()
        h.addNode("inventory", serving: .inventory) { registerTestHandlers($0, runs: Counter()) }
        try await h.run(limit: .seconds(10)) { client in
            let start = client.clock.now
            await #expect(throws: RPCError.deadlineExceeded) {
                try await client.transport.call(Slow(delayMilliseconds: 2_000), metadata: client.metadata(timeout: .milliseconds(300)))
            }
            let waited = client.clock.now - start
            // Virtual time is exact. On real sockets the bound only has to prove the call ended at
            // its deadline and not with the answer (2 s): a loaded machine runs timers late, and
            // 100 ms of slack was a test of the machine.
            let latest: Duration = backend == .simulation ? .milliseconds(400) : .milliseconds(1_500)
            #expect(waited >= .milliseconds(300) && waited < latest, "waited \(waited)")
        }
    }

    @Test(arguments: Backend.allCases)
    func workWhoseDeadlineHasPassedIsNotDone(backend: Backend) async throws {
        let h = try backend.makeHarness()
        let runs = Counter()
        h.addNode("inventory", serving: .inventory) { registerTestHandlers($0, runs: runs) }
        try await h.run(limit: .seconds(5)) { client in
            // The deadline passes while the request is on the wire (one hop takes at least 0.5 ms).
            let metadata = CallMetadata(deadline: client.clock.now + .microseconds(100), correlationId: "c")
            await #expect(throws: RPCError.deadlineExceeded) { try await client.transport.call(Echo(text: "x"), metadata: metadata) }
            await client.sleep(for: .milliseconds(50))
        }
        #expect(runs.value == 0)
    }

    @Test(arguments: Backend.allCases)
    func rejectionsAndMissingMethodsAreTyped(backend: Backend) async throws {
        let h = try backend.makeHarness()
        h.addNode("inventory", serving: .inventory) { registerTestHandlers($0, runs: Counter()) }
        try await h.run(limit: .seconds(5)) { client in
            await #expect(throws: RPCError.rejected(code: "no_way", message: "refused on purpose")) {
                try await client.transport.call(Refuse(), metadata: client.metadata(timeout: .seconds(1)))
            }
            do {
                _ = try await client.transport.call(Unserved(), metadata: client.metadata(timeout: .seconds(1)))
                Issue.record("an unserved method answered")
            } catch let error as RPCError {
                guard case .unavailable = error else { Issue.record("expected unavailable, got \(error)"); return }
            }
        }
    }

    @Test(arguments: Backend.allCases)
    func aCrashedPeerIsUnavailableNotSilent(backend: Backend) async throws {
        let h = try backend.makeHarness()
        h.addNode("inventory", serving: .inventory) { registerTestHandlers($0, runs: Counter()) }
        try await h.run(limit: .seconds(5)) { client in
            _ = try await client.transport.call(Echo(text: "up"), metadata: client.metadata(timeout: .seconds(1)))
            h.crash("inventory")
            let start = client.clock.now
            do {
                _ = try await client.transport.call(Echo(text: "down"), metadata: client.metadata(timeout: .seconds(2)))
                Issue.record("a crashed node answered")
            } catch let error as RPCError {
                guard case .unavailable = error else { Issue.record("expected unavailable, got \(error)"); return }
                #expect(client.clock.now - start < .seconds(1), "the refusal should come before the deadline")
            }
            h.restart("inventory")
            await client.sleep(for: .milliseconds(10))
            let again = try await client.transport.call(Echo(text: "back"), metadata: client.metadata(timeout: .seconds(1)))
            #expect(again.hasPrefix("back"))
        }
    }

    /// Events: outbox → relay → bus → one delivery per consumer group → inbox. With the network
    /// duplicating a third of all messages, every event's effect still happens once per group, and
    /// patterns route only what matches.
    @Test(arguments: Backend.allCases)
    func eventsReachEveryGroupOnceDespiteDuplicates(backend: Backend) async throws {
        let h = try backend.makeHarness(seed: 4)
        h.setDuplicateProbability(0.33)
        let routes = [
            EventRoute(subscription: Subscription(group: "orders-watch", patterns: [TopicPattern("order.*")]), members: ["watcher-a"]),
            EventRoute(subscription: Subscription(group: "everything", patterns: [TopicPattern("#")]), members: ["watcher-b"]),
        ]
        h.addNode("event-bus", serving: .eventBus) { runtime in
            EventBusService(context: try ServiceContext(for: EventBusService.self, runtime: runtime,
                                                        settings: ServiceSettings(fixtures: Fixtures(products: [], shops: [], customers: [])), routes: routes))
        }
        let publisher = PublisherBox()
        h.addNode("publisher", serving: nil) { runtime in
            let db = try runtime.openDatabase("pub", migrations: [])
            let relay = OutboxRelay(runtime: runtime, database: db)
            relay.start()
            publisher.publish = { count in
                try db.write { db in
                    for i in 0..<count {
                        try runtime.appendEvent(OrderCancelled(orderId: "order_\(i)", reason: "test"), source: .order, correlationId: "c", in: db)
                        try runtime.appendEvent(LowStockAlert(shopId: "s", productId: "p\(i)", currentStock: 1, minimumStock: 5), source: .inventory, correlationId: "c", in: db)
                    }
                }
                relay.notify()
            }
        }
        let effects = EffectLog()
        for (name, group) in [("watcher-a", "orders-watch"), ("watcher-b", "everything")] {
            h.addNode(NodeName(name), serving: nil) { runtime in
                let db = try runtime.openDatabase("consumer", migrations: [])
                let consumer = EventConsumer(runtime: runtime, database: db, group: group)
                consumer.on(OrderCancelled.self) { event, _, _ in effects.add("\(group):\(event.orderId)") }
                consumer.on(LowStockAlert.self) { event, _, _ in effects.add("\(group):\(event.productId)") }
                consumer.start()
            }
        }
        try await h.run(limit: .seconds(30)) { client in
            await client.sleep(for: .milliseconds(20))
            try publisher.publish!(25)
            await client.sleep(for: .seconds(10))
        }
        let counts = effects.counts()
        #expect(counts.values.allSatisfy { $0 == 1 }, "an effect happened more than once: \(counts.filter { $0.value > 1 })")
        #expect(counts.keys.filter { $0.hasPrefix("orders-watch:") }.count == 25)
        #expect(counts.keys.filter { $0.hasPrefix("orders-watch:p") }.isEmpty, "order.* must not receive inventory events")
        #expect(counts.keys.filter { $0.hasPrefix("everything:") }.count == 50)
    }
}

final class PublisherBox: @unchecked Sendable { var publish: ((Int) throws -> Void)? }

/// Effects as committed by consumers (appended inside the consumer's transaction). Consumers on
/// the ZeroMQ backend run on their nodes' own threads, hence the lock.
final class EffectLog: @unchecked Sendable {
    // @unchecked Sendable: `entries` is only touched under `lock`.
    private let lock = NSLock()
    private var entries: [String] = []
    func add(_ e: String) { lock.withLock { entries.append(e) } }
    func counts() -> [String: Int] { lock.withLock { entries.reduce(into: [:]) { $0[$1, default: 0] += 1 } } }
}

@Suite struct TopicPatternTests {
    @Test(arguments: [
        ("order.*", "order.created", true), ("order.*", "order.created.v2", false), ("order.*", "inventory.reserved", false),
        ("#", "anything.at.all", true), ("order.#", "order", true), ("order.#", "order.a.b", true),
        ("*.created", "order.created", true), ("*.created", "created", false), ("order.created", "order.created", true),
        ("#.low-stock", "inventory.low-stock", true),
    ])
    func matches(pattern: String, topic: String, expected: Bool) {
        #expect(TopicPattern(pattern).matches(topic) == expected)
    }
}

@Suite struct StorageTests {
    @Test func inboxRecordsOncePerGroupAndIdempotencyKeepsTheFirstAnswer() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("erp-storage-\(UInt64.random(in: 0...UInt64.max)).sqlite").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let db = try ServiceDatabase(path: path, durability: .simulated(), migrations: [])
        let t = Timestamp.simulationEpoch
        let answers: [Bool] = try db.write { db in
            [try Inbox.insertIfAbsent(group: "g", eventId: "e1", eventType: "X", at: t, in: db),
             try Inbox.insertIfAbsent(group: "g", eventId: "e1", eventType: "X", at: t, in: db),
             try Inbox.insertIfAbsent(group: "h", eventId: "e1", eventType: "X", at: t, in: db),
             try IdempotencyStore.record("first", key: "k", at: t, in: db),
             try IdempotencyStore.record("second", key: "k", at: t, in: db)]
        }
        #expect(answers == [true, false, true, true, false])
        #expect(try db.read { try IdempotencyStore.lookup(String.self, key: "k", in: $0) } == "first")
        // A transaction that throws leaves nothing behind.
        struct Boom: Error {}
        #expect(throws: Boom.self) {
            try db.write { db in
                _ = try Inbox.insertIfAbsent(group: "g", eventId: "e2", eventType: "X", at: t, in: db)
                throw Boom()
            }
        }
        #expect(try db.write { try Inbox.insertIfAbsent(group: "g", eventId: "e2", eventType: "X", at: t, in: $0) })
    }
}

@Suite struct CorrelationScopeTests {
    /// A handler, and a task it spawns, see the call's correlation id; log lines get it as metadata.
    @Test func handlersRunInTheirCallsCorrelationScope() async throws {
        var table = HandlerTable()
        table.register(Echo.self) { request, _ in
            let seen = CorrelationScope.correlationId ?? "none"
            let inherited = await Task { CorrelationScope.correlationId ?? "none" }.value
            let metadata = CorrelationScope.metadataProvider.get()
            return "\(seen) \(inherited) \(metadata["correlation_id"].map { "\($0)" } ?? "none")"
        }
        let context = CallContext(metadata: CallMetadata(deadline: .simulationEpoch, correlationId: "corr-77"), caller: "c")
        let result = await table.handler(for: Echo.method)!(Echo(text: "x"), context)
        #expect(try result.get() as? String == "corr-77 corr-77 corr-77")
        #expect(CorrelationScope.correlationId == nil, "the scope must end with the call")
    }
}

/// A runtime that is `inner` but for `record`, which it hands to `watch` (with the task's
/// correlation scope as it is at that moment) before passing it on.
final class RecordWatchingRuntime: Runtime, @unchecked Sendable {
    let inner: any Runtime
    let watch: @Sendable (String) -> Void
    init(_ inner: any Runtime, watch: @escaping @Sendable (String) -> Void) {
        self.inner = inner
        self.watch = watch
    }
    var node: NodeName { inner.node }
    var clock: any ServiceClock { inner.clock }
    var random: any RandomSource { inner.random }
    var ids: IDGenerator { inner.ids }
    var transport: any Transport { inner.transport }
    var logger: Logger { inner.logger }
    func sleep(for duration: Duration) async { await inner.sleep(for: duration) }
    func spawn(_ label: String, _ body: @escaping @Sendable () async -> Void) { inner.spawn(label, body) }
    func openDatabase(_ name: String, migrations: [Migration]) throws -> ServiceDatabase {
        try inner.openDatabase(name, migrations: migrations)
    }
    func record(_ transition: @autoclosure () -> String) {
        let line = transition()
        watch(line)
        inner.record(line)
    }
}
