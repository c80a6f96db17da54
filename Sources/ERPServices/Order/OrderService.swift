import ERPCore
import ERPStorage
import ERPTransport
import GRDB

/// Orders, and the saga that makes each one happen (the seed's Patterns 1 and 3):
///
///     reserve stock ──ok──▶ process payment ──success──▶ confirm (OrderCreated, OrderConfirmed)
///          │                      │ failed                      
///          │ out of stock         ▼                             
///          ▼               release stock ──▶ cancel (OrderCancelled)
///       cancel                    ▲
///                                 │ outcome unknown too long
///                     refund / void the charge
///
/// The saga's step is persisted with every transition, so a restarted order service finds each
/// unfinished saga and drives it on: every step is idempotent per order at its callee.
public final class OrderService: RetailService, @unchecked Sendable {
    public static let name = ServiceName.order
    public static let database: DatabaseDeclaration? = DatabaseDeclaration("order", migrations: migrations)
    public static let publishes: [any EventPayload.Type] = [OrderCreated.self, OrderConfirmed.self, OrderCancelled.self]
    public static let calls: [ServiceName] = [.inventory, .payment, .campaign]
    public static let requests: [any RPCRequest.Type] = [QuotePrices.self, ReserveStock.self, ReleaseStock.self, ProcessPayment.self, RefundPayment.self]
    /// The payment events (the seed's "Payment processed → Order service"): each order's payment
    /// record, what the order service knows of its money without asking payment.
    public static let subscriptions = [Subscription(group: "order", patterns: [
        TopicPattern(PaymentProcessed.topic), TopicPattern(PaymentFailed.topic), TopicPattern(RefundProcessed.topic),
    ])]

    let context: ServiceContext
    let runtime: any Runtime
    let settings: ServiceSettings
    let database: ServiceDatabase
    let relay: OutboxRelay
    /// Orders whose saga this incarnation is driving (one driver per order).
    private var drivers: Set<String> = []
    /// Tasks waiting for a saga to finish, per order, each with a ticket so a timeout can take its
    /// own waiter out.
    private var activeSagas: [String: [(ticket: UInt64, continuation: UnsafeContinuation<Void, Never>)]] = [:]
    private var waiterTickets: UInt64 = 0
    /// When each waiter stops waiting, earliest first: one sweeper task serves them all.
    private var waitDeadlines = DeadlineQueue()
    /// When the sweeper running now next wakes (nil: none runs), and its generation: a sweeper
    /// superseded by one that must wake earlier ends when it wakes.
    private var sweeperWakes: Timestamp?
    private var sweeperGeneration: UInt64 = 0
    private let prices: [String: Money]
    /// The shops that exist: an order for any other is refused, not cancelled as out of stock.
    private let shops: Set<String>
    private let caller: ResilientCaller

    /// What a restart records (trace line, log line) about the unfinished sagas it found.
    static func recoveryRecord(_ count: Int) -> String { "order recovering \(count) sagas" }

    /// The saga count of a trace or log line holding a `recoveryRecord`, or nil: how a runner
    /// counts what restarts recovered.
    public static func recoveredSagaCount(in line: Substring) -> Int? {
        var text = line
        return text.withUTF8 { recoveredSagaCount(inUTF8: $0) }
    }

    public static func recoveredSagaCount(in line: String) -> Int? {
        var text = line
        return text.withUTF8 { recoveredSagaCount(inUTF8: $0) }
    }

