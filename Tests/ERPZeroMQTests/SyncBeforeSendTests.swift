import ERPCore
import ERPStorage
import ERPTransport
import Foundation
import GRDB
import Logging
import Testing
import ZeroMQTestSupport
@testable import ERPZeroMQ

/// Production's durability (`before-send`): commits do not wait for the disk, and what a node
/// sends waits for a sync, on the barrier's own thread, of what it committed before. The syncs here
/// go through a gate the test opens, so that "not sent yet" can be seen.
@Suite struct SyncBeforeSendTests {
    /// A sync that waits for the test to let it through, and remembers the descriptors it synced.
    final class Gate: @unchecked Sendable {
        let open = DispatchSemaphore(value: 0)
        let entered = Locked(0)
        let synced = Locked<[Int32]>([])
        func sync(_ fd: Int32) -> Int32 {
            entered.withLock { $0 += 1 }
            open.wait()  // pool-exempt: on the barrier's own sync thread
            synced.withLock { $0.append(fd) }
            return 0
        }
    }

    static let migrations: [Migration] = [("t", { db in try db.execute(sql: "CREATE TABLE t (n INTEGER PRIMARY KEY)") })]

    func database(_ label: String) throws -> (ServiceDatabase, cleanUp: () -> Void) {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("erp-sbs-\(label)-\(UInt64.random(in: 0...UInt64.max))").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let db = try ServiceDatabase(path: dir + "/n-t.sqlite", durability: .durable, migrations: Self.migrations)
        return (db, { try? db.close(); try? FileManager.default.removeItem(atPath: dir) })
    }

    /// A barrier whose syncs go through a gate, with a database of its own added to it. `finish`
    /// stops the barrier and removes the database.
    func gatedBarrier(_ label: String) throws -> (gate: Gate, barrier: SyncBeforeSend, db: ServiceDatabase, finish: () -> Void) {
        let gate = Gate()
        let barrier = SyncBeforeSend(name: label, logger: Logger(label: "t"), sync: gate.sync)
        let (db, cleanUp) = try database(label)
        try barrier.add(db)
        return (gate, barrier, db, { barrier.stop(); cleanUp() })
    }

    func insert(_ db: ServiceDatabase, _ n: Int) throws {
        try db.write { try $0.execute(sql: "INSERT INTO t (n) VALUES (?)", arguments: [n]) }
    }

    @Test func aSendWaitsForTheSyncOfWhatWasCommittedBeforeIt() async throws {
        let (gate, barrier, db, finish) = try gatedBarrier("wait")
        defer { finish() }

        await barrier.wait()
        #expect(barrier.syncCount == 0, "nothing committed: nothing to sync, and no wait")

        try insert(db, 1)
        #expect(db.needsSync)
        let done = Locked(false)
        let sender = Task {
            await barrier.wait()
            done.withLock { $0 = true }
        }
        try await Task.sleep(for: .milliseconds(150))
        #expect(!done.withLock { $0 }, "the message left before its commit was durable")
        gate.open.signal()
        await sender.value
        #expect(barrier.syncCount == 1)
        #expect(gate.synced.withLock { $0.count } == 1)

        // Reads commit nothing: the next send does not wait.
        _ = try db.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM t") }
        await barrier.wait()
        #expect(barrier.syncCount == 1)
    }

    /// Commits made while a sync is under way share the next one: one sync per batch, not per commit.
    @Test func commitsDuringASyncShareTheNextOne() async throws {
        let (gate, barrier, db, finish) = try gatedBarrier("batch")
        defer { finish() }

        try insert(db, 1)
        let first = Task { await barrier.wait() }
        // The first batch is with the sync thread, held at the gate.
        let handed = await eventually { gate.entered.withLock { $0 } == 1 }
        #expect(handed)
        var later: [Task<Void, Never>] = []
        for n in 2...6 {
            try insert(db, n)
            later.append(Task { await barrier.wait() })
        }
        for _ in 0..<10 { gate.open.signal() }
        await first.value
        for task in later { await task.value }
        #expect(barrier.syncCount <= 2, "six commits, \(barrier.syncCount) syncs")
        #expect(barrier.syncCount >= 1)
    }

