import CZeroMQ

/// The socket types the wrapper offers (libzmq's names in the comments).
public enum SocketKind: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    /// `ZMQ_ROUTER`: the first frame of every message is the peer's routing id.
    case router
    /// `ZMQ_DEALER`: asynchronous request side of RPC; load-balances over its peers.
    case dealer
    /// `ZMQ_REQ`: strict send/receive alternation.
    case request
    /// `ZMQ_REP`: strict receive/send alternation.
    case reply
    /// `ZMQ_PUSH`: one-way, load-balanced.
    case push
    /// `ZMQ_PULL`: one-way, fair-queued.
    case pull
    /// `ZMQ_PAIR`: exclusive pair (inproc signalling).
    case pair

    var rawType: Int32 {
        switch self {
        case .router: ZMQ_ROUTER
        case .dealer: ZMQ_DEALER
        case .request: ZMQ_REQ
        case .reply: ZMQ_REP
        case .push: ZMQ_PUSH
        case .pull: ZMQ_PULL
        case .pair: ZMQ_PAIR
        }
    }

    /// Whether the socket type can receive at all (a PUSH socket is never polled for input).
    var canReceive: Bool { self != .push }

    public var description: String { rawValue }
}

/// How a socket authenticates and encrypts. There is no default: plaintext must be asked for.
public enum ZMQSecurity: Sendable, Hashable {
    /// ZMTP NULL mechanism: no encryption, no authentication. Only when the caller asks for it.
    case plaintext
    /// CURVE server (`ZMQ_CURVE_SERVER` 1, its own key pair). `ZMQ_ZAP_DOMAIN` is set to
    /// `zapDomain` and every client is checked by the context's `ZAPAuthenticator`; opening a
    /// CURVE server on a context without one throws `authenticatorMissing`.
    case curveServer(keyPair: CurveKeyPair, zapDomain: String = "erp")
    /// CURVE client: its own key pair and the server's public key (Z85).
    case curveClient(keyPair: CurveKeyPair, serverPublicKey: String)
}

/// The options applied to a socket when it is opened, before any bind or connect. Every field has
/// a deliberate default except `security`; see docs/zeromq-wrapper.md for why each one is set.
public struct SocketOptions: Sendable, Hashable {
    public var security: ZMQSecurity
    /// `ZMQ_LINGER`: how long unsent messages are kept after close. Zero so that close and
    /// context termination never hang; delivery guarantees belong to the layer above.
    public var linger: Duration = .zero
    /// `ZMQ_SNDHWM`, in messages: beyond it sends fail with `highWaterMark` (never block).
    public var sendHighWaterMark: Int = 1_000
    /// `ZMQ_RCVHWM`, in messages.
    public var receiveHighWaterMark: Int = 1_000
    /// `ZMQ_MAXMSGSIZE`, in bytes: a peer sending a bigger message is disconnected by libzmq.
    public var messageSizeMax: Int64 = 16 * 1024 * 1024
    /// `ZMQ_HEARTBEAT_IVL`: ZMTP PING period. Zero turns heartbeats off.
    public var heartbeatInterval: Duration = .seconds(1)
    /// `ZMQ_HEARTBEAT_TIMEOUT`: a connection with no traffic this long after a PING is closed.
    public var heartbeatTimeout: Duration = .seconds(5)
    /// `ZMQ_HEARTBEAT_TTL`: told to the peer, which closes the connection after this long with
    /// no traffic from us (libzmq keeps it in tenths of a second).
    public var heartbeatTimeToLive: Duration = .seconds(5)
    /// `ZMQ_HANDSHAKE_IVL`: a connection whose ZMTP handshake (CURVE and its ZAP check included)
    /// has not completed in this long is closed and counted as a handshake failure. libzmq's own
    /// default; zero waits for ever.
    public var handshakeTimeout: Duration = .seconds(30)
    /// `ZMQ_RECONNECT_IVL`: first reconnect delay.
    public var reconnectInterval: Duration = .milliseconds(100)
    /// `ZMQ_RECONNECT_IVL_MAX`: the exponential backoff stops growing here.
    public var reconnectIntervalMax: Duration = .seconds(5)
    /// `ZMQ_IMMEDIATE`: queue messages only to peers whose connection is complete. `nil` means
    /// "on for sockets that connect", which is applied at the first `connect`.
    public var immediate: Bool? = nil
    /// `ZMQ_ROUTER_MANDATORY` on ROUTER sockets: an unknown routing id is an error
    /// (`unroutable`), not a silent drop.
    public var routerMandatory: Bool = true
    /// `ZMQ_ROUTING_ID`: this socket's identity as seen by a ROUTER peer (1 to 255 bytes).
    public var routingId: [UInt8]? = nil
    /// For `.stream` delivery: the number of received messages held for the consumer. When full,
    /// the I/O thread stops reading the socket, so libzmq's `ZMQ_RCVHWM` and TCP push back on the
    /// sender instead of the process growing without bound.
    public var inboxCountMax: Int = 4_096
    /// Read each received message's `User-Id` property into `ZMQMessage.userId` (one libzmq call
    /// per message; off by default). A CURVE server uses it to know which client key sent what.
    public var readsUserId = false

