import Testing
@testable import ZeroMQ

@Suite("Large messages and ZMQ_MAXMSGSIZE")
struct LargeMessageTests {
    @Test("A 1 MiB message arrives whole (no fixed receive buffer)", arguments: [Transport.tcp, .ipc])
    func oneMebibyte(transport: Transport) async throws {
        let fixture = try Fixture()
        let router = try await fixture.io.open(.router, options: .plaintext)
        let endpoint = try await router.bind(try transport.bindEndpoint())
        let dealer = try await fixture.io.open(.dealer, options: .plaintext)
        try await dealer.connect(endpoint)
        try await waitUntilConnected(dealer, transport)

        let large = (0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 8) }
        try await dealer.send(frames: [bytes("header"), large])
        let received = try await receive(router)
        #expect(received.frames.count == 3)
        #expect(received.frames[1] == bytes("header"))
        #expect(received.frames[2].count == 1 << 20)
        #expect(received.frames[2] == large)
        await fixture.finish()
    }

    @Test("A message over ZMQ_MAXMSGSIZE is dropped with its connection; the process and socket go on")
    func overMaximumSize() async throws {
        let fixture = try Fixture()
        var serverOptions = SocketOptions.plaintext
        serverOptions.messageSizeMax = 64 * 1024
        let server = try await fixture.io.open(.router, options: serverOptions)
        let endpoint = try await server.bind("tcp://127.0.0.1:*")
        let client = try await fixture.io.open(.dealer, options: .plaintext)
        try await client.connect(endpoint)
        try await waitUntilConnected(client, .tcp)

        // Sending succeeds: the limit is the receiver's, which closes the connection on reading it.
        try await client.send(frames: [[UInt8](repeating: 7, count: 256 * 1024)])
        let dropped = await eventually { server.counters.disconnects >= 1 }
        #expect(dropped, "the server never dropped the oversized peer: \(server.counters)")
        #expect(server.counters.messagesReceived == 0)

        // The client reconnects (ZMQ_RECONNECT_IVL) and small messages flow again.
        let reconnected = await eventually { client.counters.handshakesSucceeded >= 2 }
        #expect(reconnected, "the client never reconnected: \(client.counters)")
        try await client.send(frames: [bytes("small")])
        let message = try await receive(server)
        #expect(message.frames.last == bytes("small"))
        #expect(server.counters.messagesReceived == 1)
        await fixture.finish()
    }
}
