import ERPCore
import ERPSimulation
import ERPTransport
import Foundation

/// The RPC-mesh workload of `shared/bench/c_mesh.c` and `simpy_mesh.py`, run through the real
/// simulator path (SimWorld executor, timer heap, network model, SimTransport RPC with deadlines,
/// one task per request on the server). 1,000 clients each send a request to a random server every
/// period × uniform(0.5, 1.5) and wait for the reply; each hop takes uniform(0.5, 2) ms.
public struct MeshBenchmark {
    public var clientCount = 1_000
    public var serverCount = 10
    public var virtualDuration: Duration = .seconds(10)
    public var period: Duration = .milliseconds(1)
    public var seed: UInt64 = 1

    public init() {}

    public struct Result: Sendable {
        public var delivered: Int
        public var wallSeconds: Double
        public var deliveriesPerWallSecond: Double { Double(delivered) / wallSeconds }
        public var virtualPerWall: Double
    }

    struct Ping: RPCRequest {
        typealias Response = Int
        static let method = "mesh.ping"
        static let service = ServiceName.gateway
        var value: Int
    }

    /// A server: answers at once.
    final class EchoServer: ERPService, @unchecked Sendable {
        static let name = ServiceName.gateway
        let runtime: any Runtime
        init(runtime: any Runtime) { self.runtime = runtime }
        func start() async throws {
            runtime.transport.register(Ping.self) { request, _ in request.value }
        }
    }

    /// What the concurrency runtime charges at the least, measured on a world of its own with
    /// nothing else to do: a task's wait and wake (a zero sleep: one timer, one continuation
    /// resumed, one job run) and a task started and finished. A mesh call costs at least two
    /// waits (the client's sleep and its call) and a task (the server's handler) for its two
    /// deliveries, whatever the simulator does besides.
    public struct RuntimeFloor: Sendable {
        public var waitNanoseconds: Double
        public var taskNanoseconds: Double
        /// Deliveries per wall second if a mesh call cost only its two waits and its task.
        public var deliveriesPerWallSecondCeiling: Double { 2e9 / (2 * waitNanoseconds + taskNanoseconds) }
    }

    public static func runtimeFloor(iterations: Int = 200_000) throws -> RuntimeFloor {
        try withWorld(seed: 1, label: "floor") { world in
            defer { world.tearDown() }
            world.spawn {
                for _ in 0..<iterations { await world.sleep(for: .zero) }
            }
            var start = ContinuousClock.now
            world.run(until: .seconds(1))
            let waits = (ContinuousClock.now - start).seconds
            start = ContinuousClock.now
            for _ in 0..<iterations { world.spawn {} }
            world.run(until: .seconds(2))
            let tasks = (ContinuousClock.now - start).seconds
            return RuntimeFloor(waitNanoseconds: waits * 1e9 / Double(iterations), taskNanoseconds: tasks * 1e9 / Double(iterations))
        }
    }

    /// A world without tracing, call metrics or random scheduling, measured like c_mesh (no
    /// per-call bookkeeping), on a scratch directory removed afterwards.
    private static func withWorld<T>(seed: UInt64, label: String, _ body: (SimWorld) throws -> T) throws -> T {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("erp-\(label)-\(getpid())").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let world = SimWorld(seed: seed, storageDirectory: directory, trace: try SimTrace(enabled: false), randomizeScheduling: false)
        world.callMetrics = nil
        return try body(world)
    }

    public func run() throws -> Result {
        try Self.withWorld(seed: seed, label: "mesh") { world in try run(on: world) }
    }

    private func run(on world: SimWorld) throws -> Result {
        world.network.defaultLink = LinkSettings(latencyMin: .microseconds(500), latencyMax: .milliseconds(2))
        world.network.preserveLinkOrder = false
        let servers: [NodeName] = (0..<serverCount).map { NodeName("server-\($0)") }
        for name in servers {
            world.addNode(name) { runtime in EchoServer(runtime: runtime) }.start()
        }
        let clients = world.addNode("clients")
        clients.start()
        world.run(until: .zero)
        let runtime = clients.runtime!
        let periodNanoseconds = Double(period.nanoseconds)
        let deadlineSlack = Duration.seconds(1)
        for c in 0..<clientCount {
            runtime.spawn("client") {
                let random = runtime.random
                while true {
                    await runtime.sleep(for: .nanoseconds(Int64(periodNanoseconds * random.uniform(0.5, 1.5))))
                    let server = servers[random.int(in: 0...(servers.count - 1))]
                    let metadata = CallMetadata(deadline: runtime.clock.now + deadlineSlack, correlationId: "mesh")
                    _ = try? await runtime.transport.call(Ping(value: c), to: server, metadata: metadata)
                }
            }
        }
        let start = ContinuousClock.now
        world.run(until: virtualDuration)
        let wall = (ContinuousClock.now - start).seconds
        return Result(delivered: world.stats.messagesDelivered, wallSeconds: wall,
                      virtualPerWall: virtualDuration.seconds / wall)
    }
}
