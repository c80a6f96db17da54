import ERPCore
import ERPStorage
import ERPTransport
import GRDB

/// vm-service: the vending machines' own service. A vend sells units straight from the machine's
/// shop stock, not through the order flow: vm-service → shop (`VendingMachineOperation`, the
/// seed's gRPC pair) → inventory (`SellStock`). Idempotent per vend id: the vend is recorded
/// pending before any call, every call carries the vend id (inventory sells once per id), and a
/// vend whose outcome is not known yet is driven on, after a restart too, until shop answers.
public final class VendingMachineService: RetailService, @unchecked Sendable {
    public static let name = ServiceName.vmService
    public static let database: DatabaseDeclaration? = DatabaseDeclaration("vm", migrations: migrations)
    public static let calls: [ServiceName] = [.shop]
    public static let requests: [any RPCRequest.Type] = [VendingMachineOperation.self]

    let runtime: any Runtime
    let settings: ServiceSettings
    let database: ServiceDatabase
    private let caller: ResilientCaller
    /// Machine id → its shop, from the fixtures' vending machines.
    private let machines: [String: String]
    /// The catalogue's products (the fixtures', as the order service prices from).
    private let products: Set<String>
    /// Vends this incarnation is driving (one driver per vend).
    private var drivers: Set<String> = []

    public init(context: ServiceContext) {
        runtime = context.runtime
        settings = context.settings
        database = context.database
        caller = ResilientCaller(runtime: runtime, caller: .vmService, settings: settings.resilience, metrics: settings.resilienceMetrics)
        var machines: [String: String] = [:]
        for device in settings.fixtures.devices where device.kind == .vendingMachine { machines[device.id] = device.shopId }
        self.machines = machines
        products = Set(settings.fixtures.products.map(\.id))
    }

    static let migrations: [Migration] = [
        ("vm-1", { db in
            try db.execute(sql: """
                CREATE TABLE vend (
                  vendId TEXT PRIMARY KEY, machineId TEXT NOT NULL, shopId TEXT NOT NULL, productId TEXT NOT NULL,
                  quantity INTEGER NOT NULL,
                  status TEXT NOT NULL, -- pending | dispensed | refused
                  reason TEXT, createdAt INTEGER NOT NULL, updatedAt INTEGER NOT NULL
                );
                CREATE INDEX vend_pending ON vend (status) WHERE status = 'pending';
                """)
        }),
    ]

    public func start() async throws {
        runtime.transport.register(Vend.self) { [self] request, context in try await vend(request, context) }
        runtime.transport.register(GetVend.self) { [self] request, _ in try view(request.vendId) }
        let pending = try database.read { db in
            try String.fetchAll(db, cached: "SELECT vendId FROM vend WHERE status = 'pending' ORDER BY vendId")
        }
        if !pending.isEmpty { runtime.record("vm recovering \(pending.count) vends") }
        for vendId in pending { runtime.spawn("vend") { [self] in await drive(vendId) } }
    }

    func vend(_ request: Vend, _ context: CallContext) async throws -> VendResult {
        if let problem = request.problem { throw RPCError.rejected(code: "bad_request", message: problem) }
        guard let shopId = machines[request.machineId] else {
            throw RPCError.rejected(code: "unknown_machine", message: "no vending machine \(request.machineId)")
        }
        // A product nobody sells is the client's mistake, refused as an order's is (a 400), not a
        // vend recorded and then refused by the shop (a 200 with status refused).
        guard products.contains(request.productId) else {
            throw RPCError.rejected(code: "unknown_product", message: "no product \(request.productId)")
        }
        let now = runtime.clock.now.millisecondsSinceEpoch
        let isNew: Bool = try storage {
            try database.write { db in
                if let row = try SQLRow.fetchOne(db, cached: "SELECT machineId, productId, quantity FROM vend WHERE vendId = ?", arguments: request.vendId) {
                    guard try row["machineId"] == request.machineId, try row["productId"] == request.productId, try row["quantity"] == request.quantity else {
                        throw RPCError.rejected(code: "vend_id_reused", message: "vend \(request.vendId) was another machine, product or quantity; use a new vendId")
                    }
                    return false
                }
                try db.execute(cached: """
                    INSERT INTO vend (vendId, machineId, shopId, productId, quantity, status, createdAt, updatedAt) VALUES (?, ?, ?, ?, ?, 'pending', ?, ?)
                    """, arguments: request.vendId, request.machineId, shopId, request.productId, request.quantity, now, now)
                return true
            }
        }
        runtime.record(isNew ? "vend \(request.vendId) accepted" : "vend \(request.vendId) requested again")
        await drive(request.vendId, until: context.deadline - settings.answerMargin)
        return try view(request.vendId)
    }

