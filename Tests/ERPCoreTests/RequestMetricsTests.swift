import ERPReports
import Testing

@Suite struct RequestMetricsTests {
    @Test func prometheusTextCountsByKeyAndOutcomeWithPercentiles() {
        let metrics = RequestMetrics(counterName: "erp_rpc_served_total", durationName: "erp_rpc_served_duration_ms",
                                     help: "h", keyLabel: "method", outcomeLabel: "outcome")
        for ms in 1...100 { metrics.record("inventory.reserveStock", outcome: "ok", latency: .milliseconds(ms)) }
        metrics.record("inventory.reserveStock", outcome: "rejected:out_of_stock", latency: .milliseconds(1))
        metrics.record(#"odd"name"#, outcome: "ok", latency: .zero)
        let text = metrics.prometheusText()
        #expect(text.contains(#"erp_rpc_served_total{method="inventory.reserveStock",outcome="ok"} 100"#))
        #expect(text.contains(#"erp_rpc_served_total{method="inventory.reserveStock",outcome="rejected:out_of_stock"} 1"#))
        #expect(text.contains(#"erp_rpc_served_duration_ms_count{method="inventory.reserveStock"} 101"#))
        #expect(text.contains(#"erp_rpc_served_total{method="odd\"name",outcome="ok"} 1"#), "label values must be escaped")
        #expect(text.contains("# TYPE erp_rpc_served_total counter") && text.contains("# TYPE erp_rpc_served_duration_ms summary"))
        let p99 = metrics.latencySummaries()["inventory.reserveStock"]!.p99
        #expect(p99 >= 98 && p99 <= 101, "p99 of 1...100 ms was \(p99)")
    }

    /// Series past `slotCountMax` are counted together under `other`: a key from outside recorded
    /// by mistake (a method name off the wire, 100,000 of them) cannot grow a family without bound.
    @Test func seriesPastTheBoundAreCountedTogether() {
        let metrics = RequestMetrics.rpcServed()
        for i in 0..<(RequestMetrics.slotCountMax + 500) { metrics.record("m\(i)", outcome: "deadlineExceeded", latency: .zero) }
        let text = metrics.prometheusText()
        #expect(text.contains(#"erp_rpc_served_total{method="other",outcome="deadlineExceeded"} 500"#), "\(text.suffix(300))")
        #expect(!text.contains(#"method="m\#(RequestMetrics.slotCountMax)""#))
        #expect(metrics.latencySummaries().count == RequestMetrics.slotCountMax + 1)
    }
}
