import ERPCore
import ERPServices
import ERPTransport
import Foundation
import Logging
import Testing
import ZeroMQ
import ZeroMQTestSupport
@testable import ERPProduction

/// Stands in for the IoT gateway: accepts every report and remembers who it was for.
final class RecordingDevices: DeviceOperations, @unchecked Sendable {
    let lock = NSLock()
    var reports: [String] = []
    func report(_ request: ReportDevice, _ context: CallContext) async throws -> DeviceReportAck {
        lock.withLock { reports.append("\(request.deviceId) #\(request.sequence) \(request.status.rawValue)") }
        return DeviceReportAck(deviceId: request.deviceId, sequence: request.sequence, accepted: true, confirmedByShop: true)
    }
    func data(_ request: ReportDeviceData, _ context: CallContext) throws -> DeviceReportAck {
        guard request.quantity <= 10 else { throw RPCError.rejected(code: "bad_request", message: "too many") }
        lock.withLock { reports.append("\(request.deviceId) #\(request.sequence) \(request.dataType.rawValue) \(request.quantity)") }
        return DeviceReportAck(deviceId: request.deviceId, sequence: request.sequence, accepted: true, confirmedByShop: false)
    }
}

/// The device protocol over real CURVE sockets: each device speaks with a key of its own and only
/// for itself; an unknown key never gets an answer; bad input gets a typed error, never a crash.
@Suite struct DeviceIngressTests {
    struct Answer: Decodable { var ok: Bool; var accepted: Bool?; var error: String? }

    @Test func devicesSpeakOnlyForThemselvesAndUnknownKeysAreRefused() async throws {
        guard ZMQContext.hasCurve else { return }
        let server = try CurveKeyPair.generate()
        let malmo = try CurveKeyPair.generate(), stockholm = try CurveKeyPair.generate(), stranger = try CurveKeyPair.generate()
        let devices = RecordingDevices()
        let ingress = DeviceIngress(endpoint: "tcp://127.0.0.1:*", serverKeys: server,
                                    deviceKeys: [("device_malmo_01", malmo.publicKey), ("device_stockholm_01", stockholm.publicKey)],
                                    operations: devices, logger: Logger(label: "test"), hop: { body in await body() })
        let endpoint = try await ingress.start()
        let context = try ZMQContext()
        let io = try IOThread.start(context: context, name: "devices")

        func device(_ keys: CurveKeyPair, admitted: Bool = true) async throws -> ZMQSocket {
            let socket = try await io.open(.dealer, options: SocketOptions(security: .curveClient(keyPair: keys, serverPublicKey: server.publicKey)))
            try await socket.connect(endpoint)
            // Sends wait for the CURVE handshake (ZMQ_IMMEDIATE): a refused key never gets one.
            let handshake = await eventually(within: admitted ? .seconds(10) : .seconds(2)) { socket.counters.handshakesSucceeded >= 1 }
            #expect(handshake == admitted)
            return socket
        }
        func exchange(_ socket: ZMQSocket, _ frames: [String], within timeout: Duration = .seconds(10)) async throws -> Answer {
            try await socket.send(frames: frames.map { Array($0.utf8) })
            let reply = try await receive(socket, within: timeout)
            #expect(reply.frames.first == Array("erp-device/1".utf8))
            return try JSONDecoder().decode(Answer.self, from: Data(reply.frames.last ?? []))
        }

        let own = try await device(malmo)
        let status = try await exchange(own, ["erp-device/1", #"{"type":"status","deviceId":"device_malmo_01","sequence":3,"status":"fault"}"#])
        #expect(status.ok && status.accepted == true)
        let restock = try await exchange(own, ["erp-device/1", #"{"type":"data","deviceId":"device_malmo_01","sequence":4,"dataType":"restock","productId":"prod_01","quantity":5}"#])
        #expect(restock.ok && restock.accepted == true)
        // Speaking for another device with one's own key.
        let claim = try await exchange(own, ["erp-device/1", #"{"type":"status","deviceId":"device_stockholm_01","sequence":9,"status":"online"}"#])
        #expect(!claim.ok && claim.error == "key_mismatch")
        // Bad input: each a typed refusal; the door keeps serving.
        #expect(try await exchange(own, ["erp-device/9", "{}"]).error == "unsupported_version")
        #expect(try await exchange(own, ["erp-device/1", "not json"]).error == "bad_request")
        #expect(try await exchange(own, ["erp-device/1", #"{"type":"status","deviceId":"device_malmo_01","sequence":5}"#]).error == "bad_request")
        #expect(try await exchange(own, ["erp-device/1", #"{"type":"data","deviceId":"device_malmo_01","sequence":6,"dataType":"restock","productId":"p","quantity":99}"#]).error == "bad_request")
        // The other device, with its own key.
        let other = try await device(stockholm)
        #expect(try await exchange(other, ["erp-device/1", #"{"type":"status","deviceId":"device_stockholm_01","sequence":1,"status":"online"}"#]).ok)
        #expect(devices.reports == ["device_malmo_01 #3 fault", "device_malmo_01 #4 restock 5", "device_stockholm_01 #1 online"])

        // A key not in the registry never completes a handshake: nothing it sends gets through.
        let unknown = try await device(stranger, admitted: false)
        await #expect(throws: ZeroMQError.self) {
            try await unknown.send(frames: [Array("erp-device/1".utf8), Array(#"{"type":"status","deviceId":"device_malmo_01","sequence":7,"status":"online"}"#.utf8)])
        }
        #expect(devices.reports.count == 3)

        await io.stop()
        context.terminate()
        await ingress.stop()
    }
}
