import ERPCore
import ERPZeroMQ
import Testing
@testable import ERPProduction

/// The runner's control call is checked like any other request: a trial's
/// `"clockSkew": [1099511627776, 0]` was applied, and the next clock reading trapped on overflow
/// and took the service down; decline rates of 5 or -1 and negative delays were taken as given.
@Suite struct FaultControlTests {
    @Test func absurdFaultsAreRefusedAndSaneOnesTaken() {
        var sane = ApplyFaults(clockSkew: .seconds(-300), providerDeclineRate: 0.5, providerProcessingTime: .milliseconds(20))
        sane.rules.links["order"] = LinkFault(dropProbability: 0.1, latencyMin: .milliseconds(1), latencyMax: .seconds(2))
        #expect(sane.problem == nil)

        var cases: [(ApplyFaults, String)] = [
            (ApplyFaults(clockSkew: .seconds(1_099_511_627_776)), "clockSkew"),
            (ApplyFaults(clockSkew: .seconds(-400 * 86_400)), "clockSkew"),
            (ApplyFaults(providerDeclineRate: 5), "providerDeclineRate"),
            (ApplyFaults(providerDeclineRate: -1), "providerDeclineRate"),
            (ApplyFaults(providerDeclineRate: .nan), "providerDeclineRate"),
            (ApplyFaults(providerProcessingTime: .seconds(-1)), "providerProcessingTime"),
            (ApplyFaults(providerProcessingTime: .seconds(100 * 366 * 86_400)), "providerProcessingTime"),
        ]
        var link = ApplyFaults()
        link.rules.fallback = LinkFault(duplicateProbability: 2)
        cases.append((link, "fallback.duplicateProbability"))
        var inverted = ApplyFaults()
        inverted.rules.links["bus"] = LinkFault(latencyMin: .seconds(2), latencyMax: .seconds(1))
        cases.append((inverted, "links.bus.latencyMin"))
        for (request, field) in cases {
            #expect(request.problem?.hasPrefix(field) == true, "\(field): \(request.problem ?? "accepted")")
        }
    }

    /// Should a skew ever get past the check, a reading saturates instead of trapping.
    @Test func aSkewPastTheRangeOfTimeSaturates() {
        let clock = SystemClock(skew: ClockSkew(.seconds(Int64.max / 1_000_000_000)))
        #expect(clock.now.nanosecondsSinceEpoch == .max)
    }
}
