import Testing
@testable import ZeroMQ

@Suite("Round trips")
struct RoundTripTests {
    @Test("ROUTER/DEALER multipart round trip", arguments: Transport.allCases)
    func routerDealerMultipart(transport: Transport) async throws {
        let fixture = try Fixture()
        let router = try await fixture.io.open(.router, options: .plaintext)
        let endpoint = try await router.bind(try transport.bindEndpoint())
        if transport == .tcp { #expect(endpoint.hasPrefix("tcp://127.0.0.1:") && !endpoint.hasSuffix(":*")) }

        var dealerOptions = SocketOptions.plaintext
        dealerOptions.routingId = bytes("client-1")
        let dealer = try await fixture.io.open(.dealer, options: dealerOptions)
        try await dealer.connect(endpoint)
        try await waitUntilConnected(dealer, transport)

        // An empty frame and every byte value, to show frames are neither merged nor mangled.
        let request: [[UInt8]] = [bytes("orders.create"), [], Array(0...255), bytes("tail")]
        try await dealer.send(frames: request)
        let received = try await receive(router)
        #expect(received.frames == [bytes("client-1")] + request)

        try await router.send(frames: [bytes("client-1"), bytes("ok"), bytes("42")])
        let reply = try await receive(dealer)
        #expect(reply.frames == [bytes("ok"), bytes("42")])

        #expect(dealer.counters.messagesSent == 1)
        #expect(dealer.counters.messagesReceived == 1)
        #expect(router.counters.messagesReceived == 1)
        #expect(router.counters.messagesSent == 1)
        #expect(router.counters.bytesReceived == request.reduce(8) { $0 + $1.count })
        await fixture.finish()
    }

    @Test("PUSH/PULL keeps order and counts every message")
    func pushPull() async throws {
        let fixture = try Fixture()
        let pull = try await fixture.io.open(.pull, options: .plaintext)
        let endpoint = try await pull.bind("tcp://127.0.0.1:*")
        let push = try await fixture.io.open(.push, options: .plaintext)
        try await push.connect(endpoint)
        try await waitUntilConnected(push, .tcp)
        for index in 0..<200 { try await push.send(frames: [bytes("m\(index)")]) }
        for index in 0..<200 {
            let message = try await receive(pull)
            #expect(message.frames == [bytes("m\(index)")])
        }
        #expect(pull.counters.messagesReceived == 200)
        await fixture.finish()
    }

    @Test("REQ/REP answer through a handler on the I/O thread")
    func requestReply() async throws {
        let fixture = try Fixture()
        let reply = try await fixture.io.open(.reply, options: .plaintext, delivery: .handler { message, sender in
            try? sender.send(frames: [bytes("re:")] + message.frames)
        })
        let endpoint = try await reply.bind(try Transport.inproc.bindEndpoint())
        let request = try await fixture.io.open(.request, options: .plaintext)
        try await request.connect(endpoint)
        for index in 0..<3 {
            try await request.send(frames: [bytes("ping \(index)")])
            #expect(try await receive(request).frames == [bytes("re:"), bytes("ping \(index)")])
        }
        #expect(reply.counters.messagesSent == 3)
        await fixture.finish()
    }

    @Test("REP sending before any request is a typed, counted invalidState error")
    func replyOutOfTurn() async throws {
        let fixture = try Fixture()
        let reply = try await fixture.io.open(.reply, options: .plaintext)
        _ = try await reply.bind(try Transport.inproc.bindEndpoint())
        let error = await #expect(throws: ZeroMQError.self) { try await reply.send(frames: [bytes("unasked")]) }
        #expect(error?.code == .invalidState)
        #expect(reply.counters.sendFailures == 1)
        await fixture.finish()
    }
}
