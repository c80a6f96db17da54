// ERPSimulation is the deterministic backend. One `SimWorld` owns every job of every simulated node
// on one executor, a virtual clock, a timer heap ordered by (time, insertion), a seeded random
// source with derived sub-seeds, and the network model.
//
// Faults it models: per-link latency with jitter, drop, duplicate, reorder; partitions (symmetric,
// one-way, isolating a node); node crash (its tasks vanish, only committed SQLite state survives),
// restart (the service starts again from its database), pause/resume, and clock skew per node.
//
// Why a task executor: every service task starts with `Task(executorPreference: world)`, so its
// child tasks, hops and resumed continuations all come back to this executor, and nothing else in
// the process is touched: tests can run beside it and several worlds can run side by side.
import Collections
import ERPCore
import ERPReports
import ERPStorage
import ERPTransport
import Foundation

/// Where a world's nodes keep their SQLite files.
public enum SimStorage: Sendable, Hashable {
    /// In memory (written out when the world stops): no file I/O, and the disk faults.
    /// `modelsPowerLoss`: each write keeps the bytes it overwrote until the next sync, which a
    /// power loss needs (a copy per write).
    case memory(modelsPowerLoss: Bool)
    /// In memory, for a run whose disks never fail: each database keeps its rollback journal in
    /// the connection's memory and never syncs (SQLite writes a commit's pages once, with no WAL
    /// frames, checksums or checkpoints). Process crashes keep their semantics exactly: a node
    /// dies between jobs, and a transaction runs inside one. Disk faults are refused.
    case memoryWithoutDiskFaults
    /// Ordinary files in the storage directory: a run whose databases outgrow memory (a million
    /// orders). No disk faults; each database keeps its rollback journal in the connection's
    /// memory, as `memoryWithoutDiskFaults` does.
    case files

    /// A short name for reports and benches: `memory-wal`, `memory-wal-power-loss`,
    /// `memory-journal`, `files`.
    public var name: String {
        switch self {
        case .memory(let modelsPowerLoss): modelsPowerLoss ? "memory-wal-power-loss" : "memory-wal"
        case .memoryWithoutDiskFaults: "memory-journal"
        case .files: "files"
        }
    }
}

public final class SimWorld: TaskExecutor, @unchecked Sendable {
    public let seed: UInt64
    /// Root of every random stream in the world; streams are derived by label.
    public let rootRandom: SeededRandomSource
    let networkRandom: SeededRandomSource
    let schedulerRandom: SeededRandomSource
    public var network = NetworkModel()
    public let trace: SimTrace
    /// Pick the next ready job at random (seeded) instead of in FIFO order, to explore interleavings.
    public var randomizeScheduling: Bool
    /// Where nodes keep their SQLite files.
    public let storageDirectory: String
    /// The storage directory's files, in memory while the world runs (`stopAll()` writes them
    /// out): no file I/O, and the disks' faults (power loss, failing writes, slow syncs). Nil when
    /// the world keeps its files on the real disk.
    public private(set) var storage: MemoryVolume?
    /// Whether the disks can fail (power loss, failing writes, slow syncs): the databases are
    /// then in WAL mode and synced as production's (`SimStorage.memory`).
    public let modelsDiskFaults: Bool
    /// Print service logs to standard error with virtual timestamps.
    public var logToStandardError = false
    /// Every RPC made in this world, by method and outcome, with its virtual round-trip latency
    /// (nil: not recorded, as in the throughput benchmark).
    public var callMetrics: RequestMetrics? = RequestMetrics.rpcCalls()
    /// Per RPC method, the time its handler takes on its own (besides the calls and sleeps it makes,
    /// which the world already times): a calibrated model of real services' work. Empty: none.
    public var serviceTimes: [String: LatencyDistribution] = [:]

    /// Virtual nanoseconds since the world began.
    public private(set) var elapsedNanoseconds: Int64 = 0
    public var now: Timestamp { Timestamp(nanosecondsSinceEpoch: Timestamp.simulationEpoch.nanosecondsSinceEpoch + elapsedNanoseconds) }
    public var elapsed: Duration { .nanoseconds(elapsedNanoseconds) }

