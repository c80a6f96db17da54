import Testing
@testable import ZeroMQ

@Suite("CURVE and the ZAP authenticator")
struct CurveTests {
    @Test("Key pairs are 40 Z85 characters, random, and the public key derives from the secret")
    func keyPairs() throws {
        let first = try CurveKeyPair.generate()
        let second = try CurveKeyPair.generate()
        #expect(first.publicKey.utf8.count == 40 && first.secretKey.utf8.count == 40)
        #expect(CurveKeyPair.isValid(first.publicKey) && CurveKeyPair.isValid(first.secretKey))
        #expect(first != second)
        #expect(try CurveKeyPair(secretKey: first.secretKey) == first)
        #expect(!first.description.contains(first.secretKey))
        #expect(throws: ZeroMQError.self) { try CurveKeyPair(secretKey: "too short") }
    }

    /// A CURVE server (ROUTER) with an authenticator admitting `allowed`.
    struct Server {
        let fixture: Fixture
        let authenticator: ZAPAuthenticator
        let socket: ZMQSocket
        let endpoint: String
        let keyPair: CurveKeyPair
        let refusals: RefusalLog

        init(allowed: Set<String>) async throws {
            fixture = try Fixture()
            refusals = RefusalLog()
            let log = refusals
            authenticator = try await ZAPAuthenticator.start(
                context: fixture.context, allowedClientPublicKeys: allowed, onRefusal: { log.append($0) }
            )
            keyPair = try CurveKeyPair.generate()
            var options = SocketOptions(security: .curveServer(keyPair: keyPair, zapDomain: "erp-test"))
            // A handshake that stalls fails in 2 s, not libzmq's 30: when the authenticator stops
            // while a client connects, the server's ZAP request may reach a handler that is
            // closing and never be answered; the test waits 10 s for the failure.
            options.handshakeTimeout = .seconds(2)
            socket = try await fixture.io.open(.router, options: options)
            endpoint = try await socket.bind("tcp://127.0.0.1:*")
        }

        func client(_ clientKeys: CurveKeyPair) async throws -> ZMQSocket {
            let client = try await fixture.io.open(.dealer, options: SocketOptions(
                security: .curveClient(keyPair: clientKeys, serverPublicKey: keyPair.publicKey)
            ))
            try await client.connect(endpoint)
            return client
        }

        func finish() async {
            await authenticator.stop()
            await fixture.finish()
        }
    }

    final class RefusalLog: Sendable {
        private let refusals = Locked<[ZAPRefusal]>([])
        func append(_ refusal: ZAPRefusal) { refusals.withLock { $0.append(refusal) } }
        var all: [ZAPRefusal] { refusals.withLock { $0 } }
    }

    @Test("A client whose key is allowed talks both ways, encrypted")
    func allowedClient() async throws {
        let clientKeys = try CurveKeyPair.generate()
        let server = try await Server(allowed: [clientKeys.publicKey])
        let client = try await server.client(clientKeys)
        try await waitUntilConnected(client, .tcp)

        try await client.send(frames: [bytes("secret order")])
        let request = try await receive(server.socket)
        #expect(request.frames.last == bytes("secret order"))
        try await server.socket.send(frames: [request.frames[0], bytes("accepted")])
        #expect(try await receive(client).frames == [bytes("accepted")])

        #expect(server.authenticator.counters.admitted >= 1)
        #expect(server.authenticator.counters.refused == 0)
        #expect(server.refusals.all.isEmpty)
        await server.finish()
    }

    @Test("A client with an unknown key is refused: nothing gets through, the refusal is counted and reported")
    func unknownClient() async throws {
        let allowedKeys = try CurveKeyPair.generate()
        let intruderKeys = try CurveKeyPair.generate()
        let server = try await Server(allowed: [allowedKeys.publicKey])
        let intruder = try await server.client(intruderKeys)

        let refused = await eventually { server.authenticator.counters.refused >= 1 }
        #expect(refused, "the authenticator never refused the intruder")
        // The policy counts a refusal, sends its reply, then reports it: wait for the report too.
        let reported = await eventually { !server.refusals.all.isEmpty }
        #expect(reported, "the refusal was counted but never reported")
        let refusal = try #require(server.refusals.all.first)
        #expect(refusal.clientPublicKey == intruderKeys.publicKey)
        #expect(refusal.mechanism == "CURVE")
        #expect(refusal.domain == "erp-test")
        #expect(refusal.address == "127.0.0.1")
        #expect(await eventually { intruder.counters.authenticationFailures >= 1 })

        // With no completed handshake (ZMQ_IMMEDIATE) every send is refused at once.
        let error = await #expect(throws: ZeroMQError.self) { try await intruder.send(frames: [bytes("let me in")]) }
        #expect(error?.code == .highWaterMark)
        #expect(intruder.counters.handshakesSucceeded == 0)
        await #expect(throws: TestTimeout.self) { _ = try await receive(server.socket, within: .milliseconds(300)) }
        #expect(server.socket.counters.messagesReceived == 0)
        #expect(server.authenticator.counters.admitted == 0)
        await server.finish()
    }

