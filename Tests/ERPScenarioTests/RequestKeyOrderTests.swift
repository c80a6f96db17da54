import ERPCore
import Foundation
@testable import ERPScenario
import Testing

/// The judge reads the client's history in request-key order; the numeric fast path must give
/// exactly the order `localizedStandardCompare` gives.
@Suite struct RequestKeyOrderTests {
    private func records(_ keys: [String]) -> [ClientRecord] {
        keys.map { ClientRecord(requestKey: $0, scheduledAt: .simulationEpoch, completedAt: nil, outcome: .gaveUp, orderId: nil, attempts: 0) }
    }

    private func slowOrder(_ keys: [String]) -> [String] {
        keys.sorted { $0.localizedStandardCompare($1) == .orderedAscending }
    }

    @Test func numberedKeysSortAsTheLocaleAwareCompareDoes() {
        let numbered = (1...2_000).map { "req-\($0)" } + ["req-0", "req-100000", "req-99999"]
        // Shuffled the same way every time: position i goes to i × 7,919 mod 2,003 (a prime).
        let keys = numbered.indices.sorted { ($0 * 7_919) % 2_003 < ($1 * 7_919) % 2_003 }.map { numbered[$0] }
        let sorted = ScenarioRunner.inRequestKeyOrder(records(keys)).map(\.requestKey)
        #expect(sorted == slowOrder(keys))
        #expect(sorted.prefix(4) == ["req-0", "req-1", "req-2", "req-3"])
        #expect(sorted.suffix(2) == ["req-99999", "req-100000"])
    }

    @Test func otherKeysFallBackToTheLocaleAwareCompare() {
        for keys in [["req-2", "vend-1", "req-10"], ["req-02", "req-1", "req-10"], ["a", "req-1"], ["req-1x", "req-2"], ["r1-2", "r1-10"],
                     ["req-12345678901234567890", "req-2", "req-1234567890123456789"]] {  // past what a UInt64 orders
            #expect(ScenarioRunner.inRequestKeyOrder(records(keys)).map(\.requestKey) == slowOrder(keys), "\(keys)")
        }
        #expect(ScenarioRunner.numberedKeyPrefix("req-12") == "req-")
        #expect(ScenarioRunner.numberedKeyPrefix("req-012") == nil)
        #expect(ScenarioRunner.numberedKeyPrefix("r1-2") == nil)
        #expect(ScenarioRunner.numberedKeyPrefix("req-") == nil)
        #expect(ScenarioRunner.inRequestKeyOrder([]).isEmpty)
    }
}
