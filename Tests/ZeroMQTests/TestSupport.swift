import Foundation
import Testing
@testable import ZeroMQ
@_exported import ZeroMQTestSupport

/// The transports the wrapper is exercised on: loopback TCP, IPC in a temporary folder, inproc.
enum Transport: String, CaseIterable, CustomTestStringConvertible, Sendable {
    case tcp, ipc, inproc

    var testDescription: String { rawValue }

    /// An endpoint to bind: TCP on an ephemeral loopback port (read back from ZMQ_LAST_ENDPOINT),
    /// IPC in a fresh temporary folder, inproc with a unique name. Parallel tests never collide.
    func bindEndpoint() throws -> String {
        switch self {
        case .tcp:
            return "tcp://127.0.0.1:*"
        case .ipc:
            let folder = ipcFolder + "/\(UUID().uuidString.prefix(8))"
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            return "ipc://\(folder)/s"
        case .inproc:
            return "inproc://test-\(UUID().uuidString)"
        }
    }
}

/// This test process's folder of IPC endpoints (one folder each inside), removed when the process
/// exits: a folder per endpoint in /tmp was left behind by every run.
let ipcFolder: String = {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("erp-zmq-tests-\(getpid())").path
    atexit { try? FileManager.default.removeItem(atPath: ipcFolder) }
    return path
}()

/// Waits for a connecting socket's ZMTP handshake (inproc has none: ready at once). With
/// ZMQ_IMMEDIATE a send before it would fail with `highWaterMark`.
func waitUntilConnected(_ socket: ZMQSocket, _ transport: Transport) async throws {
    if transport == .inproc { return }
    let connected = await eventually { socket.counters.handshakesSucceeded >= 1 }
    if !connected { throw TestTimeout(what: "the handshake of \(socket): \(socket.counters)") }
}

/// Runs the blocking `ZMQContext.terminate()` on its own thread; true if it returned in time.
func terminate(_ context: ZMQContext, within timeout: Duration = .seconds(5)) async -> Bool {
    let done = DoneFlag()
    let thread = Thread { context.terminate(); done.set() }
    thread.start()
    return await eventually(within: timeout) { done.isSet }
}

final class DoneFlag: Sendable {
    private let flag = Locked(false)
    func set() { flag.withLock { $0 = true } }
    var isSet: Bool { flag.withLock { $0 } }
}

/// A context with one I/O thread, torn down (and checked to terminate promptly) by `finish()`.
struct Fixture {
    let context: ZMQContext
    let io: IOThread

    init() throws {
        context = try ZMQContext()
        io = try IOThread.start(context: context, name: "zmq-test")
    }

    func finish(_ others: IOThread...) async {
        await io.stop()
        for other in others { await other.stop() }
        let terminated = await terminate(context)
        #expect(terminated, "zmq_ctx_term did not return within 5 s")
    }
}

func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }
