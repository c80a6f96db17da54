import ERPCore
import ERPResilience
import ERPStorage
import ERPTransport
import Logging

/// One simulated process: a service instance or a workload client. Its incarnation (`epoch`)
/// changes at every crash, so that nothing from a dead incarnation (a timer, a reply, a task
/// waiting on either) ever runs again.
public final class SimNode: @unchecked Sendable {
    public unowned let world: SimWorld
    public let index: Int
    public let name: NodeName
    public let service: ServiceName?
    let factory: (@Sendable (SimRuntime) throws -> any ERPService)?

    public internal(set) var alive = false
    public internal(set) var epoch = 0
    public internal(set) var paused = false
    public internal(set) var everStarted = false
    public internal(set) var startCount = 0
    public internal(set) var clockSkew: Duration = .zero
    var handlers = HandlerTable()
    var pending: [UInt64: PendingCall] = [:]
    var backlog: [SimWorld.TimerAction] = []
    var databases: [ServiceDatabase] = []
    /// The node's limit on requests, a token bucket per calling node (nil: none); each refusal is
    /// a `rate-limited` trace line. Twin of the ZeroMQ transport's `incomingLimit`. It lives as
    /// long as the node, crashes included.
    public var incomingLimit: RateLimiter?
    /// The disk under the node's files: its faults, its syncs' time.
    public let disk: SimulatedDisk
    /// The `synchronous` setting of the node's databases (production's unless a scenario weakens it).
    public var synchronous: SynchronousMode = .beforeSend
    public internal(set) var runtime: SimRuntime?
    public internal(set) var instance: (any ERPService)?
    /// This incarnation ends on its own (a failed sync, a failed start) when its job yields
    /// (`SimWorld.exitOnItsOwn`).
    var exiting = false
    /// When (virtual time) the node exited on its own, within the restart policy's window: what
    /// the supervisor's backoff counts.
    var exits: [Duration] = []

    init(world: SimWorld, index: Int, name: NodeName, service: ServiceName?,
         factory: (@Sendable (SimRuntime) throws -> any ERPService)?) {
        self.world = world
        self.index = index
        self.name = name
        self.service = service
        self.factory = factory
        self.disk = world.storage?.disk(forPrefix: name.rawValue + "-") ?? SimulatedDisk()
    }

    /// Under `.beforeSend`, before a message leaves: syncs the WAL of every database with commits
    /// not yet synced (the simulated disk counts the sync, a slow one keeps the disk busy and the
    /// message waits for it, sharing a batch with the others as production's sync thread does:
    /// `SimulatedDisk.syncBatch`). False when a sync failed: the message must not leave, as production
    /// sends nothing it cannot first make durable, and the node exits (`SimWorld.exitOnItsOwn`).
    func syncBeforeSending() -> Bool {
        var synced = true
        guard databases.contains(where: \.needsSync) else { return true }
        disk.syncBatch(now: world.elapsedNanoseconds) {
            for db in databases where db.needsSync {
                do { try db.syncLog() } catch { synced = false }
            }
        }
        return synced
    }

    /// Brings the node up as a new incarnation; builds and starts its service, if it has one.
    public func start() {
        precondition(!alive, "\(name) started twice")
        alive = true
        exiting = false
        everStarted = true
        startCount += 1
        let runtime = SimRuntime(node: self, epoch: epoch)
        self.runtime = runtime
        world.record("start \(name) incarnation \(epoch)")
        guard let factory else { return }
        do {
            let service = try factory(runtime)
            instance = service
            runtime.spawn("start") { [name, world] in
                do {
                    try await service.start()
                    world.record("started \(name)")
                } catch {
                    world.record("start failed \(name)", failure: error)
                    runtime.logger.critical("start failed: \(error)")
                    // As `erp serve` does: the process ends, and the supervisor starts it again.
                    world.exitOnItsOwn(self, status: 1, "start failed")
                }
            }
        } catch {
            world.record("build failed \(name)", failure: error)
            world.exitOnItsOwn(self, status: 1, "build failed")
        }
    }

