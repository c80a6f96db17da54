import Foundation
import Testing
@testable import ZeroMQ

@Suite("Send errors are typed and counted")
struct SendErrorTests {
    @Test("ROUTER_MANDATORY: sending to an unknown routing id throws unroutable and counts it")
    func unroutable() async throws {
        let fixture = try Fixture()
        let router = try await fixture.io.open(.router, options: .plaintext)
        let endpoint = try await router.bind("tcp://127.0.0.1:*")
        var dealerOptions = SocketOptions.plaintext
        dealerOptions.routingId = bytes("known")
        let dealer = try await fixture.io.open(.dealer, options: dealerOptions)
        try await dealer.connect(endpoint)
        try await waitUntilConnected(dealer, .tcp)
        try await dealer.send(frames: [bytes("hello")])
        _ = try await receive(router)

        let error = await #expect(throws: ZeroMQError.self) {
            try await router.send(frames: [bytes("nobody"), bytes("lost?")])
        }
        #expect(error?.code == .unroutable)
        #expect(error?.errno == EHOSTUNREACH)
        #expect(router.counters.unroutable == 1)
        #expect(router.counters.messagesSent == 0)

        // The known peer is still reachable: the failure was about the id, not the socket.
        try await router.send(frames: [bytes("known"), bytes("fine")])
        #expect(try await receive(dealer).frames == [bytes("fine")])
        #expect(router.counters.messagesSent == 1)
        #expect(router.counters.unroutable == 1)
        await fixture.finish()
    }

    @Test("ZMQ_IMMEDIATE: a send with no connected peer throws highWaterMark at once and counts it")
    func noPeerYet() async throws {
        let fixture = try Fixture()
        let dealer = try await fixture.io.open(.dealer, options: .plaintext)
        // Nobody listens there: with IMMEDIATE (the default for connecting sockets) nothing queues.
        try await dealer.connect("tcp://127.0.0.1:9")
        for _ in 0..<3 {
            let error = await #expect(throws: ZeroMQError.self) { try await dealer.send(frames: [bytes("x")]) }
            #expect(error?.code == .highWaterMark)
        }
        #expect(dealer.counters.highWaterMarkDrops == 3)
        #expect(dealer.counters.messagesSent == 0)
        await fixture.finish()
    }

    @Test("Over the high-water mark sends fail and are counted; every accepted message arrives")
    func highWaterMark() async throws {
        let fixture = try Fixture()
        var pullOptions = SocketOptions.plaintext
        pullOptions.receiveHighWaterMark = 4
        pullOptions.inboxCountMax = 2
        let pull = try await fixture.io.open(.pull, options: pullOptions)
        let endpoint = try await pull.bind(try Transport.inproc.bindEndpoint())
        var pushOptions = SocketOptions.plaintext
        pushOptions.sendHighWaterMark = 4
        let push = try await fixture.io.open(.push, options: pushOptions)
        try await push.connect(endpoint)

        // Nobody reads: the inbox fills, the I/O thread stops reading, the inproc pipe fills.
        var accepted = 0, refused = 0
        for index in 0..<100 {
            do {
                try await push.send(frames: [bytes("\(index)")])
                accepted += 1
            } catch let error as ZeroMQError {
                #expect(error.code == .highWaterMark)
                refused += 1
            }
        }
        #expect(refused > 0)
        #expect(accepted < 20)
        #expect(push.counters.highWaterMarkDrops == refused)
        #expect(push.counters.messagesSent == accepted)

        // Nothing accepted is lost: the consumer gets exactly the accepted messages.
        for _ in 0..<accepted { _ = try await receive(pull) }
        #expect(pull.counters.messagesReceived == accepted)
        #expect(pull.counters.inboxFullPauses >= 1)
        await #expect(throws: TestTimeout.self) { _ = try await receive(pull, within: .milliseconds(200)) }
        await fixture.finish()
    }

    @Test("A full command queue refuses sends with commandQueueFull (counted); close still gets in")
    func commandQueueFull() async throws {
        let context = try ZMQContext()
        let io = try IOThread.start(context: context, commandCountMax: 2)
        // A handler that blocks (never do this outside a test) holds the I/O thread, so commands pile up.
        // The wait's own limit only keeps a failed run from hanging: it must outlast the slowest
        // pool (CI runs this beside simulations that hold both threads of a two-core machine), or
        // the I/O thread drains the queue before the test has looked at it.
        let release = DispatchSemaphore(value: 0)
        defer { release.signal() }
        let entered = DoneFlag()
        let pull = try await io.open(.pull, options: .plaintext, delivery: .handler { message, _ in
            guard message.frames == [bytes("block")] else { return }
            entered.set()
            _ = release.wait(timeout: .now() + 300)  // pool-exempt: on libzmq's I/O thread, on purpose
        })
        let endpoint = try await pull.bind(try Transport.inproc.bindEndpoint())
        let push = try await io.open(.push, options: .plaintext)
        try await push.connect(endpoint)
        try await push.send(frames: [bytes("block")])
        #expect(await eventually { entered.isSet })

        let queued = Task { try await push.send(frames: [bytes("1")]) }
        let queuedToo = Task { try await push.send(frames: [bytes("2")]) }
        #expect(await eventually { io.queuedCommandCount == 2 })
        let error = await #expect(throws: ZeroMQError.self) { try await push.send(frames: [bytes("3")]) }
        #expect(error?.code == .commandQueueFull)
        #expect(push.counters.sendFailures == 1)

        let closing = Task { await push.close() } // over the limit, and still accepted
        #expect(await eventually { io.queuedCommandCount == 3 })
        release.signal()
        try await queued.value
        try await queuedToo.value
        await closing.value
        #expect(push.isClosed)
        #expect(push.counters.messagesSent == 3)
        await io.stop()
        #expect(await terminate(context))
    }

    @Test("An empty message is refused before it reaches libzmq")
    func emptyMessage() async throws {
        let fixture = try Fixture()
        let push = try await fixture.io.open(.push, options: .plaintext)
        let error = await #expect(throws: ZeroMQError.self) { try await push.send(frames: []) }
        #expect(error?.code == .invalidArgument)
        #expect(push.counters.sendFailures == 1)
        await fixture.finish()
    }
}
