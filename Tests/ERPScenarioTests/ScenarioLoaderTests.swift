import ERPCore
import ERPResilience
import ERPServices
import ERPScenario
import ERPStorage
import ERPTestSupport
import Foundation
import Testing

@Suite struct ScenarioLoaderTests {
    @Test func readsEverySection() throws {
        let s = try ScenarioLoader.parse("""
            name: t
            seed: 9
            duration: 5s
            heal: 2s
            network:
              latency: {min: 1ms, max: 3ms}
              drop: 0.1
            workload:
              orders: {rate: 12.5, itemsPerOrder: {min: 1, max: 2}, attempts: 2}
            payment: {declineRate: 0.3}
            faults:
              - {at: 1s, partition: [order, inventory], for: 1s}
              - {at: 2s, crash: order, restartAfter: 500ms}
              - {at: 3s, clockSkew: {service: payment, by: -2s}}
            defects: [skip-inbox]
            """)
        #expect(s.seed == 9 && s.duration == .seconds(5) && s.heal == .seconds(2))
        #expect(s.network.link.dropProbability == 0.1 && s.network.link.latencyMax == .milliseconds(3))
        #expect(s.workload.ratePerSecond == 12.5 && s.workload.attemptCountMax == 2)
        #expect(s.payment.declineRate == 0.3)
        #expect(s.faults.count == 3)
        #expect(s.defects.skipInbox)
        #expect(!s.devices.enabled)
    }

    /// A question mark in text, quoted or plain, is not an explicit key.
    @Test func questionMarksInTextAreText() throws {
        let s = try ScenarioLoader.parse("""
            name: what?
            description: "? is a question" # ? in a comment
            seed: 3 # why? because
            """)
        #expect(s.name == "what?" && s.description == "? is a question" && s.seed == 3)
    }