    /// The process dies: tasks vanish (their continuations are never resumed), pending calls and
    /// queued deliveries are forgotten, database connections close with nothing uncommitted.
    /// `endOfRun`: the world is stopping, not a fault; the calls then in flight are not counted.
    func crash(endOfRun: Bool = false) {
        alive = false
        paused = false
        epoch += 1
        // The calls this process was waiting on are cut short with it: counted per method as
        // `caller_crashed`, for as long as they had lasted, so that a method's count is every call
        // the trace shows it make. They were in no count, and since the slowest calls are the ones
        // most likely in flight at a crash, a crash scenario's percentiles read low (a report
        // reader's trial: 607 createOrder calls in the trace, 568 in the summary). Order of
        // recording does not matter: a histogram's counts are a sum.
        if !endOfRun, let metrics = world.callMetrics {
            let now = world.elapsedNanoseconds
            for call in pending.values { metrics.record(call.method, outcome: "caller_crashed", latency: .nanoseconds(now - call.started)) }
        }
        pending.removeAll()
        // Messages that reached it while it was paused die with it: dropped, as the network's
        // totals count them (they were in no total: sent = delivered + dropped did not add up).
        world.countDropped(backlog.reduce(0) { if case .deliver = $1 { $0 + 1 } else { $0 } })
        backlog.removeAll()
        handlers.removeAll()
        for db in databases {
            do { try db.close() } catch { world.record("close failed \(world.placeless(db.path))", failure: error) }
        }
        databases.removeAll()
        instance = nil
        runtime = nil
    }
}

/// A call waiting for its answer, and the slot of its timeout timer (-1 once that has fired).
struct PendingCall {
    var continuation: UnsafeContinuation<any Sendable, any Error>
    var timeoutSlot: Int32
    /// What was called and when (world nanoseconds), for the count of calls cut by a crash.
    var method: String
    var started: Int64
}

/// Virtual time as one node sees it: the world's clock plus the node's skew.
/// Twin of the production `SystemClock`.
public struct SimClock: ServiceClock {
    unowned let node: SimNode
    public var now: Timestamp { node.world.now + node.clockSkew }
}

/// The runtime of one incarnation of a simulated node. Twin of the ZeroMQ backend's runtime.
public final class SimRuntime: Runtime, @unchecked Sendable {
    public let node: NodeName
    public let clock: any ServiceClock
    public let random: any RandomSource
    public let ids: IDGenerator
    public let transport: any Transport
    public let logger: Logger
    let simNode: SimNode
    let epoch: Int
    var world: SimWorld { simNode.world }

    init(node: SimNode, epoch: Int) {
        self.node = node.name
        self.simNode = node
        self.epoch = epoch
        self.clock = SimClock(node: node)
        let random = node.world.rootRandom.derived("node:\(node.name):\(epoch)")
        self.random = random
        self.ids = IDGenerator(random: random)
        self.transport = SimTransport(node: node, epoch: epoch)
        let world = node.world
        let name = node.name
        self.logger = Logger(label: node.name.rawValue) { label in
            SimLogHandler(label: label, emit: { [weak world] line in
                guard let world else { return }
                if world.logToStandardError {
                    FileHandleOutput.standardError("[\(SimTrace.format(world.elapsedNanoseconds))] \(name) \(line)")
                }
            })
        }
    }

    var isCurrent: Bool { simNode.alive && simNode.epoch == epoch }

    public func sleep(for duration: Duration) async {
        let world = self.world
        let index = simNode.index, epoch = self.epoch
        await withUnsafeContinuation { (c: UnsafeContinuation<Void, Never>) in
            world.push(world.elapsedNanoseconds + max(0, duration.nanoseconds), .wake(node: index, epoch: epoch, c))
        }
    }

    public func spawn(_ label: String, _ body: @escaping @Sendable () async -> Void) {
        guard isCurrent else { return }
        Task(executorPreference: world) { await body() }  // determinism-exempt: the simulator spawns on its own executor
    }

