import ERPBenchmarks
import Foundation
import Testing

/// `erp bench transport` with small counts: every shape runs to its end (each echo and call is
/// answered, nothing hangs) and reports figures a reader can use. Not a timing test: the figures
/// are only checked to be measurements (positive, finite), never against a threshold.
@Suite("Transport benchmark")
struct TransportBenchmarkTests {
    @Test("Small run: transport, socket layer and raw libzmq each measured in every round", .timeLimit(.minutes(2)))
    func smallRun() throws {
        let bench = ZeroMQTransportBenchmark(roundTripCount: 40, pipelinedCount: 600, window: 30, payloadSize: 64, rounds: 2)
        let result = try bench.run()
        #expect(result.rounds.count == 2)
        for round in result.rounds {
            for duration in [round.transportRoundTrip, round.socketRoundTrip, round.rawRoundTrip] {
                #expect(duration > .zero && duration < .seconds(1))
            }
            for rate in [round.transportPipelinedCallsPerSecond, round.socketPipelinedMessagesPerSecond, round.rawPipelinedCallsPerSecond] {
                #expect(rate.isFinite && rate > 0)
            }
            // The process's CPU per pipelined call: something, and not absurd (a second per call
            // would mean the sum was not divided by the calls).
            let cpu = round.transportPipelinedCPU
            #expect(cpu.user + cpu.system > .zero && cpu.user + cpu.system < .milliseconds(10), "\(cpu)")
            // Context switches per call: some thread waited at least once in 600 calls (the
            // server between requests), and far fewer than a hundred per call.
            #expect(cpu.contextSwitches > 0 && cpu.contextSwitches < 100 && cpu.minorFaults >= 0, "\(cpu)")
        }
        let text = result.description
        #expect(text.contains("socket layer alone"))
        #expect(text.contains("CPU per pipelined call") && text.contains("context switches / minor page faults"))
        #expect(text.contains("transport/raw"))
        #expect(result.wirePath > .zero)
    }
}