    /// The same for a line's UTF-8 bytes (how the simulator's trace shows its lines).
    public static func recoveredSagaCount(inUTF8 bytes: UnsafeBufferPointer<UInt8>) -> Int? {
        // Every simulated trace line passes here: look for the words with a byte search before
        // making a `String` of anything (Foundation's `contains`, and then a generic search, each
        // cost several per cent of a run).
        let needle: StaticString = "order recovering "
        let n = needle.utf8CodeUnitCount, first = needle.utf8Start[0]
        guard bytes.count >= n else { return nil }
        var found = false
        for i in 0...(bytes.count - n) where bytes[i] == first {
            var j = 1
            while j < n && bytes[i + j] == needle.utf8Start[j] { j += 1 }
            if j == n { found = true; break }
        }
        guard found else { return nil }
        let words = String(decoding: bytes, as: UTF8.self).split(separator: " ")
        for i in words.indices.dropFirst().dropLast() where words[i] == "recovering" && words[i - 1] == "order" {
            if let count = Int(words[i + 1]) { return count }
        }
        return nil
    }

    public init(context: ServiceContext) {
        self.context = context
        runtime = context.runtime
        settings = context.settings
        database = context.database
        relay = context.relay!
        var prices: [String: Money] = [:]
        for product in settings.fixtures.products { prices[product.id] = product.price }
        self.prices = prices
        self.shops = Set(settings.fixtures.shops.map(\.id))
        caller = ResilientCaller(runtime: runtime, caller: .order, settings: settings.resilience, metrics: settings.resilienceMetrics)
    }

    static let migrations: [Migration] = [
        ("order-1", { db in
            try db.execute(sql: """
                CREATE TABLE orders (
                  orderId TEXT PRIMARY KEY, userId TEXT NOT NULL, shopId TEXT NOT NULL,
                  items TEXT NOT NULL, totalMinor INTEGER NOT NULL, currency TEXT NOT NULL,
                  status TEXT NOT NULL, reason TEXT, correlationId TEXT NOT NULL,
                  createdAt INTEGER NOT NULL, updatedAt INTEGER NOT NULL
                );
                CREATE TABLE order_request (requestKey TEXT PRIMARY KEY, orderId TEXT NOT NULL);
                CREATE TABLE saga (
                  orderId TEXT PRIMARY KEY,
                  step TEXT NOT NULL, -- reserve | pay | refund | release | done
                  reason TEXT, updatedAt INTEGER NOT NULL
                );
                """)
        }),
        ("order-2", { db in
            // The payment record, from payment's events. A refund names the payment, not the
            // order: it finds its order through the payment's row, whichever event came first.
            try db.execute(sql: """
                CREATE TABLE payment_event (
                  eventId TEXT PRIMARY KEY,
                  kind TEXT NOT NULL, -- processed | failed | refunded
                  paymentId TEXT NOT NULL, orderId TEXT, amountMinor INTEGER NOT NULL, currency TEXT NOT NULL,
                  reason TEXT, at INTEGER NOT NULL
                );
                CREATE INDEX payment_event_payment ON payment_event (paymentId);
                """)
        }),
        ("order-3", { db in
            // How the order was priced: list (no campaign in force), campaign (some line at a
            // campaign price), fallback (campaign could not be asked: list prices).
            try db.execute(sql: "ALTER TABLE orders ADD COLUMN pricing TEXT NOT NULL DEFAULT 'list'")
        }),
    ]