    @Test("Allowing a key later admits it; revoking refuses the next handshake")
    func allowAndRevoke() async throws {
        let clientKeys = try CurveKeyPair.generate()
        let server = try await Server(allowed: [])
        try server.authenticator.allow(clientPublicKey: clientKeys.publicKey)
        let client = try await server.client(clientKeys)
        try await waitUntilConnected(client, .tcp)
        server.authenticator.revoke(clientPublicKey: clientKeys.publicKey)
        let second = try await server.client(clientKeys)
        #expect(await eventually { second.counters.authenticationFailures >= 1 })
        #expect(second.counters.handshakesSucceeded == 0)
        #expect(server.authenticator.counters.admitted == 1)
        await server.finish()
    }

    @Test("After the authenticator stops, an open CURVE server refuses new clients (fails closed)")
    func authenticatorStopped() async throws {
        let clientKeys = try CurveKeyPair.generate()
        let server = try await Server(allowed: [clientKeys.publicKey])
        await server.authenticator.stop()
        let client = try await server.client(clientKeys)
        #expect(await eventually { server.socket.counters.handshakeFailures + client.counters.handshakeFailures
            + client.counters.authenticationFailures >= 1 })
        #expect(client.counters.handshakesSucceeded == 0)
        #expect(server.socket.counters.messagesReceived == 0)
        await server.fixture.finish()
    }

    @Test("A plaintext client cannot talk to a CURVE server")
    func plaintextClientToCurveServer() async throws {
        let server = try await Server(allowed: [])
        let client = try await server.fixture.io.open(.dealer, options: .plaintext)
        try await client.connect(server.endpoint)
        #expect(await eventually { server.socket.counters.handshakeFailures + client.counters.handshakeFailures >= 1 })
        let error = await #expect(throws: ZeroMQError.self) { try await client.send(frames: [bytes("hi")]) }
        #expect(error?.code == .highWaterMark)
        #expect(server.socket.counters.messagesReceived == 0)
        await server.finish()
    }

    @Test("Opening a CURVE server without an authenticator fails closed")
    func curveServerNeedsAuthenticator() async throws {
        let fixture = try Fixture()
        let error = await #expect(throws: ZeroMQError.self) {
            _ = try await fixture.io.open(.router, options: SocketOptions(security: .curveServer(keyPair: try CurveKeyPair.generate())))
        }
        #expect(error?.code == .authenticatorMissing)
        await fixture.finish()
    }

    @Test("A plaintext server admits plaintext clients only because it was asked to, even beside an authenticator")
    func explicitPlaintext() async throws {
        let server = try await Server(allowed: [])
        let plain = try await server.fixture.io.open(.router, options: SocketOptions(security: .plaintext))
        let endpoint = try await plain.bind("tcp://127.0.0.1:*")
        let client = try await server.fixture.io.open(.dealer, options: .plaintext)
        try await client.connect(endpoint)
        try await waitUntilConnected(client, .tcp)
        try await client.send(frames: [bytes("plain")])
        #expect(try await receive(plain).frames.last == bytes("plain"))
        #expect(server.authenticator.counters.refused == 0)
        #expect(server.authenticator.counters.admitted == 0)
        await server.finish()
    }

    @Test("A ZAPAuthenticator is one per context: a second one fails to bind")
    func oneAuthenticatorPerContext() async throws {
        let server = try await Server(allowed: [])
        let error = await #expect(throws: ZeroMQError.self) {
            _ = try await ZAPAuthenticator.start(context: server.fixture.context, allowedClientPublicKeys: [])
        }
        #expect(error?.code == .addressUnavailable)
        await server.finish()
    }

    @Test("ZAP policy decisions follow RFC 27 frames")
    func policy() throws {
        let allowed = try CurveKeyPair.generate()
        let other = try CurveKeyPair.generate()
        let policy = ZAPPolicy(allowed: [allowed.publicKey], onRefusal: { _ in })
        func request(_ mechanism: String, _ credentials: [[UInt8]]) -> [[UInt8]] {
            [bytes("1.0"), bytes("7"), bytes("d"), bytes("127.0.0.1"), [], bytes(mechanism)] + credentials
        }
        let raw = try #require(CurveKeyPair.decode(z85: allowed.publicKey))
        #expect(policy.decide(request("CURVE", [raw])) == .admit(userId: allowed.publicKey))
        let otherRaw = try #require(CurveKeyPair.decode(z85: other.publicKey))
        guard case .refuse(let refusal) = policy.decide(request("CURVE", [otherRaw])) else {
            Issue.record("an unknown key was admitted"); return
        }
        #expect(refusal.clientPublicKey == other.publicKey)
        #expect(policy.decide(request("CURVE", [[1, 2, 3]])) != .admit(userId: ""))
        if case .admit = policy.decide(request("NULL", [])) { Issue.record("NULL admitted") }
        if case .admit = policy.decide(request("PLAIN", [bytes("u"), bytes("p")])) { Issue.record("PLAIN admitted") }
        if case .admit = policy.decide([bytes("2.0"), bytes("1")]) { Issue.record("malformed admitted") }
    }
}
