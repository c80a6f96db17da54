import ERPCore
import ERPServices
import ERPSimulation
import ERPSimulationBackend
import ERPTransport
import Foundation
import ERPTestSupport
import Testing

/// Every service of the catalogue on one simulated world, for tests that call the services
/// straight (past the gateway), as any admitted peer could.
enum SimulatedServices {
    /// Every service of the catalogue on one simulated world; `body` runs as a client.
    /// Returns each service node's start count. The world computes on a thread of its own.
    /// `before` gets the world once its services have started, before `body` runs (to crash one).
    /// `configure` adjusts the services' settings (a provider that declines, a planted defect).
    static func run(configure: @escaping @Sendable (inout ServiceSettings) -> Void = { _ in },
                    before: @escaping @Sendable (SimWorld) -> Void = { _ in },
                    _ body: @escaping @Sendable (any Transport, any Runtime) async throws -> Void) async throws -> [(NodeName, Int)] {
        try await HeavyWork.shared.run { try await onThreadOfItsOwn { try simulate(configure: configure, before: before, body) } }
    }

    static func simulate(configure: (inout ServiceSettings) -> Void = { _ in }, before: (SimWorld) -> Void = { _ in },
                         _ body: @escaping @Sendable (any Transport, any Runtime) async throws -> Void) throws -> [(NodeName, Int)] {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("erp-services-\(UInt64.random(in: 0...UInt64.max))").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let world = SimWorld(seed: 7, storageDirectory: directory, trace: try SimTrace())
        let services = ServiceCatalog.startOrder
        var settings = ServiceSettings(fixtures: try loadFixtures())
        configure(&settings)
        world.addServices(services, settings: settings)
        for service in services { world.node(serving: service)!.start() }
        let client = world.addNode("client")
        client.start()
        world.run(until: world.elapsed + .milliseconds(50))
        before(world)
        let outcome = Outcome()
        client.runtime!.spawn("test") {
            do { try await body(client.runtime!.transport, client.runtime!); outcome.finished = true } catch { outcome.error = error }
        }
        world.run(until: world.elapsed + .seconds(30))
        if let error = outcome.error { throw error }
        #expect(outcome.finished, "the client's calls did not finish within 30 s of virtual time")
        world.stopAll()
        let starts = world.allNodes.filter { $0.service != nil }.map { ($0.name, $0.startCount) }
        world.tearDown()
        return starts
    }

    final class Outcome: @unchecked Sendable {
        var finished = false
        var error: (any Error)?
    }

    /// The code of the refusal `call` ends with, or a failure naming what came instead.
    static func refusal<R>(_ call: () async throws -> R) async -> String {
        do {
            let answer = try await call()
            return "answered: \(answer)"
        } catch RPCError.rejected(let code, _) {
            return code
        } catch {
            return "failed: \(error)"
        }
    }
}
