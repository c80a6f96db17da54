import ERPCore
import ERPReports
@testable import ERPSimulation
import ERPTransport
import Foundation
import Testing

/// This test process's folder of worlds' folders, removed when the process exits: a folder per
/// world was left in /tmp by every run.
let worldsFolder: String = {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("erp-world-tests-\(getpid())").path
    atexit { try? FileManager.default.removeItem(atPath: worldsFolder) }
    return path
}()

/// A folder of its own for a world's files (a world's simulated disk serves its folder; worlds
/// never share one), inside `worldsFolder`.
func scratchFolder() -> String {
    let path = worldsFolder + "/\(UInt64.random(in: 0...UInt64.max))"
    try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

/// A small world of chatty nodes: each pings the others at random intervals; every step is traced.
func chattyWorldHash(seed: UInt64, randomize: Bool = true) throws -> String {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("erp-sim-\(seed)-\(UInt64.random(in: 0...UInt64.max))").path
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let trace = try SimTrace()
    let world = SimWorld(seed: seed, storageDirectory: directory, trace: trace, randomizeScheduling: randomize)
    world.network.defaultLink = LinkSettings(latencyMin: .milliseconds(1), latencyMax: .milliseconds(5), dropProbability: 0.05,
                                             duplicateProbability: 0.05, reorderProbability: 0.1)
    let names: [NodeName] = ["a", "b", "c", "d"]
    for name in names {
        world.addNode(name) { runtime in PingService(runtime: runtime, peers: names.filter { $0 != name }) }.start()
    }
    world.schedule(at: .milliseconds(300)) { world.crash("b") }
    world.schedule(at: .milliseconds(500)) { world.restart("b") }
    world.schedule(at: .milliseconds(200)) { world.partition("c", "d") }
    world.run(until: .seconds(1))
    return trace.finish()
}

struct Ping: RPCRequest {
    typealias Response = String
    static let method = "ping"
    static let service = ServiceName.gateway
    var n: Int
}

final class PingService: ERPService, @unchecked Sendable {
    static let name = ServiceName.gateway
    let runtime: any Runtime
    let peers: [NodeName]
    init(runtime: any Runtime, peers: [NodeName]) { self.runtime = runtime; self.peers = peers }
    func start() async throws {
        runtime.transport.register(Ping.self) { [runtime] request, _ in
            await runtime.sleep(for: .microseconds(Int64(runtime.random.int(in: 0...500))))
            return "pong \(request.n)"
        }
        for i in 0..<3 {
            runtime.spawn("pinger") { [runtime, peers] in
                var n = 0
                while true {
                    await runtime.sleep(for: .milliseconds(Int64(runtime.random.int(in: 1...20))))
                    n += 1
                    let peer = runtime.random.pick(peers)
                    do {
                        let answer = try await runtime.transport.call(Ping(n: n * 10 + i), to: peer, metadata: runtime.metadata(timeout: .milliseconds(50)))
                        runtime.record("\(runtime.node) got \(answer) from \(peer) id \(runtime.ids.next("x"))")
                    } catch {
                        runtime.record("\(runtime.node) failed \(peer): \(error)")
                    }
                }
            }
        }
    }
}

@Suite struct SimWorldTests {
    @Test func sameSeedSameTraceDifferentSeedDifferentTrace() throws {
        let a = try chattyWorldHash(seed: 7), b = try chattyWorldHash(seed: 7), c = try chattyWorldHash(seed: 8)
        #expect(a == b)
        #expect(a != c)
        #expect(try chattyWorldHash(seed: 7, randomize: false) == chattyWorldHash(seed: 7, randomize: false))
    }

    /// Worlds on several threads at once must not disturb each other (nor the test runner).
    @Test func worldsRunSideBySide() async throws {
        let expected = try chattyWorldHash(seed: 21)
        let hashes = try await withThrowingTaskGroup(of: String.self) { group in
            for _ in 0..<4 { group.addTask { try chattyWorldHash(seed: 21) } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(hashes == Array(repeating: expected, count: 4))
    }

    @Test func timersFireInTimeThenInsertionOrder() throws {
        let world = SimWorld(seed: 1, storageDirectory: scratchFolder(), trace: try SimTrace(enabled: false))
        let log = Log()
        world.schedule(at: .milliseconds(5)) { log.add("b") }
        world.schedule(at: .milliseconds(1)) { log.add("a") }
        world.schedule(at: .milliseconds(5)) { log.add("c") }
        world.run(until: .milliseconds(4))
        #expect(log.entries == ["a"])
        #expect(world.elapsed == .milliseconds(4))
        world.run(until: .seconds(1))
        #expect(log.entries == ["a", "b", "c"])
    }

    @Test func aCrashedNodesTasksVanishAndPausedNodesWait() throws {
        let world = SimWorld(seed: 1, storageDirectory: scratchFolder(), trace: try SimTrace(enabled: false))
        let log = Log()
        let node = world.addNode("n")
        node.start()
        let other = world.addNode("m")
        other.start()
        node.runtime!.spawn("sleeper") { [runtime = node.runtime!] in
            await runtime.sleep(for: .milliseconds(100))
            log.add("woke")
        }
        other.runtime!.spawn("sleeper") { [runtime = other.runtime!] in
            await runtime.sleep(for: .milliseconds(100))
            log.add("m woke at \(world.elapsed.nanoseconds / 1_000_000)")
        }
        world.schedule(at: .milliseconds(50)) { world.crash("n"); world.pause("m") }
        world.schedule(at: .milliseconds(60)) { world.restart("n") }
        world.schedule(at: .milliseconds(250)) { world.resume("m") }
        world.run(until: .seconds(1))
        #expect(log.entries == ["m woke at 250"])
    }

    /// Tasks a world leaves suspended are never resumed, and the runtime keeps them (and the world
    /// they prefer to run on) for the process's life. What the world holds must not stay with it:
    /// a process that runs world after world (shrink, the fuzz harness) grew 4 MB a world.
    @Test func aTornDownWorldLetsGoOfWhatItHolds() throws {
        final class Marker: Sendable {}
        weak var metrics: RequestMetrics?
        weak var waiting: Marker?
        weak var service: PingService?
        weak var leftBehind: SimWorld?
        do {
            let world = SimWorld(seed: 3, storageDirectory: scratchFolder(), trace: try SimTrace())
            leftBehind = world
            let names: [NodeName] = ["a", "b", "c"]
            for name in names {
                world.addNode(name) { runtime in PingService(runtime: runtime, peers: names.filter { $0 != name }) }.start()
            }
            let marker = Marker()
            waiting = marker
            world.schedule(after: .seconds(3600)) { [marker] in _ = marker }
            world.run(until: .milliseconds(300))
            metrics = world.callMetrics
            service = world.node("a")!.instance as? PingService
            #expect(metrics != nil && service != nil && waiting != nil)
            #expect(world.callMetrics!.latencySummaries()["ping"]!.count > 0, "the pingers made calls")
            world.stopAll()
            world.tearDown()
        }
        // The pingers' tasks are suspended for good (each in a sleep or a call); whether or not
        // they keep the world itself alive, they must not keep its metrics or its timers'
        // closures. (The tasks' own frames hold their service.)
        #expect(metrics == nil, "the torn-down world kept its call metrics")
        #expect(waiting == nil, "the torn-down world kept a timer's closure")
        if let world = leftBehind {
            #expect(world.allNodes.allSatisfy { $0.instance == nil && !$0.alive })
            #expect(world.storage == nil)
            print("a torn-down world outlives its last reference (its suspended tasks keep it): \(service != nil ? "and its services" : "not its services")")
        }
    }

    @Test func clockSkewShiftsOneNodesClock() throws {
        let world = SimWorld(seed: 1, storageDirectory: scratchFolder(), trace: try SimTrace(enabled: false))
        let a = world.addNode("a"), b = world.addNode("b")
        a.start(); b.start()
        world.setClockSkew("b", .seconds(2))
        #expect(b.runtime!.clock.now - a.runtime!.clock.now == .seconds(2))
    }

    /// A request's absolute deadline is judged on the receiver's clock (as over ZeroMQ): a node
    /// running 2 s ahead refuses a call with 1 s left as already expired, without serving it.
    @Test func aSkewedReceiverJudgesDeadlinesOnItsOwnClock() throws {
        let world = SimWorld(seed: 5, storageDirectory: scratchFolder(), trace: try SimTrace(enabled: false))
        let log = Log(), served = Log()
        world.addNode("x") { runtime in EchoOnly(runtime: runtime) }.start()
        world.addNode("y") { runtime in CountingEcho(runtime: runtime, served: served) }.start()
        world.run(until: .milliseconds(1))
        let x = world.node("x")!.runtime!
        x.spawn("caller") {
            for skew in [Duration.seconds(2), .zero, .seconds(-2)] {
                world.setClockSkew("y", skew)
                do { _ = try await x.transport.call(Ping(n: 1), to: "y", metadata: x.metadata(timeout: .seconds(1))); log.add("ok") }
                catch { log.add("\(error)") }
            }
        }
        world.run(until: .seconds(10))
        #expect(log.entries == ["deadline exceeded", "ok", "ok"])
        #expect(served.entries.count == 2)
    }

    @Test func partitionsDropAndHealRestores() throws {
        let world = SimWorld(seed: 3, storageDirectory: scratchFolder(), trace: try SimTrace(enabled: false))
        let log = Log()
        for name in ["x", "y"] as [NodeName] {
            world.addNode(name) { runtime in EchoOnly(runtime: runtime) }.start()
        }
        world.run(until: .milliseconds(1))
        world.partitionOneWay(from: "x", to: "y")
        let x = world.node("x")!.runtime!
        x.spawn("caller") {
            for _ in 0..<2 {
                do { _ = try await x.transport.call(Ping(n: 1), to: "y", metadata: x.metadata(timeout: .milliseconds(100))); log.add("ok") }
                catch { log.add("\(error)") }
                world.healPartitionOneWay(from: "x", to: "y")
            }
        }
        world.run(until: .seconds(1))
        #expect(log.entries == ["deadline exceeded", "ok"])
    }

    /// A cut lasts while any fault holds it: a partition healed inside a longer one, or inside an
    /// isolation of one of its ends, leaves the link cut (it opened it, and messages crossed a
    /// partition still in force: a scenario author's trial).
    @Test func aCutLastsWhileAnyFaultHoldsIt() throws {
        let world = SimWorld(seed: 3, storageDirectory: scratchFolder(), trace: try SimTrace(enabled: false))
        for name in ["x", "y", "z"] as [NodeName] { world.addNode(name) { runtime in EchoOnly(runtime: runtime) }.start() }
        let x = world.index(of: "x")!, y = world.index(of: "y")!, z = world.index(of: "z")!
        world.partition("x", "y")
        world.partition("x", "y")
        world.healPartition("x", "y")
        #expect(world.network.isCut(x, y) && world.network.isCut(y, x), "the longer partition still holds")
        world.healPartition("x", "y")
        #expect(!world.network.isCut(x, y) && !world.network.isCut(y, x))
        world.isolate("z")
        world.partition("x", "z")
        world.healPartition("x", "z")
        #expect(world.network.isCut(x, z) && world.network.isCut(z, y), "z is still isolated")
        world.rejoin("z")
        #expect(!world.network.isCut(x, z) && !world.network.isCut(z, y))
        world.partitionOneWay(from: "y", to: "x")
        world.heal()
        #expect(!world.network.isCut(y, x), "the heal phase opens every link")
    }
}

final class EchoOnly: ERPService, @unchecked Sendable {
    static let name = ServiceName.gateway
    let runtime: any Runtime
    init(runtime: any Runtime) { self.runtime = runtime }
    func start() async throws { runtime.transport.register(Ping.self) { request, _ in "pong \(request.n)" } }
}

/// Echoes and notes every request it serves.
final class CountingEcho: ERPService, @unchecked Sendable {
    static let name = ServiceName.gateway
    let runtime: any Runtime
    let served: Log
    init(runtime: any Runtime, served: Log) { self.runtime = runtime; self.served = served }
    func start() async throws {
        runtime.transport.register(Ping.self) { [served] request, _ in
            served.add("\(request.n)")
            return "pong \(request.n)"
        }
    }
}

final class Log: @unchecked Sendable {
    private(set) var entries: [String] = []
    func add(_ s: String) { entries.append(s) }
}