    public func start() async throws {
        relay.start()
        let consumer = context.consumer(group: "order")
        consumer.on(PaymentProcessed.self) { event, envelope, db in
            try Self.recordPayment("processed", paymentId: event.paymentId, orderId: event.orderId, amount: event.amount, reason: nil,
                                   envelope: envelope, in: db)
        }
        consumer.on(PaymentFailed.self) { event, envelope, db in
            try Self.recordPayment("failed", paymentId: event.paymentId, orderId: event.orderId, amount: .zero(), reason: event.reason,
                                   envelope: envelope, in: db)
        }
        consumer.on(RefundProcessed.self) { event, envelope, db in
            try Self.recordPayment("refunded", paymentId: event.paymentId, orderId: nil, amount: event.amount, reason: nil,
                                   envelope: envelope, in: db)
        }
        consumer.start()
        runtime.transport.register(CreateOrder.self) { [self] request, context in try await self.create(request, context) }
        runtime.transport.register(GetOrder.self) { [self] request, _ in try self.view(request.orderId) }
        // Recovery: drive on every saga the previous incarnation left unfinished.
        let unfinished = try database.read { db in
            try SQLRow.fetchAll(db, cached: """
                SELECT s.orderId AS orderId, o.correlationId AS correlationId
                FROM saga s JOIN orders o ON o.orderId = s.orderId WHERE s.step != ? ORDER BY s.orderId
                """, arguments: SagaStep.done.rawValue).map { (orderId: try $0["orderId"] as String, correlationId: try $0["correlationId"] as String) }
        }
        if !unfinished.isEmpty { runtime.record(Self.recoveryRecord(unfinished.count)) }
        for saga in unfinished {
            // The recovered saga logs under its order's correlation id, as the first one did.
            runtime.spawn("saga") { [self] in
                await CorrelationScope.$correlationId.withValue(saga.correlationId) { await self.drive(saga.orderId) }
            }
        }
    }

    private static func recordPayment(_ kind: String, paymentId: String, orderId: String?, amount: Money, reason: String?,
                                      envelope: EventEnvelope, in db: Database) throws {
        try db.execute(cached: """
            INSERT INTO payment_event (eventId, kind, paymentId, orderId, amountMinor, currency, reason, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT DO NOTHING
            """, arguments: envelope.eventId, kind, paymentId, orderId, amount.minorUnits, amount.currency, reason, envelope.timestamp)
    }

    // MARK: Handlers