    private var ready = Deque<UnownedJob>()
    private var timers = TimerQueue<TimerAction>()
    private var callSequence: UInt64 = 0
    private var powerLossCount = 0
    private var tornDown = false
    private var runningThread: pthread_t?
    var nodes: [SimNode] = []
    private var nodeIndex: [NodeName: Int] = [:]
    private var serviceNodes: [ServiceName: Int] = [:]
    public private(set) var stats = Stats()

    public struct Stats: Sendable, Hashable {
        public var messagesSent = 0
        public var messagesDelivered = 0
        public var messagesDropped = 0
        public var messagesDuplicated = 0
        public var jobsRun = 0
        public var timersFired = 0
    }

    /// `storage`: where the nodes' files live.
    public init(seed: UInt64, storageDirectory: String, trace: SimTrace, randomizeScheduling: Bool = true,
                storage: SimStorage = .memory(modelsPowerLoss: false)) {
        self.seed = seed
        self.rootRandom = SeededRandomSource(seed: seed)
        self.networkRandom = rootRandom.derived("network")
        self.schedulerRandom = rootRandom.derived("scheduler")
        self.trace = trace
        self.randomizeScheduling = randomizeScheduling
        self.storageDirectory = storageDirectory
        let tracksUnsynced: Bool? = switch storage {
        case .memory(let modelsPowerLoss): modelsPowerLoss
        case .memoryWithoutDiskFaults: false
        case .files: nil
        }
        modelsDiskFaults = if case .memory = storage { true } else { false }
        if let tracksUnsynced {
            // Weak: a connection nobody closed (a world dropped without `stopAll()`) closes, and
            // syncs, after the world is gone.
            self.storage = MemoryVolume(directory: storageDirectory, tracksUnsynced: tracksUnsynced,
                                        now: { [weak self] in self?.elapsedNanoseconds ?? 0 })
        }
    }

    deinit { storage?.close() }

    // MARK: Executor

    public func enqueue(_ job: consuming ExecutorJob) {
        if let runningThread, pthread_equal(runningThread, pthread_self()) == 0 {
            // A job from another thread would make the run depend on the OS scheduler.
            fatalError("SimWorld: a job was enqueued from outside the world's thread; some code escaped the runtime")
        }
        ready.append(UnownedJob(job))
    }

    // MARK: Running

    /// Runs ready jobs and fires timers in virtual-time order until `limit` (from the world's start)
    /// or until nothing is left to do. Returns the virtual time reached.
    @discardableResult
    public func run(until limit: Duration) -> Duration {
        precondition(!tornDown, "SimWorld: run(until:) after tearDown()")
        let limitNanoseconds = limit.nanoseconds
        let previous = runningThread
        runningThread = pthread_self()
        defer { runningThread = previous }
        let executor = asUnownedTaskExecutor()
        while true {
            while !ready.isEmpty {
                if randomizeScheduling && ready.count > 1 {
                    let i = Int(schedulerRandom.nextUInt64() % UInt64(ready.count))
                    ready.swapAt(ready.startIndex, ready.startIndex + i)
                }
                let job = ready.removeFirst()
                stats.jobsRun += 1
                job.runSynchronously(on: executor)
            }
            guard let nextTime = timers.minTime, nextTime <= limitNanoseconds else { break }
            let next = timers.popMin()!
            elapsedNanoseconds = next.time
            stats.timersFired += 1
            fire(next.action)
        }
        if elapsedNanoseconds < limitNanoseconds { elapsedNanoseconds = limitNanoseconds }
        return elapsed
    }

    /// Starts a task on the world that belongs to no node (a test body, a workload driver).
    public func spawn(_ body: @escaping @Sendable () async -> Void) {
        Task(executorPreference: self) { await body() }  // determinism-exempt: the simulator spawns on its own executor
    }

    /// Runs `action` at `delay` from now, in virtual time.
    public func schedule(after delay: Duration, _ action: @escaping @Sendable () -> Void) {
        push(elapsedNanoseconds + max(0, delay.nanoseconds), .run(action))
    }

    /// Runs `action` at an absolute virtual time since the world's start (now, if that has passed).
    public func schedule(at time: Duration, _ action: @escaping @Sendable () -> Void) {
        push(max(elapsedNanoseconds, time.nanoseconds), .run(action))
    }

    /// Suspends a world-level task (no node) for `duration`.
    public func sleep(for duration: Duration) async {
        await withUnsafeContinuation { (c: UnsafeContinuation<Void, Never>) in
            push(elapsedNanoseconds + max(0, duration.nanoseconds), .wake(node: -1, epoch: 0, c))
        }
    }