    /// Stopping finishes the sync under way before it returns (the databases close after it),
    /// woken by that sync's end rather than looking again every millisecond.
    @Test func stoppingWaitsForTheSyncUnderWay() async throws {
        let gate = Gate()
        let barrier = SyncBeforeSend(name: "stop", logger: Logger(label: "t"), sync: gate.sync)
        let (db, cleanUp) = try database("stop")
        defer { cleanUp() }
        try barrier.add(db)
        try insert(db, 1)
        let sender = Task { await barrier.wait() }
        #expect(await eventually { gate.entered.withLock { $0 } == 1 })
        let stopped = Locked(false)
        let stopper = Thread {
            barrier.stop()
            stopped.withLock { $0 = true }
        }
        stopper.start()
        try await Task.sleep(for: .milliseconds(150))
        #expect(!stopped.withLock { $0 }, "stop returned while a sync was under way")
        gate.open.signal()
        await sender.value
        #expect(await eventually { stopped.withLock { $0 } })
        #expect(barrier.syncCount == 1)
    }

    /// A failed sync leaves the files' state unknown: the process ends (here, the sync thread),
    /// and the message that waited for it is never sent.
    @Test func aFailedSyncEndsTheProcessAndSendsNothing() async throws {
        let failure = Locked<String?>(nil)
        let barrier = SyncBeforeSend(name: "t", logger: Logger(label: "t"), sync: { _ in EIO }, failed: { why in
            failure.withLock { $0 = why }
            pthread_exit(nil)
        })
        let (db, cleanUp) = try database("fail")
        defer { cleanUp() }
        try barrier.add(db)
        try insert(db, 1)
        let sent = Locked(false)
        _ = Task {
            await barrier.wait()
            sent.withLock { $0 = true }
        }
        let ended = await eventually { failure.withLock { $0 } != nil }
        #expect(ended)
        #expect(failure.withLock { $0 }?.contains("Input/output error") == true)
        try await Task.sleep(for: .milliseconds(100))
        #expect(!sent.withLock { $0 })
    }

    /// Wired into the transport: a handler's reply leaves only after the sync of what it committed.
    @Test func aReplyWaitsForTheSyncOfItsHandlersCommit() async throws {
        let (gate, barrier, db, finish) = try gatedBarrier("reply")
        defer { finish() }  // last: after the transports have stopped asking it for syncs
        let context = try ZMQContext()
        let book = AddressBook()
        let serverExecutor = SerialTaskExecutor(name: "sbs-server"), clientExecutor = SerialTaskExecutor(name: "sbs-client")
        let server = ZeroMQTransport(node: "server", endpoint: "tcp://127.0.0.1:*", addressBook: book, context: context,
                                     security: .plaintext, executor: serverExecutor, syncBeforeSend: barrier)
        let client = ZeroMQTransport(node: "client", endpoint: "tcp://127.0.0.1:*", addressBook: book, context: context,
                                     security: .plaintext, executor: clientExecutor)
        server.register(Shout.self) { request, _ in
            try db.write { try $0.execute(sql: "INSERT INTO t (n) VALUES (?)", arguments: [request.text.count]) }
            return request.text.uppercased()
        }
        let endpoint = try await server.start()
        try await client.start()
        book.set("server", AddressBook.Address(endpoint: endpoint, curvePublicKey: nil))
        book.set(.inventory, servedBy: "server")

        let answer = Locked<String?>(nil)
        let call = Task {
            let reply = try await client.call(Shout(text: "hi"), metadata: CallMetadata(deadline: SystemClock().now + .seconds(5), correlationId: "t"))
            answer.withLock { $0 = reply }
        }
        // The handler committed and its reply asked for the sync, which the gate holds.
        let handed = await eventually { gate.entered.withLock { $0 } == 1 }
        #expect(handed)
        try await Task.sleep(for: .milliseconds(150))
        #expect(answer.withLock { $0 } == nil, "the reply left before the handler's commit was durable")
        gate.open.signal()
        try await call.value
        #expect(answer.withLock { $0 } == "HI")
        #expect(barrier.syncCount == 1)

        await client.stop()
        await server.stop()
        serverExecutor.shutdown()
        clientExecutor.shutdown()
        context.terminate()
    }
}
