import CZeroMQ
import Testing
@testable import ZeroMQ

@Suite("Closing and termination")
struct LifecycleTests {
    @Test("close() ends the inbox, later sends throw socketClosed, close is idempotent")
    func closeSocket() async throws {
        let fixture = try Fixture()
        let pull = try await fixture.io.open(.pull, options: .plaintext)
        _ = try await pull.bind("tcp://127.0.0.1:*")
        await pull.close()
        await pull.close()
        #expect(pull.isClosed)
        var iterator = pull.messages.makeAsyncIterator()
        #expect(await iterator.next() == nil)
        let push = try await fixture.io.open(.push, options: .plaintext)
        await push.close()
        let error = await #expect(throws: ZeroMQError.self) { try await push.send(frames: [bytes("late")]) }
        #expect(error?.code == .socketClosed)
        #expect(push.counters.sendFailures == 1)
        await fixture.finish()
    }

    @Test("With LINGER 0, stop and terminate return at once although messages are still queued")
    func lingerZero() async throws {
        let fixture = try Fixture()
        var options = SocketOptions.plaintext
        options.immediate = false // queue to a peer that never comes
        let dealer = try await fixture.io.open(.dealer, options: options)
        try await dealer.connect("tcp://127.0.0.1:9")
        for _ in 0..<100 { try await dealer.send(frames: [[UInt8](repeating: 1, count: 1024)]) }
        #expect(dealer.counters.messagesSent == 100)
        #expect(try await dealer.integerOption(ZMQ_LINGER) == 0)
        let start = ContinuousClock.now
        await fixture.finish()
        #expect(ContinuousClock.now - start < .seconds(2))
        #expect(dealer.isClosed)
    }

    @Test("Terminating the context under a running I/O thread closes its sockets and stops it")
    func terminateUnderRunningThread() async throws {
        let context = try ZMQContext()
        let io = try IOThread.start(context: context)
        let pull = try await io.open(.pull, options: .plaintext)
        _ = try await pull.bind("tcp://127.0.0.1:*")
        #expect(await terminate(context), "zmq_ctx_term hung with a socket open on a running I/O thread")
        #expect(await eventually { pull.isClosed })
        var iterator = pull.messages.makeAsyncIterator()
        #expect(await iterator.next() == nil)
        let error = await #expect(throws: ZeroMQError.self) { _ = try await io.open(.push, options: .plaintext) }
        #expect(error?.code == .ioThreadStopped)
        await io.stop() // returns at once on a stopped thread
    }

    @Test("stop() closes every socket of the thread; commands after it are refused")
    func stopThread() async throws {
        let fixture = try Fixture()
        let sockets = [
            try await fixture.io.open(.router, options: .plaintext),
            try await fixture.io.open(.dealer, options: .plaintext),
            try await fixture.io.open(.pull, options: .plaintext),
        ]
        await fixture.io.stop()
        #expect(sockets.allSatisfy { $0.isClosed })
        let error = await #expect(throws: ZeroMQError.self) { try await sockets[1].send(frames: [bytes("x")]) }
        #expect(error?.code == .ioThreadStopped)
        await fixture.finish()
    }

    @Test("A cancelled receive returns instead of hanging")
    func cancelledReceive() async throws {
        let fixture = try Fixture()
        let pull = try await fixture.io.open(.pull, options: .plaintext)
        let task = Task { () -> ZMQMessage? in
            var iterator = pull.messages.makeAsyncIterator()
            return await iterator.next()
        }
        try await Task.sleep(for: .milliseconds(50))
        task.cancel()
        #expect(await task.value == nil)
        await fixture.finish()
    }
}