    public func record(_ line: @autoclosure () -> String) {
        trace.append(elapsedNanoseconds, line())
    }

    /// Records `what` failed and why, the storage directory's path in the error's words written
    /// `db`: a trace must not depend on where a run keeps its files (an error opening a
    /// database named `/tmp/a.partial/db/report-report.sqlite`, and the same run with another
    /// `--out` had another trace hash).
    public func record(_ what: String, failure error: any Error) {
        record(what + ": " + placeless("\(error)"))
    }

    /// `text` with the storage directory's path written `db`.
    public func placeless(_ text: String) -> String {
        storageDirectory.isEmpty ? text : text.replacingOccurrences(of: storageDirectory, with: "db")
    }

    // MARK: Timers

    enum TimerAction {
        case wake(node: Int, epoch: Int, UnsafeContinuation<Void, Never>)
        case deliver(SimMessage)
        case callTimeout(node: Int, epoch: Int, callId: UInt64)
        case run(@Sendable () -> Void)
    }

    @inline(__always) @discardableResult
    func push(_ time: Int64, _ action: TimerAction) -> Int32 {
        timers.insert(time: time, action)
    }

    func cancelTimer(_ slot: Int32) { timers.cancel(slot) }

    private func fire(_ action: TimerAction) {
        switch action {
        case .run(let body):
            body()
        case .wake(let index, let epoch, let continuation):
            if index < 0 { continuation.resume(); return }
            let node = nodes[index]
            guard node.alive, node.epoch == epoch else { return } // the task died with its node
            if node.paused { node.backlog.append(action); return }
            continuation.resume()
        case .deliver(let message):
            deliver(message)
        case .callTimeout(let index, let epoch, let callId):
            let node = nodes[index]
            guard node.alive, node.epoch == epoch else { return }
            if node.paused {
                // The timer has left the queue: a reply arriving later must not cancel its slot.
                node.pending[callId]?.timeoutSlot = -1
                node.backlog.append(action)
                return
            }
            guard let call = node.pending.removeValue(forKey: callId) else { return }
            record("timeout \(node.name) call#\(callId)")
            call.continuation.resume(throwing: RPCError.deadlineExceeded)
        }
    }

    // MARK: Nodes

    /// Adds a node. `factory` builds its service anew at every start (first start and restarts).
    @discardableResult
    public func addNode(_ name: NodeName, serving service: ServiceName? = nil,
                        factory: (@Sendable (SimRuntime) throws -> any ERPService)? = nil) -> SimNode {
        precondition(nodeIndex[name] == nil, "node \(name) added twice")
        let node = SimNode(world: self, index: nodes.count, name: name, service: service, factory: factory)
        nodes.append(node)
        nodeIndex[name] = node.index
        if let service, serviceNodes[service] == nil { serviceNodes[service] = node.index }
        return node
    }

    public func node(_ name: NodeName) -> SimNode? { nodeIndex[name].map { nodes[$0] } }
    public func node(serving service: ServiceName) -> SimNode? { serviceNodes[service].map { nodes[$0] } }
    public var allNodes: [SimNode] { nodes }

    func index(of name: NodeName) -> Int? { nodeIndex[name] }
    func index(serving service: ServiceName) -> Int? { serviceNodes[service] }

    func nextCallId() -> UInt64 { callSequence &+= 1; return callSequence }

    // MARK: Messages

    struct SimMessage {
        enum Body {
            case request(method: String, metadata: CallMetadata, payload: any Sendable)
            case reply(Result<any Sendable, RPCError>)
            /// The destination was down: what a TCP reset tells the caller.
            case refused
        }
        var from: Int
        var fromEpoch: Int
        var to: Int
        var toEpoch: Int
        var callId: UInt64
        var body: Body
    }

