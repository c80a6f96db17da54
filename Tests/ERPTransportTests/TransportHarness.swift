import ERPCore
import ERPResilience
import ERPSimulation
import ERPTransport
import ERPZeroMQ
import Testing
import Foundation

/// The backends the conformance suite runs on; the test bodies are the same for each.
enum Backend: String, CaseIterable, CustomTestStringConvertible {
    case simulation
    /// Real sockets on loopback TCP, wall time; the seed is not used (nothing is seeded).
    case zeromq
    var testDescription: String { rawValue }

    func makeHarness(seed: UInt64 = 1) throws -> any TransportHarness {
        switch self {
        case .simulation: try SimulationHarness(seed: seed)
        case .zeromq: try ZeroMQHarness()
        }
    }
}

/// What a conformance test needs from a backend: nodes that serve, a client that calls, faults.
protocol TransportHarness: Sendable {
    /// Adds a node whose service runs `setup` at every start (registering handlers).
    func addNode(_ name: NodeName, serving service: ServiceName?, _ setup: @escaping @Sendable (any Runtime) throws -> Void)
    /// Adds a node running a real service from ERPServices.
    func addNode(_ name: NodeName, serving service: ServiceName, make: @escaping @Sendable (any Runtime) throws -> any ERPService)
    /// Starts every node, then runs `body` as a client and returns when it finishes (or fails
    /// after `limit` of the backend's time).
    func run(limit: Duration, _ body: @escaping @Sendable (any Runtime) async throws -> Void) async throws
    func crash(_ name: NodeName)
    func restart(_ name: NodeName)
    func setDuplicateProbability(_ p: Double)
    /// Limits the requests `name` serves, a bucket per caller (before `run`).
    func limitIncoming(_ name: NodeName, _ settings: RateLimiterSettings)
}

struct HarnessTimeout: Error, CustomStringConvertible {
    var description: String
}

/// A service made of a closure, for tests.
final class ClosureService: ERPService, @unchecked Sendable {
    static let name = ServiceName.gateway
    let runtime: any Runtime
    let setup: @Sendable (any Runtime) throws -> Void
    init(runtime: any Runtime, setup: @escaping @Sendable (any Runtime) throws -> Void) { self.runtime = runtime; self.setup = setup }
    func start() async throws { try setup(runtime) }
}

final class SimulationHarness: TransportHarness, @unchecked Sendable {
    let world: SimWorld
    let directory: String

    init(seed: UInt64) throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("erp-conformance-\(seed)-\(UInt64.random(in: 0...UInt64.max))").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        world = SimWorld(seed: seed, storageDirectory: directory, trace: try SimTrace())
    }

    deinit { try? FileManager.default.removeItem(atPath: directory) }

    func addNode(_ name: NodeName, serving service: ServiceName?, _ setup: @escaping @Sendable (any Runtime) throws -> Void) {
        world.addNode(name, serving: service) { runtime in ClosureService(runtime: runtime, setup: setup) }
    }

    func addNode(_ name: NodeName, serving service: ServiceName, make: @escaping @Sendable (any Runtime) throws -> any ERPService) {
        world.addNode(name, serving: service) { runtime in try make(runtime) }
    }

    func run(limit: Duration, _ body: @escaping @Sendable (any Runtime) async throws -> Void) async throws {
        for node in world.allNodes where !node.alive { node.start() }
        let client = world.addNode("test-client")
        client.start()
        world.run(until: world.elapsed + .milliseconds(10))
        let outcome = Outcome()
        client.runtime!.spawn("test") {
            do { try await body(client.runtime!); outcome.finished = true } catch { outcome.error = error }
        }
        let end = world.elapsed + limit
        while outcome.finished == false && outcome.error == nil && world.elapsed < end {
            world.run(until: min(end, world.elapsed + .milliseconds(100)))
        }
        if let error = outcome.error { throw error }
        guard outcome.finished else { throw HarnessTimeout(description: "test body did not finish within \(limit) of virtual time") }
    }

    func crash(_ name: NodeName) { world.crash(name) }
    func restart(_ name: NodeName) { world.restart(name) }
    func setDuplicateProbability(_ p: Double) { world.network.defaultLink.duplicateProbability = p }
    func limitIncoming(_ name: NodeName, _ settings: RateLimiterSettings) { world.node(name)?.incomingLimit = RateLimiter(settings: settings) }

    final class Outcome: @unchecked Sendable {
        var finished = false
        var error: (any Error)?
    }
}
