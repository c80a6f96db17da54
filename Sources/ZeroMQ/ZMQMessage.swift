/// One multipart message, received or to send, whole: libzmq delivers all frames of a message or
/// none. On a ROUTER socket the first received frame is the sender's routing id, and the first
/// frame sent names the peer to send to.
public struct ZMQMessage: Sendable, Hashable {
    public var frames: [[UInt8]]
    /// On a CURVE server opened with `readsUserId`: the `User-Id` the ZAP handler gave the
    /// sender's connection (the client's public key, Z85), so that a server can tell which key
    /// sent each message. Nil otherwise.
    public var userId: String?

    public init(frames: [[UInt8]], userId: String? = nil) {
        self.frames = frames
        self.userId = userId
    }

    /// The bytes of all frames together.
    public var byteCount: Int { frames.reduce(0) { $0 + $1.count } }
}

/// What happened on one socket, counted by its I/O thread. Every failure the wrapper reports as a
/// thrown `ZeroMQError` is also counted here, so a caller that only logs still leaves a trace.
public struct SocketCounters: Sendable, Hashable, CustomStringConvertible {
    /// Messages libzmq accepted for sending (not delivered: libzmq gives no delivery receipt).
    public var messagesSent = 0
    public var bytesSent = 0
    /// Messages received whole and handed to the inbox or the handler.
    public var messagesReceived = 0
    public var bytesReceived = 0
    /// Sends refused with `unroutable` (ROUTER_MANDATORY: unknown routing id).
    public var unroutable = 0
    /// Sends refused with `highWaterMark` (EAGAIN: over the HWM, or no connected peer yet).
    public var highWaterMarkDrops = 0
    /// Sends refused for any other reason (closed socket, full command queue, invalid state…).
    public var sendFailures = 0
    /// Receive calls that failed with something other than "nothing to read".
    public var receiveFailures = 0
    /// Times the I/O thread stopped reading because the inbox was at `inboxCountMax`.
    public var inboxFullPauses = 0
    /// Connections made (`ZMQ_EVENT_CONNECTED`) or accepted (`ZMQ_EVENT_ACCEPTED`).
    public var connections = 0
    /// Connections lost (`ZMQ_EVENT_DISCONNECTED`): peer gone, heartbeat timeout, or libzmq
    /// dropping a peer that sent a message over `ZMQ_MAXMSGSIZE`.
    public var disconnects = 0
    /// ZMTP handshakes completed (`ZMQ_EVENT_HANDSHAKE_SUCCEEDED`).
    public var handshakesSucceeded = 0
    /// Handshakes refused by authentication (`ZMQ_EVENT_HANDSHAKE_FAILED_AUTH`, ZAP said no).
    public var authenticationFailures = 0
    /// Handshakes that failed otherwise (protocol error, mechanism mismatch, bad keys).
    public var handshakeFailures = 0

    public init() {}

    public var description: String {
        "sent \(messagesSent) (\(bytesSent) B), received \(messagesReceived) (\(bytesReceived) B), "
            + "unroutable \(unroutable), hwm drops \(highWaterMarkDrops), send failures \(sendFailures), "
            + "receive failures \(receiveFailures), connections \(connections), disconnects \(disconnects), "
            + "handshakes \(handshakesSucceeded), auth failures \(authenticationFailures), "
            + "handshake failures \(handshakeFailures)"
    }
}
