import ERPCore
@testable import ERPResilience
@testable import ERPServices
import Testing

/// A service's `/metrics` shows its call paths' breakers and retries (they were in the harness's
/// reports only: an on-call engineer could not see an open breaker).
@Suite struct ResilienceMetricsTests {
    @Test func breakersAndRetriesArePrometheusText() {
        let metrics = ResilienceMetrics()
        #expect(metrics.prometheusText().isEmpty, "nothing called, nothing said")
        var opened = CallStatistics(correlationId: "c1")
        opened.attemptCount = 4
        opened.retryCount = 3
        opened.transitions = [CircuitBreaker.Transition(from: .closed, to: .open, at: Timestamp(nanosecondsSinceEpoch: 1))]
        opened.ending = .failed(.unavailable("down"), .gaveUp(.attemptsExhausted))
        metrics.record("order->payment", opened)
        var refused = CallStatistics(correlationId: "c2")
        refused.breakerRejectionCount = 1
        refused.ending = .failed(.unavailable("circuit open"), .circuitOpen)
        metrics.record("order->payment", refused)
        metrics.record("order->inventory", CallStatistics(correlationId: "c3"))
        let text = metrics.prometheusText()
        #expect(text.contains(#"erp_breaker_state{path="order->payment"} 2"#), "\(text)")
        #expect(text.contains(#"erp_breaker_state{path="order->inventory"} 0"#))
        #expect(text.contains(#"erp_breaker_opened_total{path="order->payment"} 1"#))
        #expect(text.contains(#"erp_breaker_rejections_total{path="order->payment"} 1"#))
        #expect(text.contains(#"erp_call_retries_total{path="order->payment"} 3"#))
        #expect(text.contains(#"erp_call_failures_total{path="order->payment"} 2"#))
        #expect(text.contains("# TYPE erp_breaker_state gauge"))
    }

    /// The paths a service calls are there before their first call, closed and at zero (a service
    /// respawned after a kill showed no breaker at all until it had called); what was recorded
    /// is not overwritten by them.
    @Test func declaredPathsShowBeforeTheirFirstCall() {
        let metrics = ResilienceMetrics()
        let fresh = metrics.prometheusText(declared: ["order->inventory", "order->payment"])
        #expect(fresh.contains(#"erp_breaker_state{path="order->payment"} 0"#), "\(fresh)")
        #expect(fresh.contains(#"erp_breaker_state{path="order->inventory"} 0"#))
        #expect(fresh.contains(#"erp_call_retries_total{path="order->inventory"} 0"#))
        var opened = CallStatistics(correlationId: "c1")
        opened.transitions = [CircuitBreaker.Transition(from: .closed, to: .open, at: Timestamp(nanosecondsSinceEpoch: 1))]
        metrics.record("order->payment", opened)
        let later = metrics.prometheusText(declared: ["order->inventory", "order->payment"])
        #expect(later.contains(#"erp_breaker_state{path="order->payment"} 2"#), "\(later)")
        #expect(later.components(separatedBy: #"erp_breaker_state{path="order->payment"}"#).count == 2, "one series a path")
        #expect(metrics.paths.keys.sorted() == ["order->payment"], "the reports' counts hold only paths that were called")
    }
}
