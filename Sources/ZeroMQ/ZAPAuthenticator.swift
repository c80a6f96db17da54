
/// One client the authenticator turned away, for logging.
public struct ZAPRefusal: Sendable, Hashable, CustomStringConvertible {
    /// The server socket's `ZMQ_ZAP_DOMAIN`.
    public var domain: String
    /// The client's network address as libzmq saw it (an IP for TCP).
    public var address: String
    /// The ZMTP security mechanism the client used: `CURVE`, `NULL`, `PLAIN`…
    public var mechanism: String
    /// The client's CURVE public key in Z85, when it presented one.
    public var clientPublicKey: String?
    public var reason: String

    public var description: String {
        // The key by its first eight characters, as every other log line names keys.
        "ZAP refused \(mechanism) client \(clientPublicKey.map { "key " + String($0.prefix(8)) } ?? "without a key") from \(address) in domain \(domain): \(reason)"
    }
}

/// What the authenticator decided so far.
public struct ZAPCounters: Sendable, Hashable {
    public var admitted = 0
    public var refused = 0
    /// Replies the REP socket could not send (libzmq then fails the handshake: the client is
    /// refused anyway).
    public var replyFailures = 0
}

/// The ZAP handler (ZeroMQ RFC 27) of one context: a REP socket bound to
/// `inproc://zeromq.zap.01`, on its own I/O thread, that libzmq asks about every client of a CURVE
/// server in this context. It admits a client only when its public key is in the allow-list;
/// every refusal is counted and passed to `onRefusal`. Clients of other mechanisms are refused:
/// plaintext servers never consult it (the wrapper sets no ZAP domain on them).
///
/// Start it before opening CURVE servers (opening one without it throws `authenticatorMissing`),
/// and stop it after closing them. One per context.
public final class ZAPAuthenticator: Sendable {
    /// The address RFC 27 fixes for the handler.
    public static let endpoint = "inproc://zeromq.zap.01"

    private let context: ZMQContext
    private let policy: ZAPPolicy
    private let ioThread: IOThread
    private let socket: ZMQSocket

    private init(context: ZMQContext, policy: ZAPPolicy, ioThread: IOThread, socket: ZMQSocket) {
        self.context = context
        self.policy = policy
        self.ioThread = ioThread
        self.socket = socket
    }

    /// Starts the handler on its own I/O thread and binds it.
    /// - Parameters:
    ///   - allowedClientPublicKeys: Z85 CURVE public keys of the clients to admit.
    ///   - onRefusal: called on the authenticator's thread for each refusal; keep it quick (log it).
    public static func start(
        context: ZMQContext,
        allowedClientPublicKeys: Set<String>,
        onRefusal: @escaping @Sendable (ZAPRefusal) -> Void = { _ in }
    ) async throws -> ZAPAuthenticator {
        for key in allowedClientPublicKeys { try CurveKeyPair.validate(key, what: "client public key") }
        let policy = ZAPPolicy(allowed: allowedClientPublicKeys, onRefusal: onRefusal)
        let ioThread = try IOThread.start(context: context, name: "zmq-zap")
        do {
            // Plaintext on purpose: an inproc socket inside the process, which ZAP itself never sees.
            let socket = try await ioThread.open(.reply, options: .plaintext, delivery: .handler { request, sender in
                policy.answer(request, with: sender)
            })
            try await socket.bind(endpoint)
            let authenticator = ZAPAuthenticator(context: context, policy: policy, ioThread: ioThread, socket: socket)
            context.authenticatorStarted(id: ObjectIdentifier(authenticator))
            return authenticator
        } catch {
            await ioThread.stop()
            throw error
        }
    }

    /// Admits `clientPublicKey` (Z85) from the next handshake on.
    public func allow(clientPublicKey: String) throws {
        try CurveKeyPair.validate(clientPublicKey, what: "client public key")
        policy.state.withLock { _ = $0.allowed.insert(clientPublicKey) }
    }

    /// Refuses `clientPublicKey` from the next handshake on (connections already made stay).
    public func revoke(clientPublicKey: String) {
        policy.state.withLock { _ = $0.allowed.remove(clientPublicKey) }
    }

