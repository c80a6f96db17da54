import CZeroMQ

/// Applies `SocketOptions` to a fresh libzmq socket, on its I/O thread, before any bind or connect.
struct SocketConfigurator {
    let handle: UnsafeMutableRawPointer

    /// `ZMQ_ZAP_ENFORCE_DOMAIN` (libzmq 4.3 draft API, so zmq.h does not name it): with it a CURVE
    /// server refuses clients when no ZAP handler answers, instead of admitting them all.
    static let zapEnforceDomain: Int32 = 93

    func apply(_ options: SocketOptions, kind: SocketKind) throws {
        try setInt(ZMQ_LINGER, options.linger.millisecondsInt32, "ZMQ_LINGER")
        try setInt(ZMQ_SNDHWM, Int32(clamping: options.sendHighWaterMark), "ZMQ_SNDHWM")
        try setInt(ZMQ_RCVHWM, Int32(clamping: options.receiveHighWaterMark), "ZMQ_RCVHWM")
        try setInt64(ZMQ_MAXMSGSIZE, options.messageSizeMax, "ZMQ_MAXMSGSIZE")
        if options.heartbeatInterval > .zero {
            try setInt(ZMQ_HEARTBEAT_IVL, options.heartbeatInterval.millisecondsInt32, "ZMQ_HEARTBEAT_IVL")
            try setInt(ZMQ_HEARTBEAT_TIMEOUT, options.heartbeatTimeout.millisecondsInt32, "ZMQ_HEARTBEAT_TIMEOUT")
            try setInt(ZMQ_HEARTBEAT_TTL, options.heartbeatTimeToLive.millisecondsInt32, "ZMQ_HEARTBEAT_TTL")
        }
        try setInt(ZMQ_HANDSHAKE_IVL, options.handshakeTimeout.millisecondsInt32, "ZMQ_HANDSHAKE_IVL")
        try setInt(ZMQ_RECONNECT_IVL, options.reconnectInterval.millisecondsInt32, "ZMQ_RECONNECT_IVL")
        try setInt(ZMQ_RECONNECT_IVL_MAX, options.reconnectIntervalMax.millisecondsInt32, "ZMQ_RECONNECT_IVL_MAX")
        if kind == .router {
            try setInt(ZMQ_ROUTER_MANDATORY, options.routerMandatory ? 1 : 0, "ZMQ_ROUTER_MANDATORY")
        }
        if let routingId = options.routingId {
            try setBytes(ZMQ_ROUTING_ID, routingId, "ZMQ_ROUTING_ID")
        }
        if let immediate = options.immediate {
            try setInt(ZMQ_IMMEDIATE, immediate ? 1 : 0, "ZMQ_IMMEDIATE")
        }
        switch options.security {
        case .plaintext:
            break
        case .curveServer(let keyPair, let zapDomain):
            try requireCurve()
            try setInt(ZMQ_CURVE_SERVER, 1, "ZMQ_CURVE_SERVER")
            try setBytes(ZMQ_CURVE_SECRETKEY, Array(keyPair.secretKey.utf8), "ZMQ_CURVE_SECRETKEY")
            try setBytes(ZMQ_CURVE_PUBLICKEY, Array(keyPair.publicKey.utf8), "ZMQ_CURVE_PUBLICKEY")
            try setBytes(ZMQ_ZAP_DOMAIN, Array(zapDomain.utf8), "ZMQ_ZAP_DOMAIN")
            // Best effort: a libzmq built without the draft API refuses it with EINVAL. The wrapper
            // already refuses to open a CURVE server without an authenticator on the context.
            var one: Int32 = 1
            _ = zmq_setsockopt(handle, Self.zapEnforceDomain, &one, MemoryLayout<Int32>.size)
        case .curveClient(let keyPair, let serverPublicKey):
            try requireCurve()
            try setBytes(ZMQ_CURVE_SERVERKEY, Array(serverPublicKey.utf8), "ZMQ_CURVE_SERVERKEY")
            try setBytes(ZMQ_CURVE_PUBLICKEY, Array(keyPair.publicKey.utf8), "ZMQ_CURVE_PUBLICKEY")
            try setBytes(ZMQ_CURVE_SECRETKEY, Array(keyPair.secretKey.utf8), "ZMQ_CURVE_SECRETKEY")
        }
    }

    func setInt(_ option: Int32, _ value: Int32, _ name: String) throws {
        var value = value
        guard zmq_setsockopt(handle, option, &value, MemoryLayout<Int32>.size) == 0 else {
            throw ZeroMQError.last("zmq_setsockopt(\(name))")
        }
    }

    func setInt64(_ option: Int32, _ value: Int64, _ name: String) throws {
        var value = value
        guard zmq_setsockopt(handle, option, &value, MemoryLayout<Int64>.size) == 0 else {
            throw ZeroMQError.last("zmq_setsockopt(\(name))")
        }
    }

    /// Byte options; CURVE keys go in as their 40 Z85 characters, which libzmq decodes.
    func setBytes(_ option: Int32, _ bytes: [UInt8], _ name: String) throws {
        let result = bytes.withUnsafeBytes { zmq_setsockopt(handle, option, $0.baseAddress, $0.count) }
        guard result == 0 else { throw ZeroMQError.last("zmq_setsockopt(\(name))") }
    }

    private func requireCurve() throws {
        guard ZMQContext.hasCurve else {
            throw ZeroMQError(.curveUnavailable, message: "this libzmq was built without CURVE")
        }
    }
}