    public init(security: ZMQSecurity) {
        self.security = security
    }

    /// Plaintext options, spelled out at the call site on purpose.
    public static var plaintext: SocketOptions { SocketOptions(security: .plaintext) }
}

extension SocketOptions {
    /// Throws `invalidArgument` for values libzmq would refuse or the wrapper cannot honour.
    func validate(for kind: SocketKind) throws {
        func check(_ condition: Bool, _ what: String) throws {
            if !condition { throw ZeroMQError(.invalidArgument, message: "SocketOptions: \(what)") }
        }
        try check(linger >= .zero, "linger is not negative")
        try check(sendHighWaterMark >= 0 && receiveHighWaterMark >= 0, "high-water marks are not negative (0 = none)")
        try check(messageSizeMax >= 1, "messageSizeMax is at least 1 byte")
        try check(heartbeatInterval >= .zero && heartbeatTimeout >= .zero, "heartbeat durations are not negative")
        // libzmq keeps the TTL in tenths of a second in 16 bits.
        try check(heartbeatTimeToLive >= .zero && heartbeatTimeToLive <= .milliseconds(6_553_599), "heartbeatTimeToLive is 0…6553.599 s")
        try check(reconnectInterval >= .zero && reconnectIntervalMax >= .zero, "reconnect intervals are not negative")
        try check(handshakeTimeout >= .zero, "handshakeTimeout is not negative")
        try check(inboxCountMax >= 1, "inboxCountMax is at least 1")
        if let routingId {
            // Routing ids starting with a zero byte are reserved by libzmq for generated ids.
            try check((1...255).contains(routingId.count) && routingId[0] != 0, "routingId is 1…255 bytes, not starting with 0")
        }
        switch security {
        case .plaintext:
            break
        case .curveServer(let keyPair, let zapDomain):
            try CurveKeyPair.validate(keyPair.secretKey, what: "secret key")
            try CurveKeyPair.validate(keyPair.publicKey, what: "public key")
            try check(!zapDomain.isEmpty && zapDomain.utf8.count <= 254, "zapDomain is 1…254 bytes")
        case .curveClient(let keyPair, let serverPublicKey):
            try CurveKeyPair.validate(keyPair.secretKey, what: "secret key")
            try CurveKeyPair.validate(keyPair.publicKey, what: "public key")
            try CurveKeyPair.validate(serverPublicKey, what: "server public key")
        }
    }
}

extension Duration {
    /// Whole milliseconds (truncated), clamped to `Int32` as libzmq's int options and `zmq_poll`
    /// want them.
    var millisecondsInt32: Int32 { milliseconds(roundingUp: false) }

    /// The same, rounded up: a poll that wakes before a deadline would only spin until it.
    var millisecondsInt32RoundedUp: Int32 { milliseconds(roundingUp: true) }

    private func milliseconds(roundingUp: Bool) -> Int32 {
        let (seconds, attoseconds) = components
        // Beyond ±3,000,000 s the result is past Int32's milliseconds (±24.8 days) anyway: clamping
        // first keeps the arithmetic from overflowing for any Duration.
        let whole = Swift.max(-3_000_000, Swift.min(3_000_000, seconds)) * 1_000
        let attosecondsPerMillisecond: Int64 = 1_000_000_000_000_000
        var fraction = attoseconds / attosecondsPerMillisecond
        if roundingUp && attoseconds % attosecondsPerMillisecond > 0 { fraction += 1 }
        return Int32(clamping: whole + fraction)
    }
}
