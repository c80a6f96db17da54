import CZeroMQ
import Foundation
import Testing
@testable import ZeroMQ

/// An I/O thread hosted on a `SerialTaskExecutor` (`IOThread.start(context:on:)`): sends from the
/// executor's tasks go straight to libzmq, other threads still use the command queue, and the
/// executor survives its loops stopping or their context terminating.
@Suite("Hosted I/O threads")
struct HostedIOThreadTests {
    /// Runs `body` as a task preferring `executor` and returns its value.
    private func on<T: Sendable>(_ executor: SerialTaskExecutor, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
        try await Task(executorPreference: executor) { try await body() }.value
    }

    @Test("Sends from the executor's tasks are direct, counted and typed; other threads still work")
    func directAndQueuedSends() async throws {
        let context = try ZMQContext()
        let executor = SerialTaskExecutor(name: "hosted")
        let io = try IOThread.start(context: context, name: "hosted-io", on: executor)
        let pull = try await io.open(.pull, options: .plaintext)
        let endpoint = try await pull.bind("tcp://127.0.0.1:*")
        let push = try await io.open(.push, options: .plaintext)
        try await push.connect(endpoint)
        try await waitUntilConnected(push, .tcp)
        try await on(executor) {
            #expect(executor.isCurrent)
            #expect(io.core.loopOnCurrentThread() != nil)
            try await push.send(frames: [bytes("from the executor")])
        }
        #expect(io.core.loopOnCurrentThread() == nil)
        try await push.send(frames: [bytes("from elsewhere")])
        #expect(try await receive(pull).frames == [bytes("from the executor")])
        #expect(try await receive(pull).frames == [bytes("from elsewhere")])
        #expect(push.counters.messagesSent == 2)

        let router = try await io.open(.router, options: .plaintext)
        let error = try await on(executor) { () -> ZeroMQError? in
            do { try await router.send(frames: [bytes("nobody"), bytes("x")]); return nil } catch let error as ZeroMQError { return error }
        }
        #expect(error?.code == .unroutable)
        #expect(router.counters.unroutable == 1)

        await io.stop()
        #expect(pull.isClosed && push.isClosed)
        let late = try await on(executor) { () -> ZeroMQError? in
            do { try await push.send(frames: [bytes("late")]); return nil } catch let error as ZeroMQError { return error }
        }
        #expect(late?.code == .ioThreadStopped)
        // The executor goes on after its loop stopped, and may host another.
        let again = try IOThread.start(context: context, name: "hosted-io-2", on: executor)
        let pair = try await again.open(.pull, options: .plaintext)
        #expect(!pair.isClosed)
        executor.shutdown()
        #expect(pair.isClosed, "shutdown closes the hosted sockets before it returns")
        #expect(await terminate(context))
    }

    @Test("The executor's thread carries the executor's name, as the kernel shows it")
    func threadName() async throws {
        let executor = SerialTaskExecutor(name: "inventory-executor")
        defer { executor.shutdown() }
        let comm = try await on(executor) { try String(contentsOfFile: "/proc/thread-self/comm", encoding: .utf8) }
        #expect(comm == "inventory-execu\n", "the kernel keeps the first 15 bytes")
    }

    @Test("Two loops on one executor; terminating one's context closes its sockets only")
    func terminationUnderAHostingExecutor() async throws {
        let executor = SerialTaskExecutor(name: "hosted")
        let first = try ZMQContext(), second = try ZMQContext()
        let doomed = try IOThread.start(context: first, on: executor)
        let kept = try IOThread.start(context: second, on: executor)
        let a = try await doomed.open(.pull, options: .plaintext)
        _ = try await a.bind("tcp://127.0.0.1:*")
        let b = try await kept.open(.pull, options: .plaintext)
        let endpoint = try await b.bind("tcp://127.0.0.1:*")
        #expect(await terminate(first), "zmq_ctx_term hung with a socket on a hosting executor")
        #expect(await eventually { a.isClosed })
        #expect(!b.isClosed)
        let push = try await kept.open(.push, options: .plaintext)
        try await push.connect(endpoint)
        try await waitUntilConnected(push, .tcp)
        try await on(executor) { try await push.send(frames: [bytes("still here")]) }
        #expect(try await receive(b).frames == [bytes("still here")])
        #expect(try await on(executor) { executor.isCurrent })
        executor.shutdown()
        #expect(b.isClosed && push.isClosed)
        let refused = await #expect(throws: ZeroMQError.self) { _ = try await kept.open(.pull, options: .plaintext) }
        #expect(refused?.code == .ioThreadStopped)
        #expect(throws: ZeroMQError.self) { _ = try IOThread.start(context: second, on: executor) }
        #expect(await terminate(second))
    }
}