    func create(_ request: CreateOrder, _ context: CallContext) async throws -> OrderView {
        // Every number here came from outside: bounded first, then priced with checked arithmetic,
        // so an absurd request is a refusal, never a trap that takes the service down.
        if let problem = OrderLine.problem(in: request.items) ?? PlaceOrder.idsProblem(userId: request.userId, shopId: request.shopId) {
            throw RPCError.rejected(code: "bad_request", message: problem)
        }
        if let key = context.idempotencyKey, let problem = CallMetadata.idempotencyKeyProblem(key) {
            throw RPCError.rejected(code: "bad_idempotency_key", message: problem)
        }
        guard shops.contains(request.shopId) else { throw RPCError.rejected(code: "unknown_shop", message: "no shop \(request.shopId)") }
        for line in request.items where prices[line.productId] == nil {
            throw RPCError.rejected(code: "unknown_product", message: "no product \(line.productId)")
        }
        // A repeated request is answered from what the first one stored: no second price quote.
        let repeated = try context.idempotencyKey.flatMap { key in
            try storage { try database.read { try String.fetchOne($0, cached: "SELECT orderId FROM order_request WHERE requestKey = ?", arguments: key) } }
        }
        let (discounts, pricing) = repeated == nil ? await campaignPrices(request.items, context) : ([:], "list")
        var items: [OrderItem] = []
        var total: Money?
        for line in request.items {
            let list = prices[line.productId]!
            let discount = discounts[line.productId]
            let item = OrderItem(productId: line.productId, quantity: line.quantity,
                                 unitPrice: discount.map { list.discounted(percentOff: $0.percentOff) } ?? list, campaignId: discount?.campaignId)
            do throws(MoneyError) {
                let lineTotal = try item.lineTotal
                total = try total?.adding(lineTotal) ?? lineTotal
            } catch {
                throw RPCError.rejected(code: "bad_request", message: "the order's total cannot be computed: \(error)")
            }
            items.append(item)
        }
        guard let total else { preconditionFailure("an order with lines has a total") }
        let now = runtime.clock.now.millisecondsSinceEpoch
        let itemsJSON = try JSONCoding.encodeString(items)
        let (orderId, isNew): (String, Bool) = try storage {
            try database.write { db in
                if let key = context.idempotencyKey,
                   let existing = try String.fetchOne(db, cached: "SELECT orderId FROM order_request WHERE requestKey = ?", arguments: key) {
                    // A key names one request: the same key with another body is a client bug
                    // (the IETF idempotency-key draft answers 422), never the first order again.
                    if let row = try SQLRow.fetchOne(db, cached: "SELECT userId, shopId, items FROM orders WHERE orderId = ?", arguments: existing) {
                        let stored = try JSONCoding.decode([OrderItem].self, from: row["items"] as String)
                        let same = try row["userId"] == request.userId && row["shopId"] == request.shopId
                            && stored.map { OrderLine(productId: $0.productId, quantity: $0.quantity) } == request.items
                        if !same {
                            throw RPCError.rejected(code: "idempotency_key_reused",
                                                    message: "Idempotency-Key '\(key)' was first used for another request (order \(existing)); use a new key for a new order")
                        }
                    }
                    return (existing, false)
                }
                let orderId = runtime.ids.next("order")
                try db.execute(cached: """
                    INSERT INTO orders (orderId, userId, shopId, items, totalMinor, currency, status, correlationId, createdAt, updatedAt, pricing)
                    VALUES (?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?, ?)
                    """, arguments: orderId, request.userId, request.shopId, itemsJSON, total.minorUnits, total.currency,
                                    context.correlationId, now, now, pricing)
                try db.execute(cached: "INSERT INTO saga (orderId, step, updatedAt) VALUES (?, ?, ?)", arguments: orderId, SagaStep.reserve.rawValue, now)
                if let key = context.idempotencyKey {
                    try db.execute(cached: "INSERT INTO order_request (requestKey, orderId) VALUES (?, ?)", arguments: key, orderId)
                }
                return (orderId, true)
            }
        }
        runtime.record(isNew ? "order \(orderId) accepted" : "order \(orderId) requested again")
        // A new order's saga starts from what was just committed: its driver need not read it back.
        let created = isNew ? OrderView(orderId: orderId, userId: request.userId, shopId: request.shopId, items: items,
                                        totalAmount: total, status: .pending, reason: nil, pricing: pricing) : nil
        if !drivers.contains(orderId) {
            let start = created.map { SagaState(step: .reserve, reason: nil, order: $0, correlationId: context.correlationId) }
            runtime.spawn("saga") { [self] in await self.drive(orderId, from: start) }
        }
        // Answer before the caller's deadline even if the saga is still going (as HTTP's 202):
        // a caller that times out learns nothing, and its breaker would count us as failing.
        await waitForSaga(orderId, until: context.deadline - settings.answerMargin)
        guard var answer = created else { return try view(orderId) }
        // Only the status and the reason can have changed since the order was committed.
        let row = try storage {
            try database.read { db in try SQLRow.fetchOne(db, cached: "SELECT status, reason FROM orders WHERE orderId = ?", arguments: orderId) }
        }
        guard let row else { throw RPCError.rejected(code: "not_found", message: "no order \(orderId)") }
        answer.status = OrderStatus(rawValue: try row[0]) ?? .pending
        answer.reason = try row[1]
        return answer
    }

    /// The campaign in force per product, and how the order is priced. Campaign is asked through
    /// its call policy with a short deadline; when it cannot answer, every line is at its list
    /// price ("fallback"): an order never fails for want of a campaign.
    private func campaignPrices(_ lines: [OrderLine], _ context: CallContext) async -> ([String: PriceQuote.Discount], String) {
        var productIds: [String] = []
        for line in lines where !productIds.contains(line.productId) { productIds.append(line.productId) }
        do {
            let quote = try await caller.call(QuotePrices(productIds: productIds),
                                              metadata: runtime.metadata(timeout: settings.campaignQuoteTimeout, context: context))
            var discounts: [String: PriceQuote.Discount] = [:]
            for discount in quote.discounts where (1...100).contains(discount.percentOff) { discounts[discount.productId] = discount }
            return (discounts, discounts.isEmpty ? "list" : "campaign")
        } catch {
            runtime.record("order pricing at list prices: campaign \(error.kind)")
            return ([:], "fallback")
        }
    }

