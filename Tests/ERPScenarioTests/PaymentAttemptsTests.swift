import ERPCore
import ERPServices
import ERPTransport
import Testing

@Suite struct PaymentAttemptsTests {
    /// Two attempts at one order's payment in flight together (the saga's retry after a lost
    /// answer): both wait for the provider, one settles the payment, and the other answered the
    /// stored status (`failed`) where the decline's reason (`insufficient_funds`) belonged, so
    /// the saga cancelled one decline under two reasons (a report reader's trial). Both answers
    /// now carry the reason the payment was settled with.
    @Test func concurrentAttemptsAnswerTheSettledReason() async throws {
        _ = try await SimulatedServices.run(configure: { $0.provider.declineRate = 1 }) { transport, runtime in
            let pay = ProcessPayment(orderId: "order_twice", userId: "user_001", amount: Money(minorUnits: 12_900))
            async let first = transport.call(pay, metadata: runtime.metadata(timeout: .seconds(2)))
            async let second = transport.call(pay, metadata: runtime.metadata(timeout: .seconds(2)))
            let answers = try await [first, second]
            for answer in answers {
                #expect(answer.status == .failed)
                #expect(answer.reason == "insufficient_funds", "answered \(answer)")
            }
            #expect(answers[0].paymentId == answers[1].paymentId)
            // Asked again after both: the stored reason, as before.
            let again = try await transport.call(pay, metadata: runtime.metadata(timeout: .seconds(2)))
            #expect(again.reason == "insufficient_funds")
        }
    }
}
