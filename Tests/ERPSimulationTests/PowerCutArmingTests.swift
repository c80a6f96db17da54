import ERPCore
import ERPSimulation
import Foundation
import Testing

/// How a world's power cuts are armed and taken back, on a node that writes nothing (so each cut
/// falls back to a power loss between writes after its 100 ms).
@Suite struct PowerCutArmingTests {
    /// The fault lines of the trace, each with its virtual millisecond.
    final class FaultLines: @unchecked Sendable {
        var lines: [String] = []
    }

    func world() throws -> (SimWorld, FaultLines) {
        let world = SimWorld(seed: 3, storageDirectory: scratchFolder(), trace: try SimTrace(),
                             storage: .memory(modelsPowerLoss: true))
        let log = FaultLines()
        world.trace.observer = { [unowned world] bytes in
            let line = String(decoding: bytes, as: UTF8.self)
            if line.hasPrefix("fault power") { log.lines.append("\(world.elapsed.nanoseconds / 1_000_000) \(line)") }
        }
        world.addNode("n").start()
        return (world, log)
    }

    @Test func aPowerLossTakesBackACutThatHasNotHappened() throws {
        let (world, log) = try world()
        world.schedule(at: .milliseconds(10)) { world.powerCut("n") }
        world.schedule(at: .milliseconds(20)) { world.powerLoss("n") }
        world.schedule(at: .milliseconds(60)) { world.restart("n") }
        world.run(until: .seconds(1))
        let losses = log.lines.filter { $0.contains("fault power loss n") }
        #expect(losses.count == 1, "one power loss, not a second one from the cut left armed: \(log.lines)")
        #expect(log.lines.contains { $0.hasPrefix("20 fault power cut n taken back") }, "\(log.lines)")
        #expect(!log.lines.contains { $0.contains("no write within 100ms") }, "\(log.lines)")
        #expect(world.node("n")?.alive == true)
    }

    @Test func aCutArmedAgainKeepsItsOwnHundredMilliseconds() throws {
        let (world, log) = try world()
        world.schedule(at: .milliseconds(10)) { world.powerCut("n") }
        world.schedule(at: .milliseconds(60)) { world.powerCut("n") }
        world.run(until: .seconds(1))
        let fallbacks = log.lines.filter { $0.contains("no write within 100ms") }
        // The first arming's timer (110 ms) must not take back the second arming: that one fails
        // the power at 160 ms.
        #expect(fallbacks.count == 1 && fallbacks.first?.hasPrefix("160 ") == true, "\(log.lines)")
        #expect(log.lines.contains { $0.hasPrefix("60 fault power cut n re-armed") }, "\(log.lines)")
        #expect(log.lines.filter { $0.contains("fault power loss n") }.count == 1, "\(log.lines)")
    }
}
