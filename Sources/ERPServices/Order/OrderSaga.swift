import ERPCore

/// A step of an order's saga, as persisted in `saga.step` (one spelling for Swift and SQL).
enum SagaStep: String, CaseIterable, Sendable {
    case reserve, pay, refund, release, done
}

/// What a step's call came to.
enum SagaStepResult: Equatable, Sendable {
    /// The breaker refused before any request of this step left (only for fail-fast steps).
    case notSent
    case answered(SagaAnswer)
    /// A definite no from the callee.
    case refused(RPCError)
    /// Still unknown after every attempt; the last error seen.
    case unknown(RPCError?)
}

/// The callee's answer, reduced to what the saga decides on.
enum SagaAnswer: Equatable, Sendable {
    /// Reserve: the stock is held for the order.
    case reserved
    /// Reserve: the reservation was released (or settled) before this request landed.
    case notReserved
    /// Pay: captured.
    case paid
    /// Pay: declined, with the provider's reason.
    case declined(reason: String?)
    /// Refund or release: done.
    case completed
}

/// What the saga does next.
enum SagaDecision: Equatable, Sendable {
    /// Persist the next step (keeping the recorded reason when `reason` is nil) and go on.
    case advance(SagaStep, reason: String?)
    /// The terminal transition: order status, saga done, events.
    case finish(OrderStatus, reason: String?)
    /// Stop driving this saga in this incarnation: a compensation that cannot finish now. A
    /// restart drives it on from its persisted step.
    case halt(String)
}

/// The order saga's decisions as a pure function of the step, what its call came to, the reason
/// recorded so far and the planted defects (the seed's Patterns 1 and 3):
///
///     reserve ──reserved──▶ pay ──paid──▶ confirmed
///        │ out of stock      │ declined ──▶ release ──▶ cancelled
///        ▼                   │ unknown / refused ──▶ refund ──▶ release ──▶ cancelled
///     cancelled              ▼ not sent ──▶ release
///
/// `OrderService.drive` makes the calls and persists what this decides; the table test walks
/// every row without a network or a database.
enum OrderSaga {
    /// A decision taken before the step's call, or nil to make the call.
    static func before(_ step: SagaStep, reason: String?, defects: PlantedDefects) -> SagaDecision? {
        if step == .release && defects.skipStockRelease { return .finish(.cancelled, reason: reason ?? "cancelled") }
        return nil
    }

    /// What a step's call came to, as the saga may take it: a breaker's refusal (`notSent`) is
    /// proof that nothing was asked only of a step no earlier pass can have tried (`untried`: a
    /// saga its creator has just committed, a step this driver has just advanced into). For a
    /// step recovered after a restart, or run again after its next step failed to persist,
    /// earlier requests may have reserved or charged: its outcome is unknown, and the saga
    /// compensates. A trial on a full disk saw a saga whose payment requests had left go
    /// straight to release, without the refund.
    static func taken(_ result: SagaStepResult, untried: Bool) -> SagaStepResult {
        if case .notSent = result, !untried { return .unknown(nil) }
        return result
    }

    static func decide(_ step: SagaStep, _ result: SagaStepResult, reason: String?, defects: PlantedDefects) -> SagaDecision {
        switch (step, result) {
        case (.reserve, .notSent):
            // The breaker is open and no request ever left: nothing can be reserved.
            return .finish(.cancelled, reason: "inventory_unavailable")
        case (.reserve, .answered(.reserved)):
            return .advance(.pay, reason: nil)
        case (.reserve, .answered):
            // Released before our request landed: nothing is held.
            return .finish(.cancelled, reason: reason ?? "reservation_released")
        case (.reserve, .refused(.rejected(code: "out_of_stock", message: _))):
            return .finish(.cancelled, reason: "out_of_stock")
        case (.reserve, .refused(let error)):
            return .advance(.release, reason: "inventory_" + error.kind)
        case (.reserve, .unknown):
            return .advance(.release, reason: "inventory_unavailable")

        case (.pay, .notSent):
            // No charge was ever asked for: release the stock, nothing to refund.
            return .advance(.release, reason: "payment_unavailable")
        case (.pay, .answered(.paid)):
            return .finish(.confirmed, reason: nil)
        case (.pay, .answered(.declined(let why))):
            if defects.confirmDeclinedPayments { return .finish(.confirmed, reason: nil) }
            return .advance(.release, reason: why == CancelReasons.plainDecline || why == nil ? "payment_failed" : "payment_failed:" + why!)
        case (.pay, .answered):
            preconditionFailure("a payment answers paid or declined")
        case (.pay, .refused):
            return .advance(.refund, reason: "payment_rejected")
        case (.pay, .unknown):
            return .advance(.refund, reason: "payment_unavailable")

        // Compensations must finish: their calls have no attempt bound short of the process's
        // patience, and what still fails halts the saga for a restart to drive on.
        case (.refund, .answered):
            return .advance(.release, reason: reason)
        case (.release, .answered):
            return .finish(.cancelled, reason: reason ?? "cancelled")
        case (.refund, .refused(let error)), (.release, .refused(let error)):
            return .halt("\(step.rawValue) refused: \(error)")
        case (.refund, .unknown(let error)), (.release, .unknown(let error)):
            return .halt("\(step.rawValue) still unknown: \(String(describing: error))")
        case (.refund, .notSent), (.release, .notSent):
            return .halt("\(step.rawValue) not sent")

        case (.done, _):
            preconditionFailure("a finished saga makes no call")
        }
    }
}

/// The reasons the saga cancels an order for, as `OrderCancelled` and the order's row carry them:
/// what a scenario's `expect.cancelReasons` may name (a misspelt one passed until an order was
/// cancelled).
public enum CancelReasons {
    /// Reasons written as they are.
    public static let plain = ["cancelled", "inventory_deadline_exceeded", "inventory_overloaded", "inventory_unauthenticated",
                               "inventory_unavailable", "out_of_stock", "payment_failed", "payment_rejected", "payment_unavailable",
                               "reservation_released"]
    /// Reasons that carry a code after them: inventory's refusal's, the provider's decline's.
    public static let stems = ["inventory_rejected:", "payment_failed:"]
    /// The provider's usual decline, written as plain `payment_failed` without its code: so
    /// `payment_failed:insufficient_funds` is never a reason.
    public static let plainDecline = "insufficient_funds"

    public static func isKnown(_ reason: String) -> Bool {
        plain.contains(reason) || stems.contains { reason.hasPrefix($0) && reason.count > $0.count }
    }
}