    func view(_ orderId: String) throws -> OrderView {
        try storage {
            try database.read { db in
                guard let row = try SQLRow.fetchOne(db, cached: Self.selectView, arguments: orderId) else {
                    throw RPCError.rejected(code: "not_found", message: "no order \(orderId)")
                }
                return try Self.view(row)
            }
        }
    }

    /// An order's view and its correlation id, columns by position for `view(_:)` (a column
    /// found by name is looked up case-insensitively, a lowercased copy of the name each time:
    /// the client's polling reads an order several times).
    static let selectView = """
        SELECT orderId, userId, shopId, items, totalMinor, currency, status, reason, pricing, correlationId
        FROM orders WHERE orderId = ?
        """

    static func view(_ row: SQLRow) throws -> OrderView {
        let itemsText: String = try row[3]
        return OrderView(orderId: try row[0], userId: try row[1], shopId: try row[2],
                         items: try JSONCoding.decode([OrderItem].self, from: itemsText),
                         totalAmount: Money(minorUnits: try row[4], currency: try row[5]),
                         status: OrderStatus(rawValue: try row[6]) ?? .pending, reason: try row[7], pricing: try row[8])
    }

    // MARK: The saga

    private func waitForSaga(_ orderId: String, until deadline: Timestamp) async {
        do {
            let done = try database.read { db in
                try String.fetchOne(db, cached: "SELECT step FROM saga WHERE orderId = ?", arguments: orderId) == SagaStep.done.rawValue
            }
            if done { return }
        } catch {
            // Unreadable now: wait as if unfinished; the driver's completion or the deadline ends the wait.
            runtime.logger.error("saga \(orderId): cannot read its step: \(error)")
        }
        guard deadline > runtime.clock.now else { return }
        waiterTickets &+= 1
        let ticket = waiterTickets
        await withUnsafeContinuation { (c: UnsafeContinuation<Void, Never>) in
            activeSagas[orderId, default: []].append((ticket, c))
            // Deadlines of waiters already answered (their saga ended) go first, unslept on.
            waitDeadlines.removeLeading { !isWaiting(orderId: $0.orderId, ticket: $0.ticket) }
            waitDeadlines.insert(.init(deadline: deadline, orderId: orderId, ticket: ticket))
            if sweeperWakes.map({ deadline < $0 }) ?? true { startSweeper() }
        }
    }

    private func isWaiting(orderId: String, ticket: UInt64) -> Bool {
        activeSagas[orderId]?.contains { $0.ticket == ticket } ?? false
    }

    /// Takes waiter `ticket` of `orderId` out, if it still waits.
    private func takeWaiter(orderId: String, ticket: UInt64) -> UnsafeContinuation<Void, Never>? {
        guard let i = activeSagas[orderId]?.firstIndex(where: { $0.ticket == ticket }) else { return nil }
        let waiter = activeSagas[orderId]!.remove(at: i)
        if activeSagas[orderId]!.isEmpty { activeSagas[orderId] = nil }
        return waiter.continuation
    }

    /// Answers each waiter still waiting at its deadline. One task for all the waiters (it used to be
    /// a task per request, sleeping out the whole deadline though the saga ended in milliseconds:
    /// thousands of them asleep at a few hundred orders a second, each waking once for nothing).
    /// It sleeps until the first deadline of a waiter still waiting, and ends when none is left.
    private func startSweeper() {
        sweeperGeneration &+= 1
        let generation = sweeperGeneration
        sweeperWakes = waitDeadlines.first?.deadline
        runtime.spawn("saga-wait-timeouts") { [self] in
            while generation == sweeperGeneration {
                let now = runtime.clock.now
                while let due = waitDeadlines.first, due.deadline <= now {
                    waitDeadlines.removeFirst()
                    takeWaiter(orderId: due.orderId, ticket: due.ticket)?.resume()
                }
                waitDeadlines.removeLeading { !isWaiting(orderId: $0.orderId, ticket: $0.ticket) }
                guard let next = waitDeadlines.first else {
                    sweeperWakes = nil
                    return
                }
                sweeperWakes = next.deadline
                await runtime.sleep(for: next.deadline - now)
            }
        }
    }

