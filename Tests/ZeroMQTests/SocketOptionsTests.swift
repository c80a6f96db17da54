import CZeroMQ
import Testing
@testable import ZeroMQ

@Suite("Socket defaults")
struct SocketOptionsTests {
    @Test("Every socket gets the deliberate defaults (read back from libzmq)")
    func defaultsApplied() async throws {
        let fixture = try Fixture()
        let router = try await fixture.io.open(.router, options: .plaintext)
        let endpoint = try await router.bind("tcp://127.0.0.1:*")
        let expected: [(Int32, Int64, String)] = [
            (ZMQ_LINGER, 0, "LINGER"),
            (ZMQ_SNDHWM, 1_000, "SNDHWM"),
            (ZMQ_RCVHWM, 1_000, "RCVHWM"),
            (ZMQ_HEARTBEAT_IVL, 1_000, "HEARTBEAT_IVL"),
            (ZMQ_HEARTBEAT_TIMEOUT, 5_000, "HEARTBEAT_TIMEOUT"),
            (ZMQ_HEARTBEAT_TTL, 5_000, "HEARTBEAT_TTL"),
            (ZMQ_HANDSHAKE_IVL, 30_000, "HANDSHAKE_IVL"),
            (ZMQ_RECONNECT_IVL, 100, "RECONNECT_IVL"),
            (ZMQ_RECONNECT_IVL_MAX, 5_000, "RECONNECT_IVL_MAX"),
            (ZMQ_IMMEDIATE, 0, "IMMEDIATE (bound socket)"),
        ]
        for (option, value, name) in expected {
            #expect(try await router.integerOption(option) == value, "\(name)")
        }
        #expect(try await router.integerOption(ZMQ_MAXMSGSIZE, width: 8) == 16 * 1024 * 1024)

        let dealer = try await fixture.io.open(.dealer, options: .plaintext)
        try await dealer.connect(endpoint)
        #expect(try await dealer.integerOption(ZMQ_IMMEDIATE) == 1, "IMMEDIATE on a connecting socket")
        #expect(try await dealer.integerOption(ZMQ_CURVE_SERVER) == 0)
        await fixture.finish()
    }

    @Test("Options given are the options applied")
    func customOptions() async throws {
        let fixture = try Fixture()
        var options = SocketOptions.plaintext
        options.sendHighWaterMark = 10
        options.receiveHighWaterMark = 20
        options.messageSizeMax = 4096
        options.heartbeatInterval = .milliseconds(250)
        options.immediate = false
        let dealer = try await fixture.io.open(.dealer, options: options)
        try await dealer.connect("tcp://127.0.0.1:9")
        #expect(try await dealer.integerOption(ZMQ_SNDHWM) == 10)
        #expect(try await dealer.integerOption(ZMQ_RCVHWM) == 20)
        #expect(try await dealer.integerOption(ZMQ_MAXMSGSIZE, width: 8) == 4096)
        #expect(try await dealer.integerOption(ZMQ_HEARTBEAT_IVL) == 250)
        #expect(try await dealer.integerOption(ZMQ_IMMEDIATE) == 0)
        await fixture.finish()
    }

    @Test("Invalid options are refused before a socket is made")
    func invalidOptions() async throws {
        let fixture = try Fixture()
        var options = SocketOptions.plaintext
        options.routingId = [0, 1]
        var error = await #expect(throws: ZeroMQError.self) { _ = try await fixture.io.open(.dealer, options: options) }
        #expect(error?.code == .invalidArgument)
        options = .plaintext
        options.inboxCountMax = 0
        error = await #expect(throws: ZeroMQError.self) { _ = try await fixture.io.open(.dealer, options: options) }
        #expect(error?.code == .invalidArgument)
        let keys = try CurveKeyPair.generate()
        options = SocketOptions(security: .curveClient(keyPair: keys, serverPublicKey: "not a key"))
        error = await #expect(throws: ZeroMQError.self) { _ = try await fixture.io.open(.dealer, options: options) }
        #expect(error?.code == .invalidArgument)
        await fixture.finish()
    }

    @Test("A CURVE server socket has CURVE_SERVER set")
    func curveServerOption() async throws {
        let fixture = try Fixture()
        let authenticator = try await ZAPAuthenticator.start(context: fixture.context, allowedClientPublicKeys: [])
        let server = try await fixture.io.open(.router, options: SocketOptions(security: .curveServer(keyPair: try CurveKeyPair.generate())))
        #expect(try await server.integerOption(ZMQ_CURVE_SERVER) == 1)
        await authenticator.stop()
        await fixture.finish()
    }
}
