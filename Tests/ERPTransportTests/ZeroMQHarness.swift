import Dispatch
import ERPCore
import ERPResilience
import ERPTestSupport
import ERPTransport
import ERPZeroMQ
import Foundation
import Testing

/// The conformance harness on real sockets. Each node is its own `ZeroMQRuntime` +
/// `ZeroMQTransport` + `SerialTaskExecutor` (and its own libzmq context), bound to
/// `tcp://127.0.0.1:*` at its first start and to the same endpoint at every restart, so tests run
/// in parallel without choosing ports. `crash` stops the node's sockets and executor (its tasks
/// never run again, its handlers are gone, its databases close); `restart` builds it anew.
///
/// The harness's own async steps (binding, closing) run on a harness executor and the calling
/// thread waits on a semaphore: `crash` and `restart` are synchronous (a test body calls them on
/// its node's executor), and the harness's executor must not wait for the cooperative pool. `run`
/// does all its waiting on a thread of its own: a test that blocked one of the pool's threads (two
/// on a two-core machine) for its whole body stalled every other test's tasks whenever two ran at
/// once.
final class ZeroMQHarness: TransportHarness, @unchecked Sendable {
    // @unchecked Sendable: the mutable fields are reached only while `lock` is held.
    private struct Spec {
        var name: NodeName
        var make: (@Sendable (any Runtime) throws -> any ERPService)?
    }

    private final class LiveNode {
        let context: ZMQContext
        let executor: SerialTaskExecutor
        let transport: ZeroMQTransport
        let runtime: ZeroMQRuntime
        var service: (any ERPService)?
        init(context: ZMQContext, executor: SerialTaskExecutor, transport: ZeroMQTransport, runtime: ZeroMQRuntime) {
            self.context = context
            self.executor = executor
            self.transport = transport
            self.runtime = runtime
        }
    }

    private let lock = NSLock()
    private var specs: [Spec] = []
    private var live: [NodeName: LiveNode] = [:]
    private var endpoints: [NodeName: String] = [:]
    private var duplicateProbability = 0.0
    private var limits: [NodeName: RateLimiterSettings] = [:]
    private let addressBook = AddressBook()
    private let directory: String
    private let control = SerialTaskExecutor(name: "zmq-harness")
    /// The least wall time a guard against a hang allows, for a harness step (bind, close, a
    /// service's start) and for a test body: not a measure (each test checks its own deadlines),
    /// and a loaded CI machine once outran the old 5 – 10 s.
    private static let hangGuard: Duration = .seconds(30)
    private let stepTimeout = ZeroMQHarness.hangGuard