    struct SagaState {
        /// Nil for a step this build does not know (a database from elsewhere): not driven.
        var step: SagaStep?
        var reason: String?
        var order: OrderView
        var correlationId: String
    }

    private func load(_ orderId: String) throws -> SagaState? {
        try database.read { db in
            guard let saga = try SQLRow.fetchOne(db, cached: "SELECT step, reason FROM saga WHERE orderId = ?", arguments: orderId),
                  let order = try SQLRow.fetchOne(db, cached: Self.selectView, arguments: orderId) else { return nil }
            return try SagaState(step: SagaStep(rawValue: saga[0]), reason: saga[1], order: Self.view(order), correlationId: order[9])
        }
    }

    /// Drives one order's saga to its end: makes each step's call and persists what `OrderSaga`
    /// decides. One driver per order per incarnation.
    ///
    /// `start`: the saga's state as its creator committed it (nil: read from the database).
    func drive(_ orderId: String, from start: SagaState? = nil) async {
        guard !drivers.contains(orderId) else { return }
        drivers.insert(orderId)
        defer {
            drivers.remove(orderId)
            let waiters = activeSagas.removeValue(forKey: orderId) ?? []
            for waiter in waiters { waiter.continuation.resume() }
        }
        // The saga's state as this driver last committed it: only the driver writes an order's
        // saga once it exists, so it is read from the database once, and again only after a
        // write that failed (it held two queries and the order's items decoded, per step).
        var known = start
        // Whether the step in the database is certainly untried (`OrderSaga.taken`).
        var untried = start != nil
        // Failed writes in a row (a full or failing disk): the next pass waits, growing, rather
        // than calling the step again at once (the same trial's log got 665,838 lines in 2.5 min).
        var persistFailures = 0
        func backOff() async {
            persistFailures += 1
            await runtime.sleep(for: runtime.random.fullJitterBackoff(attempt: persistFailures, initial: settings.sagaBackoffInitial,
                                                                       max: settings.sagaBackoffMax))
        }
        while true {
            let state: SagaState
            if let known {
                state = known
            } else {
                do {
                    guard let loaded = try load(orderId) else { return }
                    state = loaded
                } catch {
                    runtime.logger.error("saga \(orderId): cannot read state: \(error)")
                    await runtime.sleep(for: settings.sagaBackoffMax)
                    continue
                }
            }
            guard let step = state.step else {
                runtime.logger.critical("saga \(orderId): unknown step in the database; not driven")
                return
            }
            guard step != .done else { return }
            let decision: SagaDecision
            if let early = OrderSaga.before(step, reason: state.reason, defects: settings.defects) {
                decision = early
                if OrderSaga.before(step, reason: state.reason, defects: PlantedDefects()) == nil {
                    runtime.record(PlantedDefect.skipStockRelease.acted("order \(orderId) cancelled without releasing its stock"))
                }
            } else {
                let result = OrderSaga.taken(await call(step, state), untried: untried)
                untried = false
                decision = OrderSaga.decide(step, result, reason: state.reason, defects: settings.defects)
                if settings.defects.confirmDeclinedPayments, step == .pay, case .answered(.declined) = result {
                    runtime.record(PlantedDefect.confirmDeclinedPayments.acted("order \(orderId) confirmed though its payment was declined"))
                }
            }
            switch decision {
            case .advance(let next, let reason):
                known = nil
                if advance(orderId, to: next, reason: reason) {
                    known = state
                    known!.step = next
                    known!.reason = reason ?? state.reason  // as the UPDATE's COALESCE keeps it
                    untried = true
                    persistFailures = 0
                } else {
                    await backOff()
                }
            case .finish(let status, let reason):
                known = nil
                if finish(state, status: status, reason: reason) { return }
                await backOff()
            case .halt(let why):
                runtime.logger.critical("saga \(orderId): \(why)")
                return
            }
        }
    }