    @Test func readsTheDiskFaultsAndDurability() throws {
        let s = try ScenarioLoader.parse("""
            name: t
            duration: 10s
            durability: {order: normal, event-bus: off}
            faults:
              - {at: 1s, powerLoss: order, restartAfter: 500ms}
              - {at: 2s, powerLoss: all}
              - {at: 3s, diskFull: payment, for: 2s}
              - {at: 4s, diskErrors: inventory, for: 1s}
              - {at: 5s, slowSync: {service: event-bus, by: 30ms}, for: 3s}
              - {at: 6s, powerCut: inventory, restartAfter: 1s}
              - {at: 7s, powerCut: all}
            """)
        #expect(s.durability.map(\.service) == [.order, .eventBus] && s.durability.map(\.synchronous) == [.normal, .off])
        #expect(s.faults.map(\.kind) == [
            .powerLoss(NodeName(ServiceName.order), restartAfter: .milliseconds(500)), .powerLoss(nil, restartAfter: nil),
            .diskFailure(NodeName(ServiceName.payment), .full), .diskFailure(NodeName(ServiceName.inventory), .ioError),
            .slowSync(NodeName(ServiceName.eventBus), .milliseconds(30)),
            .powerCut(NodeName(ServiceName.inventory), restartAfter: .seconds(1)), .powerCut(nil, restartAfter: nil),
        ])
        #expect(s.faults.allSatisfy { $0.kind.simulationOnly })
        // A node's power loss restarts that node; the cluster's restarts every node it took down.
        let steps = s.faultTimeline.map(\.summaryText)
        #expect(steps.contains("restart order") && !steps.contains("restart every node down"))
        // Written out and read back, the same scenario.
        let again = try ScenarioLoader.parse(ScenarioWriter.yaml(s))
        #expect(again.faults.map(\.kind) == s.faults.map(\.kind))
        #expect(again.durability.map(\.synchronous) == s.durability.map(\.synchronous))
    }

    /// Overlapping windows of one setting on one target: the shorter no longer ends the longer
    /// (a scenario author's trial: 6 – 8 s of a 0.5 decline rate ran at the base rate, a pause
    /// ended early, though the report listed both windows whole).
    @Test func aWindowEndingInsideAnotherOfTheSameSettingLeavesItInForce() throws {
        let s = try ScenarioLoader.parse("""
            name: t
            duration: 20s
            faults:
              - {at: 1s, declineRate: 0.5, for: 6s}
              - {at: 2s, declineRate: 0.9, for: 1s}
              - {at: 1s, pause: notification, for: 6s}
              - {at: 2s, pause: notification, for: 1s}
              - {at: 1s, clockSkew: {service: order, by: 5s}, for: 2s}
              - {at: 2s, clockSkew: {service: order, by: 2s}, for: 6s}
              - {at: 1s, partition: [order, inventory], for: 6s}
              - {at: 2s, partition: [order, inventory], for: 1s}
            """)
        let steps = s.faultTimeline.map { "\($0.at.readable) \($0.summaryText)" }
        func ends(_ what: String) -> [String] {
            steps.filter { $0.contains("fault over:") && $0.contains(what) }.map { String($0.prefix { $0 != " " }) }
        }
        // The decline rate: 50 %, then 90 %, then 50 % again when the inner window ends; the base at 7 s.
        #expect(steps.contains("3s fault at 1s for 6s: swishpay declines 50%"), "\(steps)")
        #expect(ends("declines") == ["7s"], "\(steps)")
        // The pause: one end, at 7 s.
        #expect(ends("pause notification") == ["7s"], "\(steps)")
        // The skew: the earlier window ends inside the later one and changes nothing; the later ends at 8 s.
        #expect(ends("clock skew") == ["8s"] && !steps.contains { $0.hasPrefix("3s ") && $0.contains("clock skew") }, "\(steps)")
        // Partitions keep both ends: the backends count the cuts.
        #expect(ends("partition").count == 2, "\(steps)")
    }

    /// A window or a restart past the chaos phase's end ends with it, and the report's line says
    /// so instead of the length asked for.
    @Test func aFaultCutByTheChaosPhasesEndSaysSo() throws {
        let s = try ScenarioLoader.parse("""
            name: t
            duration: 5s
            faults:
              - {at: 4s, isolate: inventory, for: 60s}
              - {at: 2s, crash: order, restartAfter: 60s}
              - {at: 1s, pause: payment, for: 1s}
            """)
        #expect(s.faultLines == ["at 4s for 60s: isolate inventory (ended at 5s, with the chaos phase)",
                                 "at 2s: crash order, restart after 60s (restarted at 5s, with the heal phase)",
                                 "at 1s for 1s: pause payment"], "\(s.faultLines)")
    }

    /// A planted defect the workload cannot bring out is named (`erp run` prints a note): a run
    /// planting sell-twice without vends came out green.
    @Test func aDefectTheWorkloadCannotShowIsNamed() throws {
        let bare = try ScenarioLoader.parse("name: t\ndefects: [skip-inbox, charge-list-price, sell-twice, skip-silence-watch]\n")
        #expect(bare.defectsThatCannotShow == ["charge-list-price: the workload has no campaigns (workload.campaigns)",
                                               "sell-twice: the workload has no vending (workload.vending)",
                                               "skip-silence-watch: the workload has no devices (workload.devices)"], "\(bare.defectsThatCannotShow)")
        let full = try ScenarioLoader.parse("""
            name: t
            workload:
              vending: {rate: 1}
              devices: {heartbeat: 1s}
              campaigns: {every: 3s}
            heal: 30s
            defects: [charge-list-price, sell-twice, skip-silence-watch]
            """)
        #expect(full.defectsThatCannotShow.isEmpty, "\(full.defectsThatCannotShow)")
    }

    @Test func readsEachServicesRateLimit() throws {
        let s = try ScenarioLoader.parse("""
            name: t
            resilience:
              rateLimit:
                services: {inventory: {capacity: 50, refillPerSecond: 100}, event-bus: {capacity: 10, refillPerSecond: 5}}
            """)
        #expect(s.resilience.serviceRateLimits[.inventory] == TokenBucketSettings(capacity: 50, refillRatePerSecond: 100))
        #expect(s.resilience.incomingLimit(of: .eventBus)?.bucket.capacity == 10)
        #expect(s.resilience.incomingLimit(of: .order) == nil)
        let again = try ScenarioLoader.parse(ScenarioWriter.yaml(s))
        #expect(again.resilience.serviceRateLimits == s.resilience.serviceRateLimits)
        #expect(throws: ScenarioError.self) {
            try ScenarioLoader.parse("name: t\nresilience:\n  rateLimit:\n    services: {warehouse: {capacity: 1, refillPerSecond: 1}}\n")
        }
    }

    /// `stockTimes` multiplies every shop's stock in the run's fixtures (the runner, the
    /// simulator and every `erp serve` take theirs from `fixturesForRun`), once: the devices it
    /// adds are added to the multiplied fixtures, and a row past `Int` stops at `Int.max`.
    @Test func stockTimesMultipliesTheFixturesStock() throws {
        let file = try loadFixtures()
        let s = try ScenarioLoader.parse("name: t\nstockTimes: 100\nheal: 20s\nworkload:\n  devices: {heartbeat: 3s, extraPerShop: 2}\n")
        #expect(s.stockTimes == 100)
        let run = s.fixturesForRun(file)
        #expect(run.shops.map { $0.stock.map(\.quantity) } == file.shops.map { $0.stock.map { $0.quantity * 100 } })
        #expect(run.shops.map { $0.stock.map(\.minimumStock) } == file.shops.map { $0.stock.map(\.minimumStock) })
        #expect(run.devices.count == file.devices.count + 2 * file.shops.count)
        #expect(try ScenarioLoader.parse("name: t\n").fixturesForRun(file) == file)
        var huge = file
        huge.shops[0].stock[0].quantity = .max / 2
        #expect(huge.withStock(times: 3).shops[0].stock[0].quantity == .max)
    }

    /// A fixtures file's stock rows are bounded (a row of 10^18 units, multiplied or summed,
    /// would trap the services or the checker).
    @Test func aFixturesRowPastABillionUnitsIsRefused() throws {
        let text = #"{"products":[],"customers":[],"devices":[],"shops":[{"id":"s","name":"S","stock":[{"productId":"p","quantity":QTY,"minimumStock":1}]}]}"#
        #expect(try JSONCoding.decode(Fixtures.self, from: Data(text.replacingOccurrences(of: "QTY", with: "1000000000").utf8)).shops[0].stock[0].quantity == 1_000_000_000)
        for bad in ["1000000001", "-1", "9223372036854775807"] {
            #expect(throws: (any Error).self, "quantity \(bad)") {
                try JSONCoding.decode(Fixtures.self, from: Data(text.replacingOccurrences(of: "QTY", with: bad).utf8))
            }
        }
    }

    @Test func readsTheDeviceWorkload() throws {
        let s = try ScenarioLoader.parse("name: t\nheal: 10s\nworkload:\n  devices: {heartbeat: 500ms, faultRate: 0.1, silentShare: 0.2}\n")
        #expect(s.devices.enabled && s.devices.heartbeat == .milliseconds(500))
        #expect(s.devices.faultRate == 0.1 && s.devices.silentShare == 0.2)
        #expect(s.serviceSettings(fixtures: Fixtures(products: [], shops: [], customers: [])).deviceHeartbeatInterval == .milliseconds(500))
    }

    /// Cancel reasons with a code after them are known by their stem; methods by their names.
    @Test func readsCancelReasonsWithCodesAndServiceTimes() throws {
        let s = try ScenarioLoader.parse("""
            name: t
            network: {serviceTime: {inventory.reserveStock: {min: 1ms, max: 2ms}}}
            expect: {cancelReasons: [out_of_stock, "payment_failed:card_expired", "inventory_rejected:unknown_product"]}
            """)
        #expect(s.expect.cancelReasons == ["out_of_stock", "payment_failed:card_expired", "inventory_rejected:unknown_product"])
        #expect(s.network.serviceTimes.map(\.method) == ["inventory.reserveStock"])
        #expect(!CancelReasons.isKnown("payment_failed:") && !CancelReasons.isKnown("inventory_unavaliable"))
    }

    /// Each bad file names the line and what is wrong.
    @Test(arguments: [
        ("name: t\nduration: [1s\n", 3, "YAML syntax"),
        ("name: t\nspeed: 3\n", 2, "unknown field 'speed'"),
        ("name: t\nworkload:\n  orders:\n    rate: -5\n", 4, "must not be negative"),
        ("name: t\nworkload:\n  orders:\n    rate: fast\n", 4, "must be a number"),
        ("name: t\nfaults:\n  - at: 1s\n    crash: warehouse\n", 4, "unknown service 'warehouse'"),
        ("name: t\nnetwork:\n  drop: 1.5\n", 3, "probability"),
        ("name: t\nduration: soon\n", 2, "duration such as"),
        ("seed: 1\n", 1, "missing field 'name'"),
        ("name: t\nfaults:\n  - at: 1s\n", 3, "a fault needs one of"),
        ("name: t\nduration: 5s\nfaults:\n  - {at: 9s, crash: order}\n", 4, "after the chaos phase"),
        ("name: t\ndefects: [make-it-fail]\n", 2, "unknown defect"),
        ("name: t\nresilience:\n  circuitBreaker: {errorThresholdPercentage: 120}\n", 3, "circuitBreaker.errorThresholdPercentage"),
        ("name: t\nresilience:\n  circuitBreaker: {timeout: -1s}\n", 3, "circuitBreaker.timeout"),
        ("name: t\nworkload: {orders: {timeout: 1s}}\nresilience:\n  retry: {attempts: 10, baseDelay: 1s, maxDelay: 10s}\n", 4, "retry"),
        ("name: t\nfaults:\n  - {at: 1s, providerDelay: fast}\n", 3, "fault.providerDelay"),
        // What a run may ask for is bounded: an absurd scenario is refused, not run until killed.
        ("name: t\nworkload:\n  orders:\n    rate: 1e9\n", 4, "at most 100000 orders per second"),
        ("name: t\nduration: 10h\nworkload:\n  orders: {rate: 50000}\n", 4, "a run offers at most 5000000"),
        ("name: t\nduration: 400d\n", 2, "duration such as"),
        ("name: t\nduration: 48h\n", 2, "duration must be at most 86400s"),
        ("name: t\nheal: 1e30s\n", 2, "heal must be at most"),
        ("name: t\nworkload:\n  orders: {quantity: {min: 1, max: 9223372036854775807}}\n", 3, "quantity.max must be at most 1000000"),
        ("name: t\nworkload:\n  orders: {itemsPerOrder: {min: 1, max: 500}}\n", 3, "itemsPerOrder.max must be at most 100"),
        ("name: t\nworkload:\n  orders: {attempts: 100000}\n", 3, "attempts must be from 1 to 100"),
        ("name: t\nstockTimes: 0\n", 2, "stockTimes must be from 1 to 100000"),
        ("name: t\nstockTimes: 100001\n", 2, "stockTimes must be from 1 to 100000"),
        ("name: t\nstockTimes: -3\n", 2, "must not be negative"),
        ("name: t\nheal: 2s\nworkload:\n  devices: {heartbeat: 1s}\n", 2, "heal must last at least 6 heartbeats"),
        ("name: t\nworkload:\n  devices: {heartbeat: 1ms}\n", 3, "heartbeat must be at least 10ms"),
        ("name: t\nworkload:\n  devices: {silentShare: 2}\n", 3, "probability"),
        ("name: t\nworkload:\n  devices: {restockShare: 0.7, countShare: 0.5}\n", 3, "must not exceed 1"),
        ("name: t\nfaults:\n  - {at: 1s, upgrade: {event: OrderCreated, version: \"3.0\"}}\n", 3, "cannot write OrderCreated 3.0"),
        ("name: t\nevents: {OrderMade: \"1.0\"}\n", 2, "unknown field 'OrderMade'"),
        // Explicit keys, refused before Yams sees them (nested, they once took minutes).
        ("name: t\n? seed\n: 3\n", 2, "explicit mapping keys"),
        ("name: t\nnetwork: {? latency: {min: 1ms}}\n", 2, "explicit mapping keys"),
        ("name: t\nfaults:\n  - ? ? ? at\n", 3, "explicit mapping keys"),
        ("name: t\nworkload:\n  vending: {rate: 5, quantity: {min: 1, max: 50}}\n", 3, "workload.vending.quantity"),
        ("name: t\nworkload:\n  campaigns: {products: 2}\n", 3, "every"),
        ("name: t\nexpect: {onTheBus: [OrderCreated]}\n", 2, "EventType version"),
        ("name: t\ndurability: {order: sometimes}\n", 2, "durability.order: 'sometimes' is not one of off, normal, full"),
        ("name: t\nexpect: {cancelReasons: []}\n", 2, "to allow no cancellation at all write maxCancelled: 0"),
        ("name: t\nfaults:\n  - {at: 1s, crash: [order, payment]}\n", 3, "expected one value here, not a list"),
        ("name: t\nexpect: {cancelReasons: [payment_failed:insufficient_funds]}\n", 2, "is recorded as plain payment_failed"),
        ("name: t\nfaults:\n" + String(repeating: "  - {at: 1s, crash: order}\n", count: 2_001), 3, "2001 faults; a scenario schedules at most 2000"),
        ("name: t\ndurability: {warehouse: off}\n", 2, "unknown field 'warehouse'"),
        ("name: t\nfaults:\n  - {at: 1s, powerCut: order, restartAfter: 50ms}\n", 3, "restartAfter of a powerCut must be at least 100ms"),
        ("name: t\nfaults:\n  - {at: 1s, diskFull: order, restartAfter: 1s}\n", 3, "restartAfter belongs to a crash, diskLoss, powerLoss or powerCut fault"),
        ("name: t\nfaults:\n  - {at: 1s, powerLoss: everything}\n", 3, "unknown service 'everything'"),
        ("name: t\nfaults:\n  - {at: 1s, slowSync: {service: order, by: 1h}}\n", 3, "slowSync.by"),
        // A disk fault or a durability on a service without a database did nothing.
        ("name: t\nfaults:\n  - {at: 1s, diskFull: gateway, for: 2s}\n", 3, "diskFull: gateway keeps no database, so it has no disk to fault"),
        ("name: t\nfaults:\n  - {at: 1s, slowSync: {service: gateway, by: 1s}, for: 2s}\n", 3, "slowSync: gateway keeps no database"),
        ("name: t\ndurability: {gateway: normal}\n", 2, "durability.gateway: gateway keeps no database, so it has nothing to sync"),
        // A key given twice: the line of the second one (Yams names the mapping's first line).
        ("name: t\nseed: 3\nname: u\n", 3, "'name' is given twice in one mapping"),
        ("name: t\nworkload:\n  rate: 5\n  rate: 6\n", 4, "'rate' is given twice"),
        // Found by a scenario author's trial (2026-12-06): faults that did nothing, or less than
        // they said, and expectations no run can meet, all loaded without a word.
        ("name: t\nfaults:\n  - {at: 1s, partition: [order, order], for: 1s}\n", 3, "two different services, not order twice"),
        ("name: t\nfaults:\n  - {at: 1s, partitionOneWay: {from: order, to: order}, for: 1s}\n", 3, "two different services"),
        ("name: t\nfaults:\n  - {at: 1s, link: {from: order, to: order, drop: 0.5}, for: 1s}\n", 3, "two different services"),
        ("name: t\nfaults:\n  - {at: 1s, crash: payment, for: 2s}\n", 3, "a crash ends by its restart: give restartAfter, not for"),
        ("name: t\nfaults:\n  - {at: 1s, upgrade: {event: OrderCreated, version: \"2.0\"}, for: 2s}\n", 3, "an upgrade does not end"),
        ("name: t\nexpect: {minCancelled: 10, maxCancelled: 2}\n", 2, "no run can meet both"),
        ("name: t\nexpect: {minDispensed: 5}\n", 2, "expect.minDispensed needs vends"),
        ("name: t\nexpect: {onTheBus: [OrderCreated 9.9]}\n", 2, "expect.onTheBus: "),
        ("name: t\nworkload:\n\trate: 5\n", 3, "a tab on this line"),
        ("name: t\nduration: 99999999999h\n", 2, "duration must be at most 86400s, got '99999999999h'"),
        ("name: t\nduration: 5ems\n", 2, "duration must be a duration such as"),
        // A second scenario author's trial (2026-12-06): a misspelt method's service time and a
        // misspelt cancel reason were taken without a word; a name wrote outside reports/.
        ("name: t\nnetwork: {serviceTime: {inventroy.reserveStock: {min: 100ms, max: 200ms}}}\n", 2,
         "network.serviceTime: no service serves 'inventroy.reserveStock'; the methods are "),
        ("name: t\nexpect:\n  cancelReasons: [out_of_stock,\n    out_of_stok]\n", 4, "no order is cancelled for 'out_of_stok'; the reasons are cancelled, "),
        ("name: \"../../escaped/x\"\n", 1, "name must not begin with '.'"),
        ("name: a/b\n", 1, "must not hold '/'"),
        ("name: \"\"\n", 1, "name must not be empty"),
        ("name: t\nfaults:\n  - &f {at: 1s, crash: order}\n  - {<<: *f, at: 2s}\n", 4, "YAML merge keys ('<<') are not read here"),
    ])
    func badInputNamesLineAndProblem(text: String, line: Int, message: String) {
        do {
            _ = try ScenarioLoader.parse(text, file: "bad.yaml")
            Issue.record("accepted a bad scenario")
        } catch {
            #expect(error.file == "bad.yaml")
            #expect(error.line == line, "\(error)")
            #expect(error.message.contains(message), "\(error)")
            #expect(error.description.hasPrefix("bad.yaml:\(line): "), "\(error)")
        }
    }
}