    init() throws {
        directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("erp-conformance-zmq-\(UInt64.random(in: 0...UInt64.max))").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    deinit {
        stopAll()
        control.shutdown()
        do { try FileManager.default.removeItem(atPath: directory) } catch { print("cannot remove \(directory): \(error)") }
    }

    func addNode(_ name: NodeName, serving service: ServiceName?, _ setup: @escaping @Sendable (any Runtime) throws -> Void) {
        add(Spec(name: name, make: { runtime in ClosureService(runtime: runtime, setup: setup) }), serving: service)
    }

    func addNode(_ name: NodeName, serving service: ServiceName, make: @escaping @Sendable (any Runtime) throws -> any ERPService) {
        add(Spec(name: name, make: make), serving: service)
    }

    private func add(_ spec: Spec, serving service: ServiceName?) {
        lock.withLock { specs.append(spec) }
        if let service, addressBook.node(serving: service) == nil { addressBook.set(service, servedBy: spec.name) }
    }

    func run(limit: Duration, _ body: @escaping @Sendable (any Runtime) async throws -> Void) async throws {
        try await onThreadOfItsOwn { try self.runWaiting(limit: limit, body) }
    }

    private func runWaiting(limit: Duration, _ body: @escaping @Sendable (any Runtime) async throws -> Void) throws {
        defer { stopAll() }
        for spec in lock.withLock({ specs }) where lock.withLock({ live[spec.name] == nil }) {
            try start(spec)
        }
        let client = try start(Spec(name: "test-client", make: nil))
        let outcome = Outcome<Void>()
        let done = DispatchSemaphore(value: 0)
        let runtime = client.runtime
        runtime.spawn("test") {
            do {
                try await body(runtime)
                outcome.set(.success(()))
            } catch {
                outcome.set(.failure(error))
            }
            done.signal()
        }
        // On this backend the limit is wall time and only a guard against a hung body (each test
        // checks its own deadlines): four times it, and at least 30 s, so that a loaded machine
        // (CI runs simulations beside this on two cores) does not fail a body that is merely slow.
        let guardTime = max(limit * 4, Self.hangGuard)
        if done.wait(timeout: .now() + .nanoseconds(Int(guardTime.nanoseconds))) == .timedOut {  // pool-exempt: run's own thread, or a node's executor
            throw HarnessTimeout(description: "test body did not finish within \(guardTime) of wall time (the guard for a limit of \(limit))")
        }
        try outcome.get()
    }

    func crash(_ name: NodeName) {
        guard let node = lock.withLock({ live.removeValue(forKey: name) }) else { return }
        stop(node)
    }

    func restart(_ name: NodeName) {
        guard let spec = lock.withLock({ specs.first { $0.name == name } }), lock.withLock({ live[name] == nil }) else { return }
        do { try start(spec) } catch { Issue.record("restart of \(name) failed: \(error)") }
    }

    func setDuplicateProbability(_ p: Double) { lock.withLock { duplicateProbability = p } }
    func limitIncoming(_ name: NodeName, _ settings: RateLimiterSettings) { lock.withLock { limits[name] = settings } }

    // MARK: Nodes

    @discardableResult
    private func start(_ spec: Spec) throws -> LiveNode {
        let context = try ZMQContext()
        let executor = SerialTaskExecutor(name: "node-\(spec.name)")
        let (endpoint, duplicateProbability) = lock.withLock { (endpoints[spec.name] ?? "tcp://127.0.0.1:*", self.duplicateProbability) }
        let transport = ZeroMQTransport(node: spec.name, endpoint: endpoint, addressBook: addressBook, context: context,
                                        security: .plaintext, executor: executor)
        // Duplication is the fault filter's, as every fault of this backend.
        transport.faults.set(FaultFilter.Rules(fallback: LinkFault(duplicateProbability: duplicateProbability)))
        transport.limitIncoming(lock.withLock { limits[spec.name] })
        let bound: String
        do {
            bound = try blocking { try await transport.start() }
        } catch {
            executor.shutdown()
            context.terminate()
            throw error
        }
        addressBook.set(spec.name, AddressBook.Address(endpoint: bound))
        let runtime = ZeroMQRuntime(node: spec.name, transport: transport, executor: executor, dataDirectory: directory,
                                    logLevel: .warning)
        let node = LiveNode(context: context, executor: executor, transport: transport, runtime: runtime)
        lock.withLock {
            endpoints[spec.name] = bound
            live[spec.name] = node
        }
        guard let make = spec.make else { return node }
        let service = try make(runtime)
        node.service = service
        let started = DispatchSemaphore(value: 0)
        runtime.spawn("start") {
            do { try await service.start() } catch { runtime.logger.critical("start failed: \(error)") }
            started.signal()
        }
        if started.wait(timeout: .now() + .nanoseconds(Int(stepTimeout.nanoseconds))) == .timedOut {  // pool-exempt: run's own thread, or a node's executor
            throw HarnessTimeout(description: "\(spec.name) did not start within \(stepTimeout)")
        }
        return node
    }

    private func stop(_ node: LiveNode) {
        let transport = node.transport
        do { try blocking { await transport.stop() } } catch { print("stopping \(node.runtime.node): \(error)") }
        node.executor.shutdown()
        for failure in node.runtime.closeDatabases() { print("closing a database of \(node.runtime.node): \(failure)") }
        node.context.terminate()
    }

    private func stopAll() {
        let nodes = lock.withLock {
            let all = Array(live.values)
            live.removeAll()
            return all
        }
        for node in nodes { stop(node) }
    }

    /// Runs `body` on the harness executor and waits for it on this thread.
    private func blocking<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) throws -> T {
        let box = Outcome<T>()
        let done = DispatchSemaphore(value: 0)
        Task(executorPreference: control) {
            do { box.set(.success(try await body())) } catch { box.set(.failure(error)) }
            done.signal()
        }
        if done.wait(timeout: .now() + .nanoseconds(Int(stepTimeout.nanoseconds))) == .timedOut {  // pool-exempt: run's own thread, or a node's executor
            throw HarnessTimeout(description: "a harness step did not finish within \(stepTimeout)")
        }
        return try box.get()
    }

    private final class Outcome<T: Sendable>: @unchecked Sendable {
        private let lock = NSLock()
        private var result: Result<T, any Error>?
        func set(_ r: Result<T, any Error>) { lock.withLock { result = r } }
        func get() throws -> T {
            guard let result = lock.withLock({ result }) else { throw HarnessTimeout(description: "no outcome") }
            return try result.get()
        }
    }
}