    /// Makes the call of `step` for the order in `state`.
    private func call(_ step: SagaStep, _ state: SagaState) async -> SagaStepResult {
        let order = state.order
        switch step {
        case .reserve:
            let lines = order.items.map { OrderLine(productId: $0.productId, quantity: $0.quantity) }
            return await attempt(ReserveStock(orderId: order.orderId, shopId: order.shopId, items: lines), state: state,
                                 attemptCountMax: settings.sagaStepAttemptCountMax, failFast: true) {
                $0.status == .reserved ? .reserved : .notReserved
            }
        case .pay:
            // The planted defect charges list prices, whatever the order was priced at.
            let amount = settings.defects.chargeListPrice ? listTotal(order) : order.totalAmount
            if amount != order.totalAmount {
                runtime.record(PlantedDefect.chargeListPrice.acted("order \(order.orderId) charged \(amount), priced at \(order.totalAmount)"))
            }
            return await attempt(ProcessPayment(orderId: order.orderId, userId: order.userId, amount: amount), state: state,
                                 attemptCountMax: settings.sagaStepAttemptCountMax, failFast: true) {
                $0.status == .success ? .paid : .declined(reason: $0.reason)
            }
        case .refund:
            return await attempt(RefundPayment(orderId: order.orderId), state: state, attemptCountMax: 10_000) { _ in .completed }
        case .release:
            return await attempt(ReleaseStock(orderId: order.orderId), state: state, attemptCountMax: 10_000) { _ in .completed }
        case .done:
            preconditionFailure("a finished saga makes no call")
        }
    }

    private func listTotal(_ order: OrderView) -> Money {
        var total = Money(minorUnits: 0, currency: order.totalAmount.currency)
        for item in order.items {
            let price = prices[item.productId] ?? item.unitPrice
            total = (try? total.adding(price.multiplied(by: item.quantity))) ?? total
        }
        return total
    }

    /// Calls a saga step until it gets an answer: each try goes through the callee's call policy
    /// (breaker, quick retries, per-attempt timeout); while the outcome stays unknown (timeout,
    /// unreachable, overloaded, circuit open) the saga tries again after a capped jittered backoff.
    /// Safe because every step is idempotent per order at its callee. With `failFast`, a step the
    /// breaker refused before any of its requests left returns `.notSent` at once.
    private func attempt<R: RPCRequest>(_ request: R, state: SagaState, attemptCountMax: Int, failFast: Bool = false,
                                        answer: (R.Response) -> SagaAnswer) async -> SagaStepResult {
        let key = "\(R.method):\(state.order.orderId)"
        let sent = AttemptCounter()
        var last: RPCError?
        for attempt in 0..<attemptCountMax {
            if attempt > 0 {
                await runtime.sleep(for: runtime.random.fullJitterBackoff(attempt: attempt, initial: settings.sagaBackoffInitial, max: settings.sagaBackoffMax))
            }
            do throws(RPCError) {
                let metadata = runtime.metadata(timeout: settings.sagaStepTimeout, idempotencyKey: key, correlationId: state.correlationId)
                return .answered(answer(try await caller.call(request, metadata: metadata, attempts: sent)))
            } catch {
                switch error {
                case .rejected, .unauthenticated: return .refused(error)
                case .deadlineExceeded, .unavailable, .overloaded:
                    if failFast && sent.count == 0 { return .notSent }
                    last = error
                    runtime.record("saga \(state.order.orderId) \(R.method) try \(attempt + 1) \(error.kind)")
                }
            }
        }
        return .unknown(last)
    }