    func view(_ vendId: String) throws -> VendResult {
        try storage {
            try database.read { db in
                guard let row = try SQLRow.fetchOne(db, cached: "SELECT * FROM vend WHERE vendId = ?", arguments: vendId) else {
                    throw RPCError.rejected(code: "not_found", message: "no vend \(vendId)")
                }
                return VendResult(vendId: vendId, machineId: try row["machineId"], shopId: try row["shopId"], productId: try row["productId"],
                                  quantity: try row["quantity"], status: VendResult.Status(rawValue: try row["status"]) ?? .pending, reason: try row["reason"])
            }
        }
    }

    /// Asks shop to dispense until it answers and the answer is recorded; each answer is final.
    /// With `until`, gives up the wait at that time and leaves a driver of its own to go on (the
    /// caller gets "pending"). A vend whose answer cannot be recorded (its disk failing) or whose
    /// row cannot be read is tried again after a backoff, never left pending with no driver:
    /// shop answers a repeated call with the same outcome (inventory sells once per vend id).
    private func drive(_ vendId: String, until deadline: Timestamp? = nil) async {
        guard !drivers.contains(vendId) else { return }
        drivers.insert(vendId)
        defer { drivers.remove(vendId) }
        var attempt = 0
        while true {
            let vend: VendResult
            do { vend = try view(vendId) } catch {
                // No such vend: nothing to drive. Unreadable for now: again after a backoff.
                if case .rejected = error as? RPCError { return }
                attempt += 1
                runtime.record("vend \(vendId) unreadable, try \(attempt) again later")
                await backOff(attempt, until: deadline)
                continue
            }
            guard vend.status == .pending else { return }
            if let deadline, runtime.clock.now >= deadline {
                // Hand over to a driver without a deadline once this one returns.
                runtime.spawn("vend") { [self] in await drive(vendId) }
                return
            }
            attempt += 1
            let operation = VendingMachineOperation(operationId: vendId, machineId: vend.machineId, operation: .dispense,
                                                    productId: vend.productId, quantity: vend.quantity)
            var timeout = Duration.seconds(1)
            if let deadline { timeout = min(timeout, deadline - runtime.clock.now) }
            let answer: (status: VendResult.Status, reason: String?)
            do throws(RPCError) {
                let result = try await caller.call(operation, metadata: runtime.metadata(timeout: timeout, idempotencyKey: "vend:" + vendId))
                answer = (result.accepted ? .dispensed : .refused, result.reason)
            } catch {
                switch error {
                case .rejected(let code, _):
                    answer = (.refused, code)
                case .unauthenticated:
                    answer = (.refused, "unauthenticated")
                default:
                    runtime.record("vend \(vendId) try \(attempt) \(error.kind)")
                    await backOff(attempt, until: deadline)
                    continue
                }
            }
            if finish(vendId, status: answer.status, reason: answer.reason) { return }
            await backOff(attempt, until: deadline)
        }
    }

    /// Waits before the next try; with a deadline (a client waiting for its answer), never past
    /// it: a backoff of up to 2 s slept through the gateway's 2 s, and a vend that should have
    /// been answered `pending` was answered 504 (an on-call trial: 16 vends, 13 of them dispensed).
    private func backOff(_ attempt: Int, until deadline: Timestamp? = nil) async {
        var wait = runtime.random.fullJitterBackoff(attempt: attempt, initial: settings.sagaBackoffInitial, max: settings.sagaBackoffMax)
        if let deadline { wait = min(wait, deadline - runtime.clock.now) }
        guard wait > .zero else { return }
        await runtime.sleep(for: wait)
    }

    /// Records a vend's final answer; false when it could not (the driver asks again later).
    private func finish(_ vendId: String, status: VendResult.Status, reason: String?) -> Bool {
        let now = runtime.clock.now.millisecondsSinceEpoch
        do {
            try database.write { db in
                try db.execute(cached: "UPDATE vend SET status = ?, reason = ?, updatedAt = ? WHERE vendId = ? AND status = 'pending'",
                               arguments: status.rawValue, reason, now, vendId)
            }
            runtime.record("vend \(vendId) \(status.rawValue)\(reason.map { " (\($0))" } ?? "")")
            return true
        } catch {
            runtime.record("vend \(vendId) \(status.rawValue) not recorded, asking again later")
            runtime.logger.error("vend \(vendId): cannot record \(status.rawValue): \(error)")
            return false
        }
    }
}
