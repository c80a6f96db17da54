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
}
