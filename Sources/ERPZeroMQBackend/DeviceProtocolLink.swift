import ERPCore
import ERPProduction
import ERPScenario
import ERPZeroMQ
import Foundation

/// The devices of `erp run --mode zmq` as real devices: each speaks the device protocol
/// (`erp-device/1`, docs/device-protocol.md) over a DEALER socket of its own with its own CURVE key
/// from the run's device registry, to the IoT gateway's device door, exactly as
/// examples/python/device.py does. The IoT gateway cannot tell them from devices in a shop.
final class DeviceProtocolLink: DeviceLink, @unchecked Sendable {
    // @unchecked Sendable: `sockets` is guarded by `lock`; the rest is immutable.
    let io: IOThread
    let endpoint: String
    let serverPublicKey: String
    let keys: KeyStore
    private let clock = SystemClock()
    private let lock = NSLock()
    private var sockets: [String: ZMQSocket] = [:]
    /// Asked for each message and each answer: whether the network loses it now (an `isolate` of
    /// the IoT gateway).
    let loses: @Sendable () -> Bool
    static let version = "erp-device/1"

    /// `loses`: a device whose message or answer it says is lost hears nothing until its deadline,
    /// as through a cut network and as in simulation.
    init(io: IOThread, endpoint: String, serverPublicKey: String, keys: KeyStore, loses: @escaping @Sendable () -> Bool = { false }) {
        self.io = io
        self.endpoint = endpoint
        self.serverPublicKey = serverPublicKey
        self.keys = keys
        self.loses = loses
    }

    func report(_ request: ReportDevice, metadata: CallMetadata) async throws -> DeviceReportAck {
        try await exchange(request.deviceId, sequence: request.sequence, [
            "type": .string("status"), "deviceId": .string(request.deviceId), "sequence": .int(request.sequence),
            "status": .string(request.status.rawValue),
        ], deadline: metadata.deadline)
    }

    func reportData(_ request: ReportDeviceData, metadata: CallMetadata) async throws -> DeviceReportAck {
        try await exchange(request.deviceId, sequence: request.sequence, [
            "type": .string("data"), "deviceId": .string(request.deviceId), "sequence": .int(request.sequence),
            "dataType": .string(request.dataType.rawValue), "productId": .string(request.productId), "quantity": .int(Int64(request.quantity)),
        ], deadline: metadata.deadline)
    }

    /// The device's socket, opened and connected with its own key at its first message.
    private func socket(of deviceId: String) async throws -> ZMQSocket {
        if let open = lock.withLock({ sockets[deviceId] }) { return open }
        let socket = try await io.open(.dealer, options: SocketOptions(security: .curveClient(keyPair: try keys.keyPair(named: deviceId),
                                                                                              serverPublicKey: serverPublicKey)))
        try await socket.connect(endpoint)
        lock.withLock { sockets[deviceId] = socket }
        return socket
    }

    /// Sends one message and waits for its answer (the one naming its sequence; a late answer to an
    /// earlier message that timed out is skipped) until `deadline`.
    private func exchange(_ deviceId: String, sequence: Int64, _ body: [String: JSONValue], deadline: Timestamp) async throws -> DeviceReportAck {
        if loses() { try await hearNothing(until: deadline, on: clock) }
        let socket = try await socket(of: deviceId)
        try await socket.send(frames: [Array(Self.version.utf8), try JSONCoding.encode(JSONValue.object(body)).map { $0 }])
        while true {
            let remaining = deadline - clock.now
            guard remaining > .zero else { throw RPCError.deadlineExceeded }
            guard let message = await socket.receive(within: remaining) else { throw RPCError.deadlineExceeded }
            // An answer that comes back once the cut has begun is lost on the way.
            if loses() { continue }
            guard message.frames.count == 2, message.frames[0] == Array(Self.version.utf8) else {
                throw RPCError.rejected(code: "bad_response", message: "the device door answered \(message.frames.count) frames")
            }
            let answer = try JSONDecoder().decode(DeviceAnswer.self, from: Data(message.frames[1]))
            guard answer.ok else {
                let code = answer.error ?? "error"
                switch code {
                case "unavailable", "overloaded": throw RPCError.unavailable(answer.message ?? code)
                case "deadline_exceeded": throw RPCError.deadlineExceeded
                default: throw RPCError.rejected(code: code, message: answer.message ?? "")
                }
            }
            guard answer.sequence == sequence else { continue }
            return DeviceReportAck(deviceId: deviceId, sequence: sequence, accepted: answer.accepted ?? false,
                                   confirmedByShop: answer.confirmedByShop ?? false)
        }
    }

    func close() async {
        let all = lock.withLock { () -> [ZMQSocket] in
            let all = Array(sockets.values)
            sockets = [:]
            return all
        }
        for socket in all { await socket.close() }
    }
}
