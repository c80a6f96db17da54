import ERPReports
import ERPWire
import ERPZeroMQ
import Foundation
import Testing
@testable import ERPProduction

/// The control report, read every second from every process during a run, carries its latency
/// histograms as flat (microseconds, count) pairs, and reads them back as they were.
@Suite struct ControlReportCodingTests {
    static func report() -> ControlReport {
        var transport = TransportCounters()
        transport.callsStarted = 7
        let buckets = [LatencyBucket(microseconds: 95, count: 3), LatencyBucket(microseconds: 1_023, count: 1),
                       LatencyBucket(microseconds: 4_194_303, count: 12)]
        return ControlReport(node: "order", processId: 42, transport: transport, faults: .init(), resilience: [:],
                             rateLimited: 2, callLatency: ["inventory.reserve": buckets, "payment.charge": []],
                             okCallLatency: ["inventory.reserve": Array(buckets.prefix(2))],
                             servedLatency: ["order.create": buckets], ownLatency: [:],
                             heap: HeapUsage(inUseBytes: 10, heldBytes: 20, sqliteBytes: 3, histogramBytes: 4))
    }

    @Test func histogramsGoAsPairsAndComeBackWhole() throws {
        let report = Self.report()
        let bytes = try WireJSON.encode(report)
        let text = String(decoding: bytes, as: UTF8.self)
        #expect(text.contains(#""servedLatency":{"order.create":[95,3,1023,1,4194303,12]}"#), "\(text)")
        #expect(!text.contains("microseconds"))
        #expect(try WireJSON.decode(ControlReport.self, from: bytes) == report)
        var withoutHeap = report
        withoutHeap.heap = nil
        #expect(try WireJSON.decode(ControlReport.self, from: try WireJSON.encode(withoutHeap)) == withoutHeap)
    }

    @Test func anOddCountOfNumbersIsRefused() throws {
        let text = String(decoding: try WireJSON.encode(Self.report()), as: UTF8.self)
            .replacingOccurrences(of: "[95,3,1023,1,4194303,12]}", with: "[95,3,1023]}")
        #expect(throws: DecodingError.self) { try WireJSON.decode(ControlReport.self, from: Array(text.utf8)) }
    }
}
