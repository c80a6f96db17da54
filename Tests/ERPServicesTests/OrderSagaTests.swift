import ERPCore
@testable import ERPServices
import Testing

/// Every row of the order saga's decision table (the seed's Patterns 1 and 3), without a
/// network or a database.
@Suite struct OrderSagaTests {
    static let none = PlantedDefects()

    /// Every reason the table can write is one `CancelReasons` knows, which the scenario loader
    /// checks `expect.cancelReasons` against: a reason added to the table and not to the list
    /// would make scenarios expecting it refused.
    @Test func everyReasonTheTableWritesIsAKnownCancelReason() {
        let errors: [RPCError] = [.deadlineExceeded, .unavailable("x"), .overloaded(retryAfterMilliseconds: nil), .unauthenticated,
                                  .rejected(code: "out_of_stock", message: ""), .rejected(code: "bad_request", message: "")]
        let answers: [SagaAnswer] = [.reserved, .notReserved, .declined(reason: nil), .declined(reason: "insufficient_funds"),
                                     .declined(reason: "voided"), .completed]
        let results: [SagaStepResult] = [.notSent, .unknown(nil)] + errors.map { .refused($0) } + errors.map { .unknown($0) }
            + answers.map { .answered($0) } + [.answered(.paid)]
        var written: Set<String> = []
        for step in SagaStep.allCases where step != .done {
            for result in results {
                // A payment answers paid or declined; any other answer to it traps by design.
                if step == .pay, case .answered(let answer) = result {
                    switch answer {
                    case .paid, .declined: break
                    default: continue
                    }
                }
                switch OrderSaga.decide(step, result, reason: nil, defects: Self.none) {
                case .advance(_, let reason?), .finish(.cancelled, let reason?): written.insert(reason)
                default: break
                }
            }
        }
        #expect(written.count >= 8, "\(written.sorted())")
        #expect(written.filter { !CancelReasons.isKnown($0) }.isEmpty, "unknown to CancelReasons: \(written.filter { !CancelReasons.isKnown($0) }.sorted())")
    }

    @Test(arguments: [
        // reserve
        (SagaStep.reserve, SagaStepResult.notSent, nil as String?, SagaDecision.finish(.cancelled, reason: "inventory_unavailable")),
        (.reserve, .answered(.reserved), nil, .advance(.pay, reason: nil)),
        (.reserve, .answered(.notReserved), nil, .finish(.cancelled, reason: "reservation_released")),
        (.reserve, .answered(.notReserved), "payment_failed", .finish(.cancelled, reason: "payment_failed")),
        (.reserve, .refused(.rejected(code: "out_of_stock", message: "2 left")), nil, .finish(.cancelled, reason: "out_of_stock")),
        (.reserve, .refused(.rejected(code: "bad_request", message: "")), nil, .advance(.release, reason: "inventory_rejected:bad_request")),
        (.reserve, .refused(.unauthenticated), nil, .advance(.release, reason: "inventory_unauthenticated")),
        (.reserve, .unknown(.deadlineExceeded), nil, .advance(.release, reason: "inventory_unavailable")),
        (.reserve, .unknown(nil), nil, .advance(.release, reason: "inventory_unavailable")),
        // pay
        (.pay, .notSent, nil, .advance(.release, reason: "payment_unavailable")),
        (.pay, .answered(.paid), nil, .finish(.confirmed, reason: nil)),
        (.pay, .answered(.declined(reason: "insufficient_funds")), nil, .advance(.release, reason: "payment_failed")),
        (.pay, .answered(.declined(reason: nil)), nil, .advance(.release, reason: "payment_failed")),
        (.pay, .answered(.declined(reason: "voided")), nil, .advance(.release, reason: "payment_failed:voided")),
        (.pay, .refused(.rejected(code: "bad_request", message: "")), nil, .advance(.refund, reason: "payment_rejected")),
        (.pay, .unknown(.unavailable("down")), nil, .advance(.refund, reason: "payment_unavailable")),
        // refund: compensation goes on to release, keeping the reason
        (.refund, .answered(.completed), "payment_unavailable", .advance(.release, reason: "payment_unavailable")),
        (.refund, .refused(.rejected(code: "x", message: "y")), nil, .halt("refund refused: rejected x: y")),
        (.refund, .unknown(.deadlineExceeded), nil, .halt("refund still unknown: Optional(deadline exceeded)")),
        (.refund, .notSent, nil, .halt("refund not sent")),
        // release: the order ends cancelled with the recorded reason
        (.release, .answered(.completed), "payment_failed", .finish(.cancelled, reason: "payment_failed")),
        (.release, .answered(.completed), nil, .finish(.cancelled, reason: "cancelled")),
        (.release, .refused(.unauthenticated), nil, .halt("release refused: unauthenticated")),
        (.release, .unknown(nil), nil, .halt("release still unknown: nil")),
    ])
    func decides(step: SagaStep, result: SagaStepResult, reason: String?, expected: SagaDecision) {
        #expect(OrderSaga.before(step, reason: reason, defects: Self.none) == nil)
        #expect(OrderSaga.decide(step, result, reason: reason, defects: Self.none) == expected)
    }

