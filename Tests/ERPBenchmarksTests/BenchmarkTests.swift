import ERPCore
import Foundation
import Testing
import ZeroMQ

/// The wrapper against /work/shared/bench/zmq_raw.c's raw libzmq loops, same shapes: REQ/REP-like
/// round trip, DEALER/ROUTER pipelined RPC (window 100), PUSH/PULL. Off by default (timing on a
/// shared 2-core machine is noise for a pass/fail test); run with
/// `ERP_ZMQ_BENCH=1 swift test --filter BenchmarkTests`.
@Suite("Benchmark", .enabled(if: ProcessInfo.processInfo.environment["ERP_ZMQ_BENCH"] != nil))
struct BenchmarkTests {
    @Test("Loopback TCP: round trip, pipelined RPC, one-way throughput")
    func loopback() async throws {
        let count = Int(ProcessInfo.processInfo.environment["ERP_ZMQ_BENCH_COUNT"] ?? "") ?? 20_000
        let results = try await ZeroMQBenchmark.run(count: count, payloadSize: 64)
        for line in results { print(line) }
    }
}

enum ZeroMQBenchmark {
    static func run(count: Int, payloadSize: Int) async throws -> [String] {
        let context = try ZMQContext()
        let serverThread = try IOThread.start(context: context, name: "bench-server")
        let clientThread = try IOThread.start(context: context, name: "bench-client")
        let payload = [UInt8](repeating: 1, count: payloadSize)
        var lines: [String] = []

        // Echo on the server's I/O thread: ROUTER frames come back out as they came in.
        let echo = try await serverThread.open(.router, options: .plaintext, delivery: .handler { message, sender in
            do { try sender.send(frames: message.frames) } catch { /* counted in the socket's counters */ }
        })
        let endpoint = try await echo.bind("tcp://127.0.0.1:*")
        let dealer = try await clientThread.open(.dealer, options: .plaintext)
        try await dealer.connect(endpoint)
        while dealer.counters.handshakesSucceeded == 0 { try await Task.sleep(for: .milliseconds(5)) }
        var replies = dealer.messages.makeAsyncIterator()

        let roundTrips = max(1, count / 4)
        var start = ContinuousClock.now
        for _ in 0..<roundTrips {
            try await dealer.send(frames: [payload])
            _ = await replies.next()
        }
        var elapsed = ContinuousClock.now - start
        lines.append(String(format: "wrapper_rtt_us %.2f", elapsed.seconds / Double(roundTrips) * 1e6))

        let window = 100
        var sent = 0, received = 0
        start = ContinuousClock.now
        while received < count {
            while sent < count && sent - received < window {
                try await dealer.send(frames: [payload])
                sent += 1
            }
            _ = await replies.next()
            received += 1
        }
        elapsed = ContinuousClock.now - start
        lines.append(String(format: "wrapper_dealer_router_pipelined_rpc_per_s %.0f", Double(count) / elapsed.seconds))

        let pull = try await serverThread.open(.pull, options: .plaintext)
        let pullEndpoint = try await pull.bind("tcp://127.0.0.1:*")
        let push = try await clientThread.open(.push, options: .plaintext)
        try await push.connect(pullEndpoint)
        while push.counters.handshakesSucceeded == 0 { try await Task.sleep(for: .milliseconds(5)) }
        start = ContinuousClock.now
        let consumer = Task {
            var iterator = pull.messages.makeAsyncIterator()
            for _ in 0..<count { _ = await iterator.next() }
        }
        var pushed = 0
        while pushed < count {
            do {
                try await push.send(frames: [payload])
                pushed += 1
            } catch let error as ZeroMQError where error.code == .highWaterMark {
                await Task.yield() // over the HWM: the consumer catches up, then send again
            }
        }
        await consumer.value
        elapsed = ContinuousClock.now - start
        lines.append(String(format: "wrapper_pushpull_msgs_per_s %.0f (hwm refusals %d)",
                            Double(count) / elapsed.seconds, push.counters.highWaterMarkDrops))

        await clientThread.stop()
        await serverThread.stop()
        context.terminate()
        return lines
    }
}
