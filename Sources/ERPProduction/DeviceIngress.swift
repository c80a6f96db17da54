import ERPCore
import ERPServices
import ERPTransport
import ERPZeroMQ
import Foundation
import Logging
import ZeroMQ

/// The IoT gateway's door for real devices (production mode): a CURVE ROUTER on a ZeroMQ context
/// of its own, whose ZAP handler admits only the device registry's keys (one key per device), so
/// a device key opens this door and no other, and a service key does not open this one. Speaks the
/// device protocol of docs/device-protocol.md: a request `["erp-device/1", JSON]`, the same
/// version frame and a JSON answer back. Each message is bound to the key that sent it: a device
/// may speak only for itself. Bad input gets a typed error answer, never a crash.
public final class DeviceIngress: @unchecked Sendable {
    // @unchecked Sendable: every stored property is immutable or locks itself.
    public static let protocolVersion = "erp-device/1"
    /// A device message is small: anything larger is a broken or hostile peer (libzmq drops it).
    public static let messageByteCountMax: Int64 = 64 * 1024
    /// Messages being handled at once; past it the device is told `overloaded`.
    public static let inFlightCountMax = 1_024

    let endpoint: String
    let serverKeys: CurveKeyPair
    /// Device public key (Z85) → device id, as first given; `replaceKeys` changes the live map.
    private let initialOwners: [String: String]
    let operations: any DeviceOperations
    let hop: @Sendable (@escaping @Sendable () async -> [UInt8]) async -> [UInt8]
    let logger: Logger
    private let state = Locked(State())

    struct State {
        var context: ZMQContext?
        var authenticator: ZAPAuthenticator?
        var io: IOThread?
        var socket: ZMQSocket?
        var loop: Task<Void, Never>?
        var inFlight = 0
        /// Device public key (Z85) → device id: who each admitted key speaks for.
        var owners: [String: String] = [:]
    }

    /// `hop` runs the handling on the IoT gateway node's executor, where `operations` lives.
    public init(endpoint: String, serverKeys: CurveKeyPair, deviceKeys: [(deviceId: String, publicKey: String)],
                operations: any DeviceOperations, logger: Logger,
                hop: @escaping @Sendable (@escaping @Sendable () async -> [UInt8]) async -> [UInt8]) {
        self.endpoint = endpoint
        self.serverKeys = serverKeys
        var owners: [String: String] = [:]
        for (deviceId, key) in deviceKeys { owners[key] = deviceId }
        self.initialOwners = owners
        self.operations = operations
        self.logger = logger
        self.hop = hop
    }

    /// Reads the registry: `<deviceId>.pub` in `directory` for every device of the fixtures.
    public static func deviceKeys(in directory: String, devices: [Fixtures.Device]) throws -> [(deviceId: String, publicKey: String)] {
        try devices.compactMap { device in
            let path = directory + "/" + device.id + ".pub"
            guard FileManager.default.fileExists(atPath: path) else { return nil }
            let key = try String(contentsOfFile: path, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
            return (device.id, key)
        }
    }

    /// How long a device has to finish its CURVE handshake before its connection is closed.
    public static let handshakeTimeout = Duration.seconds(5)

    /// Binds and starts answering devices. Returns the bound endpoint.
    public func start() async throws -> String {
        let context = try ZMQContext()
        let owners = initialOwners
        let authenticator = try await ZAPAuthenticator.start(context: context, allowedClientPublicKeys: Set(owners.keys)) { [logger] refusal in
            logger.warning("refused a device connection: \(refusal)")
        }
        let io = try IOThread.start(context: context, name: "device-ingress")
        var options = SocketOptions(security: .curveServer(keyPair: serverKeys, zapDomain: "erp-devices"))
        options.readsUserId = true
        options.messageSizeMax = Self.messageByteCountMax
        // Connections that never finish their handshake hold a descriptor each until this runs
        // out (libzmq has no cap on connections): a trial's 21,000 idle ones reached the
        // process's file limit and kept a real device out for libzmq's default 30 s.
        options.handshakeTimeout = Self.handshakeTimeout
        let socket = try await io.open(.router, options: options)
        let bound = try await socket.bind(endpoint)
        let loop = Task { [self] in
            for await message in socket.messages { accept(message, on: socket) }
        }
        state.withLock { $0 = State(context: context, authenticator: authenticator, io: io, socket: socket, loop: loop, owners: owners) }
        logger.info("device ingress on \(bound) admits \(owners.count) device keys")
        return bound
    }

    /// Makes `deviceKeys` the door's registry on the running door: a new key is admitted at its
    /// next handshake; a removed (or replaced) key is refused at its next connection, and what an
    /// open connection of it still sends is answered `unauthenticated`. Returns how many keys came
    /// and went.
    @discardableResult
    public func replaceKeys(_ deviceKeys: [(deviceId: String, publicKey: String)]) throws -> (added: Int, revoked: Int) {
        var owners: [String: String] = [:]
        for (deviceId, key) in deviceKeys {
            try CurveKeyPair.validate(key, what: "device \(deviceId)'s public key")
            owners[key] = deviceId
        }
        let (authenticator, old) = state.withLock { s in
            let old = s.owners
            s.owners = owners
            return (s.authenticator, old)
        }
        let (added, revoked) = try authenticator?.replaceAllowed(Set(owners.keys)) ?? ([], [])
        let gone: [String] = revoked.map { key in (old[key] ?? "?") + " key " + CallerAuthorization.keyId(key) }
        let detail = gone.isEmpty ? "" : " (" + gone.joined(separator: ", ") + ")"
        logger.info("device keys reloaded: \(owners.count) admitted, \(added.count) added, \(revoked.count) revoked\(detail)")
        return (added.count, revoked.count)
    }

    public func stop() async {
        let taken = state.withLock { s -> State in
            let taken = s
            s = State()
            return taken
        }
        taken.loop?.cancel()
        await taken.socket?.close()
        await taken.io?.stop()
        await taken.authenticator?.stop()
        taken.context?.terminate()
    }

    private func accept(_ message: ZMQMessage, on socket: ZMQSocket) {
        guard let identity = message.frames.first else { return }
        let admitted = state.withLock { s -> Bool in
            guard s.inFlight < Self.inFlightCountMax else { return false }
            s.inFlight += 1
            return true
        }
        guard admitted else {
            Task { try? await socket.send(frames: [identity, Array(Self.protocolVersion.utf8), Self.refusal("overloaded", "too many messages in flight; send later")]) }
            return
        }
        let frames = Array(message.frames.dropFirst())
        let sender = message.userId.flatMap { key in state.withLock { $0.owners[key] } }
        Task { [self] in
            defer { state.withLock { $0.inFlight -= 1 } }
            let answer = await handle(frames, from: sender)
            do { try await socket.send(frames: [identity, Array(Self.protocolVersion.utf8), answer]) } catch {
                logger.debug("answer to a device not sent: \(error)")
            }
        }
    }

    /// One request's answer (JSON bytes).
    func handle(_ frames: [[UInt8]], from sender: String?) async -> [UInt8] {
        guard frames.count == 2, frames[0] == Array(Self.protocolVersion.utf8) else {
            return Self.refusal("unsupported_version", "send [\"\(Self.protocolVersion)\", JSON]")
        }
        let request: DeviceMessage
        switch Self.parse(frames[1]) {
        case .success(let message): request = message
        case .failure(let refusal): return refusal.answer
        }
        guard let sender else { return Self.refusal("unauthenticated", "this connection's key belongs to no device") }
        guard request.deviceId == sender else {
            return Self.refusal("key_mismatch", "this key belongs to \(sender), not \(request.deviceId)")
        }
        let operations = operations
        return await hop {
            let context = CallContext(metadata: CallMetadata(deadline: SystemClock().now + .seconds(2), correlationId: "\(request.deviceId)-\(request.sequence)"),
                                      caller: NodeName("device:" + request.deviceId))
            do {
                let ack: DeviceReportAck
                switch request.type {
                case .status:
                    guard let status = request.status else { return Self.refusal("bad_request", "a status message needs 'status'") }
                    ack = try await operations.report(ReportDevice(deviceId: request.deviceId, sequence: request.sequence, status: status), context)
                case .data:
                    guard let dataType = request.dataType, let productId = request.productId, let quantity = request.quantity else {
                        return Self.refusal("bad_request", "a data message needs 'dataType', 'productId' and 'quantity'")
                    }
                    ack = try operations.data(ReportDeviceData(deviceId: request.deviceId, sequence: request.sequence, dataType: dataType,
                                                               productId: productId, quantity: quantity), context)
                }
                return (try? JSONCoding.encode(DeviceAnswer(ok: true, sequence: ack.sequence, accepted: ack.accepted,
                                                            confirmedByShop: ack.confirmedByShop))).map { [UInt8]($0) }
                    ?? Self.refusal("internal", "cannot encode the answer")
            } catch let error as RPCError {
                switch error {
                case .rejected(let code, let message): return Self.refusal(code, message)
                default: return Self.refusal(error.kind, "\(error)")
                }
            } catch {
                return Self.refusal("internal", "\(error)")
            }
        }
    }

    /// A refusal answered to a device, as its JSON bytes.
    public struct Refusal: Error { public let answer: [UInt8] }

    /// A device message's body, read and checked as far as the door checks it before the service
    /// sees it (its shape for its type): the message, or the refusal to answer. Never traps,
    /// whatever the bytes (the fuzz target `device`).
    public static func parse(_ body: [UInt8]) -> Result<DeviceMessage, Refusal> {
        let request: DeviceMessage
        do { request = try JSONCoding.decode(DeviceMessage.self, from: Data(body)) } catch {
            return .failure(Refusal(answer: refusal("bad_request", "the body is not a device message: \(error)")))
        }
        switch request.type {
        case .status:
            if request.status == nil { return .failure(Refusal(answer: refusal("bad_request", "a status message needs 'status'"))) }
        case .data:
            if request.dataType == nil || request.productId == nil || request.quantity == nil {
                return .failure(Refusal(answer: refusal("bad_request", "a data message needs 'dataType', 'productId' and 'quantity'")))
            }
        }
        return .success(request)
    }

    static func refusal(_ code: String, _ message: String) -> [UInt8] {
        (try? JSONCoding.encode(DeviceAnswer(ok: false, error: code, message: message))).map { [UInt8]($0) }
            ?? Array(#"{"ok":false,"error":"internal"}"#.utf8)
    }
}

/// A device's request (docs/device-protocol.md).
public struct DeviceMessage: Codable, Sendable {
    enum Kind: String, Codable, Sendable { case status, data }
    var type: Kind
    var deviceId: String
    var sequence: Int64
    var status: DeviceStatus?
    var dataType: DeviceDataType?
    var productId: String?
    var quantity: Int?
}

/// The answer to a device (docs/device-protocol.md): what the door sends and a device reads.
public struct DeviceAnswer: Codable, Sendable {
    public var ok: Bool
    public var sequence: Int64?
    public var accepted: Bool?
    public var confirmedByShop: Bool?
    public var error: String?
    public var message: String?
    public init(ok: Bool, sequence: Int64? = nil, accepted: Bool? = nil, confirmedByShop: Bool? = nil, error: String? = nil, message: String? = nil) {
        self.ok = ok; self.sequence = sequence; self.accepted = accepted; self.confirmedByShop = confirmedByShop
        self.error = error; self.message = message
    }
}
