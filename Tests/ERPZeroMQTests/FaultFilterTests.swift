import ERPCore
import ERPTransport
import Foundation
import Testing
import ZeroMQTestSupport
@testable import ERPZeroMQ

@Suite struct FaultFilterTests {
    @Test func rulesPickTheLinkThenTheFallbackAndSpareTheExempt() {
        let rules = FaultFilter.Rules(fallback: .partition, links: ["order": LinkFault(dropProbability: 0.5)], exempt: ["runner"])
        #expect(rules.fault(to: "order") == LinkFault(dropProbability: 0.5))
        #expect(rules.fault(to: "payment") == .partition)
        #expect(rules.fault(to: "runner") == .none)
    }

    @Test func decisionsFollowTheRulesAndAreCounted() {
        let filter = FaultFilter(random: SeededRandomSource(seed: 3))
        #expect(filter.decide(to: "order") == .untouched)
        filter.set(.init(links: [
            "cut": .partition,
            "lossy": LinkFault(dropProbability: 1),
            "twice": LinkFault(duplicateProbability: 1),
            "slow": LinkFault(latencyMin: .milliseconds(5), latencyMax: .milliseconds(9)),
        ]))
        #expect(filter.decide(to: "cut") == .drop)
        #expect(filter.decide(to: "lossy") == .drop)
        #expect(filter.decide(to: "twice") == .send(copies: 2, delay: .zero))
        for _ in 0..<200 {
            guard case .send(1, let delay) = filter.decide(to: "slow") else { Issue.record("slow link dropped or duplicated"); return }
            #expect(delay >= .milliseconds(5) && delay <= .milliseconds(9))
        }
        #expect(filter.decide(to: "other") == .untouched)
        let counters = filter.counters
        #expect(counters.blocked == 1 && counters.dropped == 1 && counters.duplicated == 1 && counters.delayed == 200)
    }

    @Test func aDropProbabilityDropsAboutThatShare() {
        let filter = FaultFilter(random: SeededRandomSource(seed: 9))
        filter.set(.init(fallback: LinkFault(dropProbability: 0.3)))
        let dropped = (0..<10_000).filter { _ in filter.decide(to: "x") == .drop }.count
        #expect((2_700...3_300).contains(dropped), "dropped \(dropped) of 10000 at p=0.3")
    }
}

/// The filter inside a running transport: what a partition, a delay and a duplicate do to calls.
@Suite(.serialized) struct TransportFaultTests {
    @Test func aPartitionedDestinationTimesOutAndHealingLetsCallsThrough() async throws {
        let pair = try await TransportPair()
        #expect(try await pair.client.call(Shout(text: "a"), metadata: pair.metadata()) == "A to client")
        pair.client.faults.set(.init(links: ["server": .partition]))
        let started = ContinuousClock.now
        await #expect(throws: RPCError.deadlineExceeded) {
            try await pair.client.call(Shout(text: "b"), metadata: pair.metadata(.milliseconds(300)))
        }
        #expect(ContinuousClock.now - started >= .milliseconds(250), "the call ended before its deadline")
        #expect(pair.server.counters.requestsReceived == 1, "a blocked request reached the server")
        #expect(pair.client.faults.counters.blocked == 1)
        pair.client.faults.set(.init())
        #expect(try await pair.client.call(Shout(text: "c"), metadata: pair.metadata()) == "C to client")
        await pair.finish()
    }

    /// One deadline alarm serves every call in flight: a call made later but due sooner ends at
    /// its own deadline, not at the earlier call's, and the earlier one still ends at its own.
    @Test func eachCallInFlightEndsAtItsOwnDeadline() async throws {
        let pair = try await TransportPair()
        #expect(try await pair.client.call(Shout(text: "a"), metadata: pair.metadata()) == "A to client")
        pair.client.faults.set(.init(links: ["server": .partition]))
        let started = ContinuousClock.now
        let ended = Locked<[String: Duration]>([:])
        func call(_ name: String, _ timeout: Duration) -> Task<Void, Never> {
            Task {
                let outcome: RPCError?
                do {
                    _ = try await pair.client.call(Shout(text: name), metadata: pair.metadata(timeout))
                    outcome = nil
                } catch { outcome = error as? RPCError }
                #expect(outcome == .deadlineExceeded, "\(name)")
                ended.withLock { $0[name] = ContinuousClock.now - started }
            }
        }
        let long = call("long", .milliseconds(1_500))
        try await Task.sleep(for: .milliseconds(50))
        let short = call("short", .milliseconds(300))
        let shorter = call("shorter", .milliseconds(200))
        await short.value
        await shorter.value
        let early = ended.withLock { $0 }
        #expect(early["long"] == nil, "the long call ended with the short ones")
        #expect(early["shorter"].map { $0 >= .milliseconds(200) && $0 < .milliseconds(1_200) } == true, "\(early)")
        #expect(early["short"].map { $0 >= .milliseconds(300) && $0 < .milliseconds(1_200) } == true, "\(early)")
        await long.value
        #expect(ended.withLock { $0["long"] }.map { $0 >= .milliseconds(1_500) } == true)
        #expect(pair.client.counters.callsTimedOut == 3)
        #expect(pair.client.pendingCallCount == 0)
        await pair.finish()
    }

    @Test func aBlockedReplyLeavesTheCallerWaitingThoughTheServerDidTheWork() async throws {
        let pair = try await TransportPair()
        pair.server.faults.set(.init(links: ["client": .partition]))
        await #expect(throws: RPCError.deadlineExceeded) {
            try await pair.client.call(Shout(text: "a"), metadata: pair.metadata(.milliseconds(300)))
        }
        #expect(pair.server.counters.requestsReceived == 1)
        #expect(pair.server.faults.counters.blocked == 1)
        await pair.finish()
    }

    @Test func delayedAndDuplicatedRequests() async throws {
        let pair = try await TransportPair()
        pair.client.faults.set(.init(links: ["server": LinkFault(duplicateProbability: 1, latencyMin: .milliseconds(80), latencyMax: .milliseconds(80))]))
        let started = ContinuousClock.now
        #expect(try await pair.client.call(Shout(text: "a"), metadata: pair.metadata()) == "A to client")
        #expect(ContinuousClock.now - started >= .milliseconds(80))
        // The copy is served too; its reply arrives late and is counted, not lost silently.
        _ = await eventually(within: .seconds(5)) { pair.client.counters.lateReplies >= 1 }
        #expect(pair.server.counters.requestsReceived == 2)
        #expect(pair.client.counters.lateReplies == 1)
        await pair.finish()
    }
}