    /// Sends `message` over its link; `delay` is time spent before it leaves (a reply's service time).
    func send(_ message: SimMessage, after delay: Int64 = 0) {
        stats.messagesSent += 1
        let from = message.from, to = message.to
        // What the node committed is durable before anyone hears of it (a sync can be where the
        // power fails: the check below then drops the message).
        if !nodes[from].syncBeforeSending(), !nodes[from].disk.poweredOff {
            stats.messagesDropped += 1
            traceMessage("drop sync failed ", message)
            exitOnItsOwn(nodes[from], status: 70, "sync failed")
            return
        }
        if nodes[from].disk.poweredOff {
            // Cut inside a write: the rest of the job runs, but a dead machine sends nothing.
            stats.messagesDropped += 1
            traceMessage("drop power cut ", message)
            return
        }
        if network.isCut(from, to) {
            stats.messagesDropped += 1
            traceMessage("drop partition ", message)
            return
        }
        let link = network.settings(from, to)
        if link.dropProbability > 0, networkRandom.chance(link.dropProbability) {
            stats.messagesDropped += 1
            traceMessage("drop loss ", message)
            return
        }
        var copies = 1
        if link.duplicateProbability > 0, networkRandom.chance(link.duplicateProbability) {
            copies = 2
            stats.messagesDuplicated += 1
        }
        let lo = link.latency.min.nanoseconds, hi = link.latency.max.nanoseconds
        // A message leaves when the syncs asked for before it are done (a slow disk holds it).
        let delay = max(delay, nodes[from].disk.busyUntil &- elapsedNanoseconds)
        for copy in 0..<copies {
            var at = elapsedNanoseconds &+ delay &+ (hi > lo ? link.latency.sample(networkRandom.unit()) : lo)
            if network.preserveLinkOrder {
                let key = NetworkModel.key(from, to)
                if link.reorderProbability > 0, networkRandom.chance(link.reorderProbability) {
                    traceMessage("reorder ", message)
                } else {
                    at = max(at, network.lastDelivery[key] ?? 0)
                    network.lastDelivery[key] = at
                }
            }
            traceMessage(copy > 0 ? "send dup " : "send ", message, arrives: at)
            push(at, .deliver(message))
        }
    }

    /// `<what> <from>-><to> call#<id> <method>` (or `reply#<id> ok|<error>`, `refused#<id>`), then
    /// ` arrives <time>` when given.
    private func traceMessage(_ what: StaticString, _ m: SimMessage, arrives: Int64? = nil) {
        guard trace.enabled else { return }
        let from = nodes[m.from].name.rawValue, to = nodes[m.to].name.rawValue
        trace.line(elapsedNanoseconds) { line in
            line.put(what)
            line.put(from)
            line.put("->")
            line.put(to)
            switch m.body {
            case .request(let method, _, _):
                line.put(" call#"); line.put(decimal: m.callId); line.put(" "); line.put(method)
            case .reply(.success):
                line.put(" reply#"); line.put(decimal: m.callId); line.put(" ok")
            case .reply(.failure(let e)):
                line.put(" reply#"); line.put(decimal: m.callId); line.put(" "); line.put(e.kind)
            case .refused:
                line.put(" refused#"); line.put(decimal: m.callId)
            }
            if let arrives { line.put(" arrives "); line.put(time: arrives) }
        }
    }

    /// Messages lost with a node's process (held while it was paused, then it crashed).
    func countDropped(_ count: Int) { stats.messagesDropped += count }