    public var allowedClientPublicKeys: Set<String> { policy.state.withLock { $0.allowed } }

    /// Makes `keys` the allow-list, all at once, from the next handshake on (connections already
    /// made stay). Returns the keys that came and went, sorted. Nothing changes if a key is invalid.
    @discardableResult
    public func replaceAllowed(_ keys: Set<String>) throws -> (added: [String], revoked: [String]) {
        for key in keys { try CurveKeyPair.validate(key, what: "client public key") }
        return policy.state.withLock { s in
            let change = (added: keys.subtracting(s.allowed).sorted(), revoked: s.allowed.subtracting(keys).sorted())
            s.allowed = keys
            return change
        }
    }

    public var counters: ZAPCounters { policy.state.withLock { $0.counters } }

    /// Unbinds the handler and stops its thread. CURVE servers still open then refuse every new
    /// client (`ZMQ_ZAP_ENFORCE_DOMAIN`, where libzmq has it).
    public func stop() async {
        context.authenticatorStopped(id: ObjectIdentifier(self))
        await ioThread.stop()
    }

    deinit {
        // Dropped without stop(): its I/O thread stops with the last handle (IOThread's deinit);
        // the context must stop counting on it so new CURVE servers fail closed.
        context.authenticatorStopped(id: ObjectIdentifier(self))
    }
}

/// The decision logic, apart from the socket so it reads as RFC 27 says.
final class ZAPPolicy: Sendable {
    struct State {
        var allowed: Set<String>
        var counters = ZAPCounters()
    }

    let state: Locked<State>
    private let onRefusal: @Sendable (ZAPRefusal) -> Void

    init(allowed: Set<String>, onRefusal: @escaping @Sendable (ZAPRefusal) -> Void) {
        self.state = Locked(State(allowed: allowed))
        self.onRefusal = onRefusal
    }

    enum Decision: Equatable {
        case admit(userId: String)
        case refuse(ZAPRefusal)
    }

    /// Decides on one ZAP request (frames after the REP envelope):
    /// version, request id, domain, address, routing id, mechanism, credentials…
    func decide(_ frames: [[UInt8]]) -> Decision {
        func text(_ index: Int) -> String {
            index < frames.count ? String(decoding: frames[index], as: UTF8.self) : ""
        }
        let domain = text(2), address = text(3), mechanism = text(5)
        func refuse(_ reason: String, key: String? = nil) -> Decision {
            .refuse(ZAPRefusal(domain: domain, address: address, mechanism: mechanism, clientPublicKey: key, reason: reason))
        }
        guard frames.count >= 6, text(0) == "1.0" else { return refuse("malformed ZAP request") }
        switch mechanism {
        case "CURVE":
            guard frames.count >= 7, let key = CurveKeyPair.encode(raw: frames[6]) else {
                return refuse("CURVE request without a 32-byte client key")
            }
            let allowed = state.withLock { $0.allowed.contains(key) }
            return allowed ? .admit(userId: key) : refuse("client key not in the allow-list", key: key)
        default:
            // NULL reaches ZAP only if a plaintext socket was given a ZAP domain; PLAIN and GSSAPI
            // are not offered by the wrapper. Fail closed.
            return refuse("mechanism \(mechanism) is not admitted")
        }
    }

    func answer(_ request: ZMQMessage, with sender: InlineSender) {
        let frames = request.frames
        let requestId = frames.count > 1 ? frames[1] : []
        let decision = decide(frames)
        let reply: [[UInt8]]
        switch decision {
        case .admit(let userId):
            state.withLock { $0.counters.admitted += 1 }
            reply = [Array("1.0".utf8), requestId, Array("200".utf8), Array("OK".utf8), Array(userId.utf8), []]
        case .refuse(let refusal):
            state.withLock { $0.counters.refused += 1 }
            reply = [Array("1.0".utf8), requestId, Array("400".utf8), Array(refusal.reason.utf8), [], []]
        }
        do {
            try sender.send(frames: reply)
        } catch {
            // No caller on this thread to throw to: count it (the REP socket's counters have it too).
            state.withLock { $0.counters.replyFailures += 1 }
        }
        if case .refuse(let refusal) = decision { onRefusal(refusal) }
    }
}
