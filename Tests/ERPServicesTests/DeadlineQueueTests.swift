import ERPCore
@testable import ERPServices
import Testing

/// The order service's queue of saga waiters' deadlines: earliest first whatever the order they
/// came in, equal deadlines first in first out, stale ones dropped from the front, and the front
/// freed as it goes without losing what is behind it.
@Suite struct DeadlineQueueTests {
    func at(_ ms: Int64) -> Timestamp { Timestamp.simulationEpoch + .milliseconds(ms) }

    @Test func givesDeadlinesBackEarliestFirst() {
        var queue = DeadlineQueue()
        for (ms, ticket) in [(30, 1), (10, 2), (50, 3), (30, 4), (20, 5), (60, 6)] as [(Int64, UInt64)] {
            queue.insert(.init(deadline: at(ms), orderId: "o\(ticket)", ticket: ticket))
        }
        var out: [UInt64] = []
        while let first = queue.first {
            out.append(first.ticket)
            queue.removeFirst()
        }
        #expect(out == [2, 5, 1, 4, 3, 6])
        #expect(queue.count == 0 && queue.first == nil)
    }

    @Test func dropsStaleEntriesFromTheFrontOnly() {
        var queue = DeadlineQueue()
        for ticket in UInt64(1)...6 { queue.insert(.init(deadline: at(Int64(ticket)), orderId: "o", ticket: ticket)) }
        let live: Set<UInt64> = [3, 5]
        queue.removeLeading { !live.contains($0.ticket) }
        #expect(queue.first?.ticket == 3 && queue.count == 4, "stops at the first live entry")
    }

    /// Thousands in, most out from the front, more in (some earlier than the last): the front's
    /// space is given back and the order holds.
    @Test func keepsItsOrderAcrossCompactions() {
        var queue = DeadlineQueue()
        var expected: [Int64] = []
        for ms in Int64(0)..<5_000 {
            queue.insert(.init(deadline: at(ms), orderId: "o", ticket: UInt64(ms)))
            expected.append(ms)
        }
        for _ in 0..<4_000 { queue.removeFirst() }
        expected.removeFirst(4_000)
        for ms in [Int64(4_500), 6_000, 4_001, 7_000] {
            queue.insert(.init(deadline: at(ms), orderId: "o", ticket: UInt64(ms)))
            expected.append(ms)
        }
        expected.sort()
        var out: [Int64] = []
        while let first = queue.first {
            out.append(first.deadline.nanosecondsSinceEpoch / 1_000_000 - Timestamp.simulationEpoch.nanosecondsSinceEpoch / 1_000_000)
            queue.removeFirst()
        }
        #expect(out == expected)
    }
}