    private func deliver(_ message: SimMessage) {
        let node = nodes[message.to]
        guard node.alive, node.epoch == message.toEpoch else {
            stats.messagesDropped += 1
            traceMessage("drop down ", message)
            if case .request = message.body {
                // The peer's connection is gone: the caller learns it at once, like a TCP reset.
                send(SimMessage(from: message.to, fromEpoch: node.epoch, to: message.from, toEpoch: message.fromEpoch,
                                callId: message.callId, body: .refused))
            }
            return
        }
        if node.paused { node.backlog.append(.deliver(message)); return }
        if network.isCut(message.from, message.to) {
            stats.messagesDropped += 1
            traceMessage("drop partition ", message)
            return
        }
        stats.messagesDelivered += 1
        traceMessage("deliver ", message)
        switch message.body {
        case .request(let method, let metadata, let payload):
            let reply = { [self] (result: Result<any Sendable, RPCError>) in
                // The server may have crashed while it worked: a dead incarnation says nothing.
                guard node.alive, node.epoch == message.toEpoch else { return }
                // A calibrated service time: the method's own work, which virtual time otherwise
                // does not see, delays its reply.
                let work = serviceTimes.isEmpty ? 0 : serviceTimes[method].map { $0.sample(networkRandom.unit()) } ?? 0
                send(SimMessage(from: message.to, fromEpoch: message.toEpoch, to: message.from,
                                toEpoch: message.fromEpoch, callId: message.callId, body: .reply(result)), after: work)
            }
            // The deadline is absolute, and the receiver judges it on its own clock, skew and all,
            // as a real process does (a node running ahead refuses work its callers still want).
            if metadata.deadline <= now + node.clockSkew {
                traceMessage("expired ", message)
                reply(.failure(.deadlineExceeded))
                return
            }
            guard let handler = node.handlers.handler(for: method) else {
                reply(.failure(.unavailable("\(node.name) does not serve \(method)")))
                return
            }
            if node.incomingLimit != nil, case .limited(let retryAfter) = node.incomingLimit!.tryAcquire(key: nodes[message.from].name.rawValue, now: now) {
                traceMessage("rate-limited ", message)
                reply(.failure(.overloaded(retryAfterMilliseconds: Int64(retryAfter.milliseconds.rounded(.up)))))
                return
            }
            let context = CallContext(metadata: metadata, caller: nodes[message.from].name)
            Task(executorPreference: self) {  // determinism-exempt: a handler on the world's executor
                reply(await handler(payload, context))
            }
        case .reply(let result):
            guard let call = node.pending.removeValue(forKey: message.callId) else {
                record("late reply#\(message.callId) to \(node.name) ignored")
                return
            }
            if call.timeoutSlot >= 0 { timers.cancel(call.timeoutSlot) }
            switch result {
            case .success(let value): call.continuation.resume(returning: value)
            case .failure(let error): call.continuation.resume(throwing: error)
            }
        case .refused:
            guard let call = node.pending.removeValue(forKey: message.callId) else { return }
            if call.timeoutSlot >= 0 { timers.cancel(call.timeoutSlot) }
            call.continuation.resume(throwing: RPCError.unavailable("connection refused by \(nodes[message.from].name)"))
        }
    }

    // MARK: Faults

    public func crash(_ name: NodeName) {
        guard let node = node(name), node.alive else { return }
        node.crash()
        record("fault crash \(name)")
    }

    public func restart(_ name: NodeName) {
        guard let node = node(name), !node.alive else { return }
        record("fault restart \(name)")
        node.start()
    }

    /// When the supervisor restarts a node that exited on its own; production's `Supervisor` default.
    public var restartPolicy = RestartPolicy()

    /// The node's process ends on its own, as production's does when a sync it owed has failed
    /// (status 70: after a failed `fdatasync` the kernel may have dropped the unsynced pages, and
    /// only a restart that reads the files again knows what they hold) or when its service cannot
    /// start: when the job it is in yields. The supervisor restarts it as `restartPolicy` says, so
    /// that a disk that keeps failing makes a crash loop with backoff, in simulation as in
    /// production.
    func exitOnItsOwn(_ node: SimNode, status: Int32, _ why: String) {
        guard node.alive, !node.exiting else { return }
        node.exiting = true
        let epoch = node.epoch
        record("\(node.name) \(why): exits with status \(status)")
        schedule(after: .zero) { [unowned self] in
            guard node.alive, node.epoch == epoch else { return }
            node.crash()
            let wait = restartPolicy.wait(afterDeaths: restartPolicy.count(deathAt: elapsed, in: &node.exits))
            record("exit \(node.name) status \(status); supervisor restarts it in \(wait.shortDescription)")
            schedule(after: wait) { [unowned self] in
                // Unless a fault of the scenario has started (and perhaps crashed) it since.
                guard !node.alive, node.epoch == epoch + 1 else { return }
                record("supervisor restart \(node.name)")
                node.start()
            }
        }
    }

    /// The simulated disks a power fault needs: ones that keep unsynced writes aside.
    private var storageTrackingUnsyncedWrites: MemoryVolume {
        guard let storage, storage.tracksUnsynced else {
            preconditionFailure("a power fault needs storage: .memory(modelsPowerLoss: true)")
        }
        return storage
    }

    /// The power goes off under a node: whatever its files had not synced is lost or torn (as the
    /// seed chooses), and its process dies. It stays down until restarted.
    public func powerLoss(_ name: NodeName) {
        guard let node = node(name) else { return }
        let storage = storageTrackingUnsyncedWrites
        powerLossCount += 1
        let prefix = name.rawValue + "-"
        // A power cut still waiting for a write is moot: the power is failing now. (Left armed,
        // it would fail the power a second time, after the restart.)
        if storage.disarmPowerCut(prefix: prefix) { record("fault power cut \(name) taken back: the power fails first") }
        let report = storage.powerLoss(prefix: prefix, random: rootRandom.derived("power-loss:\(powerLossCount):\(name)"))
        if node.alive { node.crash() }
        storage.powerRestored(prefix: prefix)
        record("fault power loss \(name): \(report.description)")
    }

