import CZeroMQ
import Dispatch
import ERPCore
import ERPTransport
import Foundation

/// Measures `ZeroMQTransport` against raw libzmq on loopback TCP, in one run and the shapes of
/// `shared/bench/zmq_raw.c`: (a) sequential RPC round trip with a small payload, (b) pipelined RPC
/// throughput with `window` calls in flight; then the same two with the C API directly (REQ/REP
/// round trip; DEALER/ROUTER with the same window), on dedicated threads and blocking calls.
///
/// The transport's figures include everything a service call pays: JSON encoding of request and
/// response, the header, the pending-call table and deadline timer, and each node's executor (which
/// also hosts the node's sockets, so a call crosses no thread of ours: only libzmq's own).
public struct ZeroMQTransportBenchmark: Sendable {
    public var roundTripCount: Int
    public var pipelinedCount: Int
    public var window: Int
    public var payloadSize: Int

    public init(roundTripCount: Int = 5_000, pipelinedCount: Int = 20_000, window: Int = 100, payloadSize: Int = 64) {
        precondition(roundTripCount >= 1 && pipelinedCount >= window && window >= 1 && payloadSize >= 1)
        self.roundTripCount = roundTripCount
        self.pipelinedCount = pipelinedCount
        self.window = window
        self.payloadSize = payloadSize
    }

    public struct Result: Sendable, CustomStringConvertible {
        public var settings: ZeroMQTransportBenchmark
        /// Mean time of one sequential `ZeroMQTransport.call`.
        public var transportRoundTrip: Duration
        /// Calls completed per second with `window` in flight.
        public var transportPipelinedCallsPerSecond: Double
        /// Mean REQ/REP round trip with the C API.
        public var rawRoundTrip: Duration
        /// DEALER/ROUTER messages echoed per second with `window` in flight, C API.
        public var rawPipelinedCallsPerSecond: Double

        /// How many times slower the transport's round trip is than raw libzmq's.
        public var roundTripRatio: Double { transportRoundTrip.seconds / rawRoundTrip.seconds }
        /// The transport's share of raw libzmq's pipelined throughput (1 = as fast).
        public var pipelinedThroughputRatio: Double { transportPipelinedCallsPerSecond / rawPipelinedCallsPerSecond }

        public var description: String {
            String(format: """
                ZeroMQ transport vs raw libzmq, loopback TCP, %d-byte payload
                  round trip (sequential, %d calls): transport %.1f us, raw REQ/REP %.1f us, transport/raw %.2fx
                  pipelined (window %d, %d calls):    transport %.0f calls/s, raw DEALER/ROUTER %.0f/s, transport/raw %.3f
                """,
                settings.payloadSize, settings.roundTripCount, transportRoundTrip.seconds * 1e6, rawRoundTrip.seconds * 1e6,
                roundTripRatio, settings.window, settings.pipelinedCount, transportPipelinedCallsPerSecond,
                rawPipelinedCallsPerSecond, pipelinedThroughputRatio)
        }
    }

    /// Runs both measurements; blocks the calling thread (everything runs on threads of its own).
    public func run() throws -> Result {
        let transport = try measureTransport()
        let raw = try measureRaw()
        return Result(settings: self, transportRoundTrip: transport.roundTrip,
                      transportPipelinedCallsPerSecond: transport.callsPerSecond,
                      rawRoundTrip: raw.roundTrip, rawPipelinedCallsPerSecond: raw.callsPerSecond)
    }

    // MARK: The transport

    struct BenchEcho: RPCRequest {
        typealias Response = String
        static let method = "bench.echo"
        static let service = ServiceName.inventory
        static let isIdempotent = true
        var text: String
    }

    private func measureTransport() throws -> (roundTrip: Duration, callsPerSecond: Double) {
        let context = try ZMQContext()
        defer { context.terminate() }
        let book = AddressBook()
        let serverExecutor = SerialTaskExecutor(name: "bench-server")
        let clientExecutor = SerialTaskExecutor(name: "bench-client")
        defer {
            serverExecutor.shutdown()
            clientExecutor.shutdown()
        }
        let server = ZeroMQTransport(node: "bench-server", endpoint: "tcp://127.0.0.1:*", addressBook: book, context: context,
                                     security: .plaintext, executor: serverExecutor)
        let client = ZeroMQTransport(node: "bench-client", endpoint: "tcp://127.0.0.1:*", addressBook: book, context: context,
                                     security: .plaintext, executor: clientExecutor)
        server.register(BenchEcho.self) { request, _ in request.text }
        book.set(.inventory, servedBy: "bench-server")
        let text = String(repeating: "x", count: payloadSize)
        let (roundTripCount, pipelinedCount, window) = (self.roundTripCount, self.pipelinedCount, self.window)
        let clock = SystemClock()
        return try Self.blocking(on: clientExecutor) {
            book.set("bench-server", AddressBook.Address(endpoint: try await server.start()))
            try await client.start()
            func metadata() -> CallMetadata { CallMetadata(deadline: clock.now + .seconds(10), correlationId: "bench") }
            for _ in 0..<100 { _ = try await client.call(BenchEcho(text: text), metadata: metadata()) } // connect, warm up
            var start = ContinuousClock.now
            for _ in 0..<roundTripCount { _ = try await client.call(BenchEcho(text: text), metadata: metadata()) }
            let roundTrip = (ContinuousClock.now - start) / roundTripCount
            start = ContinuousClock.now
            try await withThrowingTaskGroup(of: Void.self) { group in
                // `window` callers, each with one call in flight at a time: `window` calls in flight.
                for lane in 0..<window {
                    let share = pipelinedCount / window + (lane < pipelinedCount % window ? 1 : 0)
                    group.addTask {
                        for _ in 0..<share { _ = try await client.call(BenchEcho(text: text), metadata: metadata()) }
                    }
                }
                try await group.waitForAll()
            }
            let elapsed = ContinuousClock.now - start
            await client.stop()
            await server.stop()
            return (roundTrip, Double(pipelinedCount) / elapsed.seconds)
        }
    }