    public func openDatabase(_ name: String, migrations: [Migration]) throws -> ServiceDatabase {
        let path = world.storageDirectory + "/" + ServiceDatabase.fileName(node: node, database: name)
        // Disks that cannot fail (the simulated ones of a run without disk faults, or files on the
        // real disk, which model process crashes only) need no WAL and no syncs: a simulated
        // process dies between jobs and a transaction runs inside one (`Durability.Journal.memory`).
        // On files, WAL cost 1.68 ms of CPU an order against 1.44 at 100,253 orders, most of the
        // difference in the kernel (2026-12-08).
        let durability: Durability = world.modelsDiskFaults ? .simulated(simNode.synchronous)
            : Durability(synchronous: .off, exclusiveLock: true, journal: .memory)
        let db = try ServiceDatabase(path: path, durability: durability, migrations: migrations)
        simNode.databases.append(db)
        return db
    }

    /// A state transition, into the trace; with `--log` also a log line, as a service's
    /// transitions are logged over ZeroMQ (`ZeroMQRuntime.record`).
    public func record(_ transition: @autoclosure () -> String) {
        guard isCurrent else { return }
        let line = transition()
        if line.utf8.first == UInt8(ascii: "d"), let defect = DefectNote.defect(in: line) { world.countDefectActing(defect) }
        world.record(line)
        if world.logToStandardError { logger.info("\(line)") }
    }
}

/// RPC over the simulated network. Payloads travel as values (no encoding): the simulator tests
/// distributed behaviour, and the codec has its own tests. Twin of the ZeroMQ backend's transport.
final class SimTransport: Transport, @unchecked Sendable {
    unowned let simNode: SimNode
    let epoch: Int
    var node: NodeName { simNode.name }

    init(node: SimNode, epoch: Int) {
        self.simNode = node
        self.epoch = epoch
    }

    func call<R: RPCRequest>(_ request: R, to destination: NodeName?, metadata: CallMetadata) async throws -> R.Response {
        let world = simNode.world
        let target: Int
        if let destination {
            guard let t = world.index(of: destination) else { throw RPCError.unavailable("no node \(destination)") }
            target = t
        } else {
            guard let t = world.index(serving: R.service) else { throw RPCError.unavailable("no node serves \(R.service)") }
            target = t
        }
        guard simNode.alive, simNode.epoch == epoch else {
            // A dead incarnation cannot send; its task never gets an answer.
            return try await withUnsafeThrowingContinuation { (_: UnsafeContinuation<R.Response, any Error>) in }
        }
        let callId = world.nextCallId()
        let node = simNode
        let epoch = self.epoch
        let started = world.elapsedNanoseconds
        let value: any Sendable
        do {
            value = try await exchange(request, callId: callId, target: target, metadata: metadata, node: node, epoch: epoch)
            world.callMetrics?.record(R.method, outcome: "ok", latency: .nanoseconds(world.elapsedNanoseconds - started))
        } catch {
            world.callMetrics?.record(R.method, outcome: (error as? RPCError)?.kind ?? "error", latency: .nanoseconds(world.elapsedNanoseconds - started))
            throw error
        }
        guard let response = value as? R.Response else {
            throw RPCError.rejected(code: "bad_response", message: "expected \(R.Response.self)")
        }
        return response
    }

    private func exchange<R: RPCRequest>(_ request: R, callId: UInt64, target: Int, metadata: CallMetadata, node: SimNode,
                                         epoch: Int) async throws -> any Sendable {
        let world = simNode.world
        return try await withUnsafeThrowingContinuation { (c: UnsafeContinuation<any Sendable, any Error>) in
            // The deadline is in the caller's clock; the timer runs on the world's.
            let slot = world.push(max(world.elapsedNanoseconds, metadata.deadline.nanosecondsSinceEpoch - Timestamp.simulationEpoch.nanosecondsSinceEpoch - node.clockSkew.nanoseconds),
                                  .callTimeout(node: node.index, epoch: epoch, callId: callId))
            node.pending[callId] = PendingCall(continuation: c, timeoutSlot: slot, method: R.method, started: world.elapsedNanoseconds)
            let targetNode = world.nodes[target]
            world.send(.init(from: node.index, fromEpoch: epoch, to: target, toEpoch: targetNode.epoch, callId: callId,
                             body: .request(method: R.method, metadata: metadata, payload: request)))
        }
    }

    func register<R: RPCRequest>(_ type: R.Type, handler: @escaping @Sendable (R, CallContext) async throws -> R.Response) {
        guard simNode.alive, simNode.epoch == epoch else { return }
        simNode.handlers.register(type, handler: handler)
    }
}
