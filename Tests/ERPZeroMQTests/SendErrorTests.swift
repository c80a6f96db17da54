import Foundation
import Testing
@testable import ERPZeroMQ

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
