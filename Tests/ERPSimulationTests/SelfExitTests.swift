import ERPCore
import ERPSimulation
import ERPStorage
import ERPTransport
import Foundation
import Testing

/// A simulated node whose process ends on its own (a sync it owed failed, its service could not
/// start) exits as production's does and is restarted as production's supervisor would.
@Suite struct SelfExitTests {
    /// Every 110 ms from its start: commits a row at 100 ms, calls a peer at 110 ms. Each call
    /// must first sync the commit before it.
    final class CommitThenCall: ERPService, @unchecked Sendable {
        static let name = ServiceName.inventory
        let runtime: any Runtime
        init(runtime: any Runtime) { self.runtime = runtime }
        func start() async throws {
            let db = try runtime.openDatabase("w", migrations: [("t", { try $0.execute(sql: "CREATE TABLE t (n INTEGER)") })])
            runtime.spawn("writer") { [runtime] in
                while true {
                    await runtime.sleep(for: .milliseconds(100))
                    _ = try? db.write { try $0.execute(sql: "INSERT INTO t (n) VALUES (1)") }
                    await runtime.sleep(for: .milliseconds(10))
                    runtime.spawn("call") {
                        _ = try? await runtime.transport.call(Ping(n: 0), to: "p", metadata: runtime.metadata(timeout: .milliseconds(20)))
                    }
                }
            }
        }
    }

    /// The lines about node "w" exiting and coming back, each with its virtual millisecond.
    final class Lines: @unchecked Sendable { var lines: [String] = [] }

    /// The disk fails between a commit (980 ms) and the call after it (990 ms), for five seconds:
    /// the node exits with status 70 at that call and, restarted, at the first call of each new
    /// incarnation (the sync its database's opening owes fails too); the supervisor waits 200 ms
    /// for its first five exits, then 400, 800, 1,600, 3,200 ms. The restart after the disk
    /// has healed stays up.
    @Test func aNodeWhoseSyncFailsExitsAndIsRestartedWithBackoff() throws {
        let world = SimWorld(seed: 3, storageDirectory: scratchFolder(), trace: try SimTrace(), storage: .memory(modelsPowerLoss: false))
        let log = Lines()
        world.trace.observer = { [unowned world] bytes in
            let line = String(decoding: bytes, as: UTF8.self)
            if line.hasPrefix("w ") || line.hasPrefix("exit w") || line.hasPrefix("supervisor restart w") {
                log.lines.append("\(world.elapsed.nanoseconds / 1_000_000) \(line)")
            }
        }
        world.addNode("p").start()
        let node = world.addNode("w", serving: .inventory) { CommitThenCall(runtime: $0) }
        node.start()
        world.schedule(at: .milliseconds(985)) { world.setDiskFailure("w", .ioError) }
        world.schedule(at: .milliseconds(6_000)) { world.setDiskFailure("w", nil) }
        world.run(until: .seconds(12))

        let waits = log.lines.compactMap { $0.split(separator: " ").last.map(String.init) }
            .enumerated().filter { log.lines[$0.offset].contains("supervisor restarts it in") }.map(\.element)
        #expect(waits == ["200ms", "200ms", "200ms", "200ms", "200ms", "400ms", "800ms", "1600ms", "3200ms"], "\(log.lines)")
        #expect(log.lines.first == "990 w sync failed: exits with status 70", "\(log.lines)")
        // The ninth exit (about 5.4 s) is the last inside the window; the restart after it (about
        // 8.6 s) finds the disk healed and stays up.
        #expect(log.lines.filter { $0.contains("exits with status") }.count == 9, "\(log.lines)")
        #expect(node.alive && node.startCount == 10, "\(node.startCount) starts: \(log.lines)")
        let lastExit = log.lines.last { $0.contains("exits with status") }
        #expect(lastExit.flatMap { Int($0.split(separator: " ")[0]) }.map { $0 < 6_000 } == true, "\(log.lines)")
    }

    /// A service that cannot start ends its process, as `erp serve` does, and is started again.
    @Test func aServiceThatCannotStartExitsAndIsRestarted() throws {
        struct Broken: Error {}
        final class Unstartable: ERPService, @unchecked Sendable {
            static let name = ServiceName.inventory
            func start() async throws { throw Broken() }
        }
        let world = SimWorld(seed: 3, storageDirectory: scratchFolder(), trace: try SimTrace())
        let node = world.addNode("w", serving: .inventory) { _ in Unstartable() }
        node.start()
        world.run(until: .milliseconds(1_100))
        // Started at 0, then after 200 ms five times (1.0 s), then 400 ms later (1.4 s: not yet).
        #expect(node.startCount == 6 && !node.alive, "\(node.startCount) starts")
    }

    @Test func theRestartPolicyDoublesPastItsCountUpToItsCeiling() {
        let policy = RestartPolicy()
        #expect((1...5).map { policy.wait(afterDeaths: $0) } == Array(repeating: .milliseconds(200), count: 5))
        #expect((6...9).map { policy.wait(afterDeaths: $0) } == [.milliseconds(400), .milliseconds(800), .milliseconds(1600), .milliseconds(3200)])
        #expect(policy.wait(afterDeaths: 12) == .milliseconds(25_600) && policy.wait(afterDeaths: 13) == .seconds(30))
        #expect(policy.wait(afterDeaths: 500) == .seconds(30))
    }
}