    /// The power fails inside the node's next writes: during its write, truncation or sync number
    /// 1–8 from now (the seed chooses), so that a commit can be cut in the middle. From that
    /// instant the node is dead: what the interrupted job still writes goes into copies nobody
    /// reads and what it sends is dropped; its process ends when the job yields. The files lose
    /// their unsynced writes as in `powerLoss`. A node that writes nothing within 100 ms loses its
    /// power then, between writes. It stays down until restarted.
    public func powerCut(_ name: NodeName) {
        guard let node = node(name) else { return }
        let storage = storageTrackingUnsyncedWrites
        powerLossCount += 1
        let prefix = name.rawValue + "-"
        let random = rootRandom.derived("power-cut:\(powerLossCount):\(name)")
        let operation = 1 + Int(random.nextUInt64() % 8)
        let id = powerLossCount
        let replaced = storage.armPowerCut(prefix: prefix, id: id, atOperation: operation, random: random) { [unowned self] report in
            record("fault power cut \(name) inside write or sync \(operation): \(report.description)")
            schedule(after: .zero) { [unowned self] in
                if node.alive { node.crash() }
                storage.powerRestored(prefix: prefix)
                record("fault power cut \(name): process gone")
            }
        }
        if replaced { record("fault power cut \(name) re-armed: the earlier cut has not happened") }
        record("fault power cut \(name) armed: inside its write or sync number \(operation) from now")
        schedule(after: .milliseconds(100)) { [unowned self] in
            // Only this arming: a later one has its own 100 ms.
            guard storage.disarmPowerCut(prefix: prefix, id: id) else { return }
            record("fault power cut \(name): no write within 100ms, the power fails between writes")
            powerLoss(name)
        }
    }

    /// Every write to the node's files fails so until `nil`.
    public func setDiskFailure(_ name: NodeName, _ failure: SimulatedDisk.WriteFailure?) {
        precondition(modelsDiskFaults, "a disk fault needs storage: .memory(modelsPowerLoss:)")
        guard let node = node(name) else { return }
        node.disk.writeFailure = failure
        record("fault disk \(name) " + (failure.map { "fails writes: \($0)" } ?? "writes again"))
    }

    /// Each sync of the node's disk takes `latency` (zero: none).
    public func setSyncLatency(_ name: NodeName, _ latency: Duration) {
        precondition(modelsDiskFaults, "a disk fault needs storage: .memory(modelsPowerLoss:)")
        guard let node = node(name) else { return }
        node.disk.syncLatencyNanoseconds = max(0, latency.nanoseconds)
        record("fault disk \(name) syncs in \(latency.shortDescription)")
    }

    public func pause(_ name: NodeName) {
        guard let node = node(name), node.alive, !node.paused else { return }
        node.paused = true
        record("fault pause \(name)")
    }

    public func resume(_ name: NodeName) {
        guard let node = node(name), node.paused else { return }
        node.paused = false
        record("fault resume \(name)")
        let backlog = node.backlog
        node.backlog = []
        for action in backlog { fire(action) }
    }

    /// How many times each planted defect acted (`DefectNote` lines the services recorded).
    public private(set) var defectsActed: [String: Int] = [:]

    func countDefectActing(_ defect: Substring) { defectsActed[String(defect), default: 0] += 1 }

    /// Every clock skew set, with when: what the checker needs to time event hops on true time.
    public private(set) var clockSkews = ClockSkews()

    public func setClockSkew(_ name: NodeName, _ skew: Duration) {
        guard let node = node(name) else { return }
        node.clockSkew = skew
        clockSkews.record(.init(node: name.rawValue, atMilliseconds: now.millisecondsSinceEpoch, skewMilliseconds: skew.nanoseconds / 1_000_000))
        record("fault skew \(name) \(skew.shortDescription)")
    }

    /// Cuts both directions between `a` and `b`.
    public func partition(_ a: NodeName, _ b: NodeName) {
        partitionOneWay(from: a, to: b)
        partitionOneWay(from: b, to: a)
    }