    /// Persists the saga's next step; false when it could not.
    private func advance(_ orderId: String, to step: SagaStep, reason: String? = nil) -> Bool {
        let now = runtime.clock.now.millisecondsSinceEpoch
        do {
            try database.write { db in
                try db.execute(cached: "UPDATE saga SET step = ?, reason = COALESCE(?, reason), updatedAt = ? WHERE orderId = ?",
                               arguments: step.rawValue, reason, now, orderId)
            }
            runtime.record("saga \(orderId) -> \(step.rawValue)\(reason.map { " (\($0))" } ?? "")")
            return true
        } catch {
            runtime.logger.error("saga \(orderId): cannot persist step \(step.rawValue): \(error)")
            return false
        }
    }

    /// The terminal transition: order status, saga done and the events, in one transaction.
    /// False when it could not be committed.
    private func finish(_ state: SagaState, status: OrderStatus, reason: String?) -> Bool {
        let order = state.order
        let now = runtime.clock.now.millisecondsSinceEpoch
        do {
            try database.write { db in
                try db.execute(cached: "UPDATE orders SET status = ?, reason = ?, updatedAt = ? WHERE orderId = ?",
                               arguments: status.rawValue, reason, now, order.orderId)
                try db.execute(cached: "UPDATE saga SET step = ?, reason = ?, updatedAt = ? WHERE orderId = ?",
                               arguments: SagaStep.done.rawValue, reason, now, order.orderId)
                if status == .confirmed {
                    try self.context.publish(OrderCreated(orderId: order.orderId, shopId: order.shopId, userId: order.userId,
                                                         items: order.items, totalAmount: order.totalAmount), correlationId: state.correlationId, in: db)
                    try self.context.publish(OrderConfirmed(orderId: order.orderId, shopId: order.shopId, userId: order.userId), correlationId: state.correlationId, in: db)
                } else {
                    try self.context.publish(OrderCancelled(orderId: order.orderId, reason: reason ?? "cancelled"), correlationId: state.correlationId, in: db)
                }
            }
            relay.notify()
            runtime.record("order \(order.orderId) \(status.rawValue)\(reason.map { " (\($0))" } ?? "")")
            return true
        } catch {
            runtime.logger.error("saga \(order.orderId): cannot finish: \(error)")
            return false
        }
    }
}

/// Deadlines in time order, earliest first. They arrive nearly in order (each is a request's
/// arrival plus its timeout), so an insertion is an append but for the rare one that sorts
/// earlier, and the earliest leave from the front without moving the rest.
struct DeadlineQueue {
    struct Entry {
        var deadline: Timestamp
        var orderId: String
        var ticket: UInt64
    }

    private var entries: [Entry] = []
    private var head = 0

    var first: Entry? { head < entries.count ? entries[head] : nil }
    var count: Int { entries.count - head }

    /// After entries with the same deadline (first in, first out).
    mutating func insert(_ entry: Entry) {
        if entries.last.map({ $0.deadline <= entry.deadline }) ?? true {
            entries.append(entry)
            return
        }
        var low = head, high = entries.count
        while low < high {
            let middle = (low + high) / 2
            if entries[middle].deadline <= entry.deadline { low = middle + 1 } else { high = middle }
        }
        entries.insert(entry, at: low)
    }

    mutating func removeFirst() {
        head += 1
        if head == entries.count {
            entries.removeAll(keepingCapacity: true)
            head = 0
        } else if head >= 1024, head * 2 >= entries.count {
            entries.removeFirst(head)
            head = 0
        }
    }

    /// Removes entries from the front while `stale` says so.
    mutating func removeLeading(while stale: (Entry) -> Bool) {
        while let entry = first, stale(entry) { removeFirst() }
    }
}