    /// A breaker's refusal proves nothing was asked only of a step no earlier pass can have
    /// tried. Run again after a restart or a failed write, an open breaker made a saga whose
    /// payment requests had left release the stock without the refund (a trial on a full disk),
    /// and one whose reservation may have landed finish without releasing it.
    @Test func aRefusalOfAStepThatMayHaveBeenTriedIsAnUnknownOutcome() {
        func decided(_ step: SagaStep, untried: Bool) -> SagaDecision {
            OrderSaga.decide(step, OrderSaga.taken(.notSent, untried: untried), reason: nil, defects: Self.none)
        }
        #expect(decided(.pay, untried: true) == .advance(.release, reason: "payment_unavailable"))
        #expect(decided(.pay, untried: false) == .advance(.refund, reason: "payment_unavailable"))
        #expect(decided(.reserve, untried: true) == .finish(.cancelled, reason: "inventory_unavailable"))
        #expect(decided(.reserve, untried: false) == .advance(.release, reason: "inventory_unavailable"))
        // Any other outcome is taken as it is.
        #expect(OrderSaga.taken(.answered(.paid), untried: false) == .answered(.paid))
    }

    @Test func plantedDefectsChangeExactlyTheirRows() {
        var confirm = PlantedDefects()
        confirm.enable(.confirmDeclinedPayments)
        #expect(OrderSaga.decide(.pay, .answered(.declined(reason: "insufficient_funds")), reason: nil, defects: confirm)
                == .finish(.confirmed, reason: nil))
        #expect(OrderSaga.decide(.pay, .answered(.paid), reason: nil, defects: confirm) == .finish(.confirmed, reason: nil))

        var skip = PlantedDefects()
        skip.enable(.skipStockRelease)
        #expect(OrderSaga.before(.release, reason: "payment_failed", defects: skip) == .finish(.cancelled, reason: "payment_failed"))
        for step in [SagaStep.reserve, .pay, .refund] { #expect(OrderSaga.before(step, reason: nil, defects: skip) == nil) }
    }

    /// Every path through the table ends: from each step, following decisions whatever the calls
    /// answer reaches a finish or a halt, never a loop.
    @Test func everyPathEnds() {
        let results: [SagaStepResult] = [.notSent, .answered(.reserved), .answered(.notReserved), .answered(.paid),
                                         .answered(.declined(reason: nil)), .answered(.completed),
                                         .refused(.rejected(code: "out_of_stock", message: "")), .refused(.unauthenticated),
                                         .unknown(nil)]
        func answers(_ step: SagaStep) -> [SagaStepResult] {
            results.filter { result in
                guard case .answered(let answer) = result else { return true }
                switch step {
                case .reserve: return answer == .reserved || answer == .notReserved
                case .pay: return answer == .paid || answer == .declined(reason: nil)
                default: return answer == .completed
                }
            }
        }
        func walk(_ step: SagaStep, depth: Int) {
            #expect(depth < 5, "the saga loops through \(step)")
            guard depth < 5 else { return }
            for result in answers(step) {
                if case .advance(let next, _) = OrderSaga.decide(step, result, reason: nil, defects: Self.none) {
                    walk(next, depth: depth + 1)
                }
            }
        }
        walk(.reserve, depth: 0)
    }
}