    /// Runs `body` as a task on `executor` and waits for it on the calling thread.
    private static func blocking<T: Sendable>(on executor: SerialTaskExecutor,
                                              _ body: @escaping @Sendable () async throws -> T) throws -> T {
        let box = Locked<Swift.Result<T, any Error>?>(nil)
        let done = DispatchSemaphore(value: 0)
        Task(executorPreference: executor) {
            let outcome: Swift.Result<T, any Error>
            do { outcome = .success(try await body()) } catch { outcome = .failure(error) }
            box.withLock { $0 = outcome }
            done.signal()
        }
        done.wait()
        guard let outcome = box.withLock({ $0 }) else { preconditionFailure("the benchmark task ended without an outcome") }
        return try outcome.get()
    }

    // MARK: Raw libzmq

    private func measureRaw() throws -> (roundTrip: Duration, callsPerSecond: Double) {
        guard let context = zmq_ctx_new() else { throw ZeroMQError.last("zmq_ctx_new") }
        defer { zmq_ctx_term(context) }
        let handle = RawHandle(context)
        var payload = [UInt8](repeating: 1, count: payloadSize)
        var buffer = [UInt8](repeating: 0, count: max(4096, payloadSize))

        // REQ/REP round trip.
        let (repEndpoint, repDone) = try Self.serve(handle, kind: ZMQ_REP, count: roundTripCount) { socket, buffer, _ in
            let received = zmq_recv(socket, &buffer, buffer.count, 0)
            zmq_send(socket, buffer, Int(received), 0)
        }
        guard let request = zmq_socket(context, ZMQ_REQ) else { throw ZeroMQError.last("zmq_socket") }
        zmq_connect(request, repEndpoint)
        var start = ContinuousClock.now
        for _ in 0..<roundTripCount {
            zmq_send(request, &payload, payload.count, 0)
            zmq_recv(request, &buffer, buffer.count, 0)
        }
        let roundTrip = (ContinuousClock.now - start) / roundTripCount
        repDone.wait()
        zmq_close(request)

        // DEALER/ROUTER, `window` in flight.
        let (routerEndpoint, routerDone) = try Self.serve(handle, kind: ZMQ_ROUTER, count: pipelinedCount) { socket, buffer, identity in
            let identityLength = zmq_recv(socket, &identity, identity.count, 0)
            let received = zmq_recv(socket, &buffer, buffer.count, 0)
            zmq_send(socket, identity, Int(identityLength), ZMQ_SNDMORE)
            zmq_send(socket, buffer, Int(received), 0)
        }
        guard let dealer = zmq_socket(context, ZMQ_DEALER) else { throw ZeroMQError.last("zmq_socket") }
        zmq_connect(dealer, routerEndpoint)
        start = ContinuousClock.now
        var sent = 0, received = 0
        while received < pipelinedCount {
            while sent < pipelinedCount && sent - received < window {
                zmq_send(dealer, &payload, payload.count, 0)
                sent += 1
            }
            zmq_recv(dealer, &buffer, buffer.count, 0)
            received += 1
        }
        let elapsed = ContinuousClock.now - start
        routerDone.wait()
        zmq_close(dealer)
        return (roundTrip, Double(pipelinedCount) / elapsed.seconds)
    }

    private struct RawHandle: @unchecked Sendable {
        // @unchecked Sendable: a libzmq context pointer; contexts are thread safe.
        let pointer: UnsafeMutableRawPointer
        init(_ pointer: UnsafeMutableRawPointer) { self.pointer = pointer }
    }

    /// Binds a socket of `kind` on an ephemeral loopback port and serves `count` messages with
    /// `step` on a thread of its own. Returns the endpoint and a semaphore signalled at the end.
    private static func serve(_ context: RawHandle, kind: Int32, count: Int,
                              step: @escaping @Sendable (UnsafeMutableRawPointer, inout [UInt8], inout [UInt8]) -> Void)
        throws -> (String, DispatchSemaphore) {
        guard let socket = zmq_socket(context.pointer, kind) else { throw ZeroMQError.last("zmq_socket") }
        guard zmq_bind(socket, "tcp://127.0.0.1:*") == 0 else {
            zmq_close(socket)
            throw ZeroMQError.last("zmq_bind")
        }
        var text = [CChar](repeating: 0, count: 256)
        var length = text.count
        zmq_getsockopt(socket, ZMQ_LAST_ENDPOINT, &text, &length)
        let endpoint = String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let done = DispatchSemaphore(value: 0)
        let handOver = RawHandle(socket)
        let thread = Thread {
            var buffer = [UInt8](repeating: 0, count: 65_536)
            var identity = [UInt8](repeating: 0, count: 256)
            for _ in 0..<count { step(handOver.pointer, &buffer, &identity) }
            zmq_close(handOver.pointer)
            done.signal()
        }
        thread.start()
        return (endpoint, done)
    }
}
