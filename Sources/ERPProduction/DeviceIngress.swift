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
    /// A device message is small: a frame of more than 64 KiB is a broken or hostile peer, and
    /// libzmq drops its connection.
    public static let messageByteCountMax: Int64 = 64 * 1024
    /// What CURVE wraps each frame in (the `MESSAGE` command, its nonce, flags and MAC), which
    /// libzmq counts against `ZMQ_MAXMSGSIZE`: without it the limit was a 65,503-byte frame.
    static let curveFrameOverhead: Int64 = 33
    /// Messages being handled at once; past it the device is told `overloaded`.
    public static let inFlightCountMax = 1_024
    /// One device's messages waiting or being handled; past it that device's are refused
    /// `overloaded` while the others are served.
    public static let laneCountMax = 64
    /// The refusals' log lines, at most one a second per code.
    private let refusalLog = LogThrottle()

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
        /// Messages waiting behind the one being handled, per device (or per connection whose
        /// key speaks for none): a device's messages are handled in the order they came. A task
        /// per message let a restock overtake the one before it, which was then dropped as stale
        /// and answered `accepted: false`: 5 of 30 pipelined restocks lost in a trial.
        var lanes: [String: [(route: [[UInt8]], frames: [[UInt8]])]] = [:]
        /// Refusals answered, by error code (`/metrics`).
        var refused: [String: Int] = [:]
        /// Per device, the lowest sequence refused for a passing cause (`transientCodes`) and not
        /// handled since: later sequences are refused `resend_from` until it comes again. A
        /// device that pipelined had sequence 66 refused `overloaded` and 81 accepted; 66 sent
        /// again was then stale, answered "applied the first time", and lost (a device developer's
        /// trial: 15 restocked units). Kept in memory: after a restart of the gateway a device
        /// sending again from the refused one, in order, loses nothing either.
        var resendFrom: [String: Int64] = [:]
    }

    /// Refusals that say "not now": the message was not applied and may be sent again.
    static let transientCodes: Set<String> = ["overloaded", "unavailable", "deadline_exceeded"]

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

    /// The device registry as read from its folder: the keys admitted, and what was left out.
    public struct Registry: Sendable {
        public var keys: [(deviceId: String, publicKey: String)] = []
        /// One line per file left out, naming it and why (logged as errors by the door).
        public var problems: [String] = []
    }

    /// Reads the registry: `<deviceId>.pub` in `directory` for every device of the fixtures. A
    /// file that cannot be read or holds no key, a key that two files hold, and a file for a device
    /// the fixtures do not have are left out, each named in `problems`: one bad file once stopped
    /// the IoT gateway at every start (a crash loop locking every device out), and a key copied to
    /// a second device's file silently moved the first device's identity to the second.
    public static func registry(in directory: String, devices: [Fixtures.Device]) -> Registry {
        var registry = Registry()
        var read: [(deviceId: String, file: String, key: String)] = []
        for device in devices {
            let file = directory + "/" + device.id + ".pub"
            guard FileManager.default.fileExists(atPath: file) else { continue }
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
                registry.problems.append("\(file) cannot be read: device \(device.id) not admitted")
                continue
            }
            let key = text.trimmingCharacters(in: .whitespacesAndNewlines)
            guard CurveKeyPair.isValid(key) else {
                registry.problems.append("\(file) holds no CURVE public key (40 Z85 characters): device \(device.id) not admitted")
                continue
            }
            read.append((device.id, file, key))
        }
        var holders: [String: [String]] = [:]
        for entry in read { holders[entry.key, default: []].append(entry.file) }
        for entry in read {
            let files = holders[entry.key]!
            if files.count > 1 {
                if files.first == entry.file {
                    registry.problems.append("\(files.joined(separator: " and ")) hold the same key (\(CallerAuthorization.keyId(entry.key))): "
                                             + "none of these devices admitted, as a key speaks for one device")
                }
                continue
            }
            registry.keys.append((entry.deviceId, entry.key))
        }
        let known = Set(devices.map(\.id))
        let files = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        for name in files.sorted() where name.hasSuffix(".pub") && !known.contains(String(name.dropLast(4))) {
            registry.problems.append("\(directory)/\(name): the fixtures have no device \(name.dropLast(4)); not admitted")
        }
        return registry
    }

    /// How long a device has to finish its CURVE handshake before its connection is closed.
    public static let handshakeTimeout = Duration.seconds(5)

    /// Binds and starts answering devices. Returns the bound endpoint.
    public func start() async throws -> String {
        let context = try ZMQContext()
        let owners = initialOwners
        let throttle = LogThrottle()
        let authenticator = try await ZAPAuthenticator.start(context: context, allowedClientPublicKeys: Set(owners.keys)) { [logger] refusal in
            if let line = throttle.line("zap", "refused a device connection: \(refusal)") { logger.warning("\(line)") }
        }
        let io = try IOThread.start(context: context, name: "device-ingress")
        var options = SocketOptions(security: .curveServer(keyPair: serverKeys, zapDomain: "erp-devices"))
        options.readsUserId = true
        options.messageSizeMax = Self.messageByteCountMax + Self.curveFrameOverhead
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
        // A REQ socket puts an empty frame before the message, and reads its answer only after one:
        // the route back is the identity and that frame.
        let delimited = message.frames.count > 1 && message.frames[1].isEmpty
        let route = delimited ? [identity, []] : [identity]
        let frames = Array(message.frames.dropFirst(route.count))
        let hex: String = identity.map { byte -> String in (byte < 16 ? "0" : "") + String(byte, radix: 16) }.joined()
        enum Admission { case first, queued, refused(String) }
        let (sender, lane, admission) = state.withLock { s -> (String?, String, Admission) in
            let sender = message.userId.flatMap { s.owners[$0] }
            let lane = sender ?? "connection " + hex
            // One device's backlog first: the door's room is shared, and one device pipelining
            // bursts had every other device's heartbeats answered overloaded (a security trial).
            if let waiting = s.lanes[lane]?.count, waiting >= Self.laneCountMax {
                return (sender, lane, .refused("more than \(Self.laneCountMax) of this device's messages are waiting; send later"))
            }
            guard s.inFlight < Self.inFlightCountMax else { return (sender, lane, .refused("too many messages in flight; send later")) }
            s.inFlight += 1
            if s.lanes[lane] != nil { s.lanes[lane]!.append((route, frames)); return (sender, lane, .queued) }
            s.lanes[lane] = []
            return (sender, lane, .first)
        }
        switch admission {
        case .refused(let why):
            count(refusal: "overloaded", sender: sender, key: message.userId)
            // Its sequence, when the body says one: the answer names it (it may come back before
            // the answers to earlier messages), and later ones wait for it to be sent again.
            let sequence = frames.count == 2 ? Self.peekSequence(frames[1]) : nil
            if let sender, let sequence { noteRefused(sequence, of: sender) }
            Task { try? await socket.send(frames: route + [Array(Self.protocolVersion.utf8), Self.refusal("overloaded", why, sequence: sequence)]) }
            return
        case .queued:
            return   // the lane's task takes it in its turn
        case .first:
            break
        }
        Task { [self] in
            var next: (route: [[UInt8]], frames: [[UInt8]])? = (route, frames)
            while let (to, frames) = next {
                let (answer, refusedCode) = await handle(frames, from: sender)
                if let refusedCode { count(refusal: refusedCode, sender: sender, key: message.userId) }
                do { try await socket.send(frames: to + [Array(Self.protocolVersion.utf8), answer]) } catch {
                    logger.debug("answer to a device not sent: \(error)")
                }
                next = state.withLock { s in
                    s.inFlight -= 1
                    guard var waiting = s.lanes[lane], !waiting.isEmpty else { s.lanes[lane] = nil; return nil }
                    let head = waiting.removeFirst()
                    s.lanes[lane] = waiting
                    return head
                }
            }
        }
    }

    /// Sequence `sequence` of `device` was not applied and may come again: later ones wait for it.
    private func noteRefused(_ sequence: Int64, of device: String) {
        state.withLock { s in s.resendFrom[device] = min(s.resendFrom[device] ?? sequence, sequence) }
    }

    /// The refusal of a message past a refused one, or nil when it may be handled. A message at or
    /// below the refused one is handled (the refused one's own outcome decides, in `settle`).
    private func gap(before request: DeviceMessage) -> [UInt8]? {
        guard let from = state.withLock({ $0.resendFrom[request.deviceId] }), request.sequence > from else { return nil }
        return Self.refusal("resend_from", "sequence \(from) was refused and not applied: send again from \(from), in order",
                            sequence: request.sequence, resendFrom: from)
    }

    /// After a message was handled: a passing refusal makes the device wait for it (or for the
    /// lowest such); the refused one handled with any other outcome (applied, stale, refused for
    /// good) ends the wait. Earlier messages still queued when it was refused do not.
    private func settle(_ request: DeviceMessage, refused code: String?) {
        if let code, Self.transientCodes.contains(code) { noteRefused(request.sequence, of: request.deviceId); return }
        state.withLock { s in
            if s.resendFrom[request.deviceId] == request.sequence { s.resendFrom[request.deviceId] = nil }
        }
    }

    /// Counts a refusal by its code, and logs it (at most one line a second per code, with how
    /// many went unlogged): a device speaking for another, or a revoked key still talking, left
    /// no trace before.
    private func count(refusal code: String, sender: String?, key: String?) {
        state.withLock { $0.refused[code, default: 0] += 1 }
        let who = sender.map { "device \($0)" }
            ?? "a connection whose key (\(key.map(CallerAuthorization.keyId) ?? "none")) speaks for no device"
        if let line = refusalLog.line(code, "device door refused a message from \(who): \(code)") { logger.warning("\(line)") }
    }

    /// The door's refusals by code, in Prometheus's text format (served on the IoT gateway's /metrics).
    public func prometheusText() -> String {
        let refused = state.withLock { $0.refused }
        var text = "# HELP erp_device_refusals_total Device messages answered with an error, by code.\n# TYPE erp_device_refusals_total counter\n"
        for code in refused.keys.sorted() { text += "erp_device_refusals_total{code=\"\(code)\"} \(refused[code]!)\n" }
        return text
    }

    /// One request's answer (JSON bytes), and the error code when it is a refusal.
    func handle(_ frames: [[UInt8]], from sender: String?) async -> (answer: [UInt8], refused: String?) {
        guard frames.count == 2, frames[0] == Array(Self.protocolVersion.utf8) else {
            return (Self.refusal("unsupported_version", "send [\"\(Self.protocolVersion)\", JSON]"), "unsupported_version")
        }
        let request: DeviceMessage
        switch Self.parse(frames[1]) {
        case .success(let message): request = message
        case .failure(let refusal): return (refusal.answer, "bad_request")
        }
        // From here a refusal names the message's sequence, so that a device with several in
        // flight knows which one it answers.
        guard let sender else {
            return (Self.refusal("unauthenticated", "this connection's key belongs to no device", sequence: request.sequence), "unauthenticated")
        }
        guard request.deviceId == sender else {
            return (Self.refusal("key_mismatch", "this key belongs to \(sender), not \(request.deviceId)", sequence: request.sequence), "key_mismatch")
        }
        if let refusal = gap(before: request) { return (refusal, "resend_from") }
        let operations = operations
        let sequence = request.sequence
        let answer = await hop {
            let context = CallContext(metadata: CallMetadata(deadline: SystemClock().now + .seconds(2), correlationId: "\(request.deviceId)-\(request.sequence)"),
                                      caller: NodeName("device:" + request.deviceId))
            do {
                let ack: DeviceReportAck
                switch request.type {
                case .status:
                    guard let status = request.status else { return Self.refusal("bad_request", "a status message needs 'status'", sequence: sequence) }
                    ack = try await operations.report(ReportDevice(deviceId: request.deviceId, sequence: request.sequence, status: status), context)
                case .data:
                    guard let dataType = request.dataType, let productId = request.productId, let quantity = request.quantity else {
                        return Self.refusal("bad_request", "a data message needs 'dataType', 'productId' and 'quantity'", sequence: sequence)
                    }
                    ack = try operations.data(ReportDeviceData(deviceId: request.deviceId, sequence: request.sequence, dataType: dataType,
                                                               productId: productId, quantity: quantity), context)
                }
                return (try? JSONCoding.encode(DeviceAnswer(ok: true, sequence: ack.sequence, accepted: ack.accepted,
                                                            confirmedByShop: ack.confirmedByShop, lastSequence: ack.lastSequence))).map { [UInt8]($0) }
                    ?? Self.refusal("internal", "cannot encode the answer", sequence: sequence)
            } catch let error as RPCError {
                switch error {
                case .rejected(let code, let message): return Self.refusal(code, message, sequence: sequence)
                default: return Self.refusal(error.kind, "\(error)", sequence: sequence)
                }
            } catch {
                return Self.refusal("internal", "\(error)", sequence: sequence)
            }
        }
        // Keys are written sorted: a refusal's bytes begin with its error, an answer's with `accepted`.
        let code = answer.starts(with: Self.refusalPrefix) ? Self.code(of: answer) : nil
        settle(request, refused: code)
        return (answer, code)
    }

    /// The `sequence` of a body that may not be a whole device message, for a refusal to name.
    static func peekSequence(_ body: [UInt8]) -> Int64? {
        struct Sequenced: Decodable { var sequence: Int64? }
        return (try? JSONCoding.decode(Sequenced.self, from: Data(body)))?.sequence
    }

    static let refusalPrefix = Array(#"{"error":"#.utf8)

    /// The error code of a refusal's bytes (as `refusal` writes them).
    static func code(of answer: [UInt8]) -> String {
        (try? JSONCoding.decode(DeviceAnswer.self, from: Data(answer)))?.error ?? "internal"
    }

    /// A refusal answered to a device, as its JSON bytes.
    public struct Refusal: Error { public let answer: [UInt8] }

    /// A device message's body, read and checked as far as the door checks it before the service
    /// sees it (its shape for its type): the message, or the refusal to answer. Never traps,
    /// whatever the bytes (the fuzz target `device`).
    public static func parse(_ body: [UInt8]) -> Result<DeviceMessage, Refusal> {
        let request: DeviceMessage
        do { request = try JSONCoding.decode(DeviceMessage.self, from: Data(body)) } catch {
            // Named by its sequence when that much could be read (an unknown type, a quantity of
            // 2.5): the doc promises it once the body could be read.
            return .failure(Refusal(answer: refusal("bad_request", "the body is not a device message: \(error)", sequence: peekSequence(body))))
        }
        switch request.type {
        case .status:
            if request.status == nil {
                return .failure(Refusal(answer: refusal("bad_request", "a status message needs 'status'", sequence: request.sequence)))
            }
        case .data:
            if request.dataType == nil || request.productId == nil || request.quantity == nil {
                return .failure(Refusal(answer: refusal("bad_request", "a data message needs 'dataType', 'productId' and 'quantity'",
                                                        sequence: request.sequence)))
            }
        }
        return .success(request)
    }

    static func refusal(_ code: String, _ message: String, sequence: Int64? = nil, resendFrom: Int64? = nil) -> [UInt8] {
        (try? JSONCoding.encode(DeviceAnswer(ok: false, sequence: sequence, error: code, message: message, resendFrom: resendFrom))).map { [UInt8]($0) }
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
    /// With `accepted: false`: the newest sequence the gateway holds for the device, which a
    /// device whose counter went back (a clock corrected, a reset) must send past.
    public var lastSequence: Int64?
    public var error: String?
    public var message: String?
    /// With error `resend_from`: the refused sequence the device must send again first.
    public var resendFrom: Int64?
    public init(ok: Bool, sequence: Int64? = nil, accepted: Bool? = nil, confirmedByShop: Bool? = nil, lastSequence: Int64? = nil,
                error: String? = nil, message: String? = nil, resendFrom: Int64? = nil) {
        self.ok = ok; self.sequence = sequence; self.accepted = accepted; self.confirmedByShop = confirmedByShop
        self.lastSequence = lastSequence; self.error = error; self.message = message; self.resendFrom = resendFrom
    }
}