    /// Cuts messages from `from` to `to` only.
    public func partitionOneWay(from: NodeName, to: NodeName) {
        guard let f = index(of: from), let t = index(of: to) else { return }
        network.setCut(f, t, true)
        record("fault partition \(from)->\(to)")
    }

    /// Restores both directions between `a` and `b`.
    public func healPartition(_ a: NodeName, _ b: NodeName) {
        guard let f = index(of: a), let t = index(of: b) else { return }
        network.setCut(f, t, false)
        network.setCut(t, f, false)
        record("fault heal partition \(a)<->\(b)" + (network.isCut(f, t) || network.isCut(t, f) ? " (still cut by another fault)" : ""))
    }

    public func healPartitionOneWay(from: NodeName, to: NodeName) {
        guard let f = index(of: from), let t = index(of: to) else { return }
        network.setCut(f, t, false)
        record("fault heal partition \(from)->\(to)" + (network.isCut(f, t) ? " (still cut by another fault)" : ""))
    }

    /// Ends an isolation: every link to and from the node is restored.
    public func rejoin(_ name: NodeName) {
        guard let i = index(of: name) else { return }
        for other in nodes.indices where other != i {
            network.setCut(i, other, false)
            network.setCut(other, i, false)
        }
        record("fault rejoin \(name)")
    }

    /// Cuts a node off from every other node.
    public func isolate(_ name: NodeName) {
        guard let i = index(of: name) else { return }
        for other in nodes.indices where other != i {
            network.setCut(i, other, true)
            network.setCut(other, i, true)
        }
        record("fault isolate \(name)")
    }

    /// The scenario's own settings of one directed link (a calibrated network); faults override it
    /// for a while and it returns after.
    public func setBaseLink(from: NodeName, to: NodeName, _ settings: LinkSettings) {
        guard let f = index(of: from), let t = index(of: to) else { return }
        network.setBase(f, t, settings)
    }

    public func setLink(from: NodeName, to: NodeName, _ settings: LinkSettings?) {
        guard let f = index(of: from), let t = index(of: to) else { return }
        network.setOverride(f, t, settings)
        record("fault link \(from)->\(to) \(settings.map { "\($0)" } ?? "default")")
    }

    /// Removes every per-link override (back to the default link).
    public func resetLinkOverrides() {
        network.overrides.removeAll()
        record("fault reset links")
    }

    /// Ends the world: every live node stops as in a crash (nothing is recorded), so its databases
    /// are closed, and the files are written out to the storage directory for a checker to read.
    public func stopAll() {
        for node in nodes where node.alive { node.crash(endOfRun: true) }
        do { try storage?.flush() } catch { record("storage could not be written out", failure: error) }
    }

    /// Lets go of what a finished world holds: the nodes' services, its timers (and the closures
    /// and messages waiting in them), its call metrics, the trace's buffer, the simulated disks.
    ///
    /// Why it is needed: a world's suspended tasks are never resumed. A stopped world's tasks vanish
    /// as a crashed node's do (a relay asleep, a handler waiting on a call), and the concurrency
    /// runtime keeps each of them, with the executor it prefers (this world), for the life of the
    /// process. A process that runs one world after another (`erp shrink`'s candidates, the http
    /// fuzz harness, the test suite) kept every finished world's metrics, trace buffer and timers:
    /// 4 MB a world on chaos-mix, most of it the per-method latency histograms. Call it once the
    /// run's results are read (after `stopAll()`, whose files it keeps); the world cannot run again.
    public func tearDown() {
        precondition(runningThread == nil, "SimWorld: tearDown() while the world runs")
        for node in nodes where node.alive { node.crash(endOfRun: true) }
        tornDown = true
        timers = TimerQueue()
        ready.removeAll()
        callMetrics = nil
        serviceTimes = [:]
        network = NetworkModel()
        trace.releaseBuffer()
        storage?.close()
        storage = nil
    }

    /// Heal: no partitions, no loss, duplication or reordering; crashed nodes restart, paused ones resume.
    public func heal() {
        // A power cut still waiting for a write does not happen in the heal phase.
        storage?.disarmEveryPowerCut()
        network.heal()
        record("fault heal network")
        for node in nodes where node.paused { resume(node.name) }
        for node in nodes where !node.alive && node.everStarted { restart(node.name) }
    }
}
