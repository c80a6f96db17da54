import ERPReports
import ERPTestSupport
import Foundation
import GRDB
import Testing

/// What the reports count when a run goes badly: found by a scenario author's trial (2026-12-06).
@Suite struct ReportCountTests {
    private func runFile(_ label: String, _ yaml: String) async throws -> (output: String, status: Int32, out: String, cleanup: @Sendable () -> Void) {
        let (file, dir) = try scenarioFile("report-\(label)", yaml)
        let result = try await runErp(["run", file, "--out", dir + "/out"])
        return (result.output, result.status, dir + "/out", { try? FileManager.default.removeItem(atPath: dir) })
    }

    private func summaryJSON(_ out: String) throws -> [String: Any] {
        let data = try #require(FileManager.default.contents(atPath: out + "/summary.json"))
        return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    /// With a database damaged the checker judges nothing else; the console said "stock
    /// conserved: NO", counted 0 orders accepted of 287, and JUnit skipped the other invariants
    /// as "no such service or workload".
    @Test func aDamagedDatabaseSaysWhatWasNotJudged() async throws {
        let run = try await runFile("damaged", """
            name: weak-durability
            seed: 7
            duration: 15s
            heal: 40s
            fixtures: FIXTURES
            workload:
              orders: {rate: 20}
            durability: {order: "off"}
            faults:
              - {at: 3s, powerLoss: order, restartAfter: 1s}
            """)
        defer { run.cleanup() }
        #expect(run.status == 2, "\(run.output)")
        #expect(run.output.contains("FAIL  databases-intact"), "the scenario no longer damages the order database: \(run.output)")
        #expect(!run.output.contains("stock conserved: NO"), "\(run.output)")
        #expect(run.output.contains("stock conserved: not judged: a database is damaged"), "\(run.output)")
        #expect(run.output.contains("given up by the client; accepted, confirmed, cancelled and pending not judged"), "\(run.output)")
        #expect(try summaryJSON(run.out)["countsNotJudged"] as? String == RunSummary.notJudgedForDamage)
        let junit = try String(contentsOfFile: run.out + "/junit.xml", encoding: .utf8)
        #expect(junit.contains("skipped message=\"not judged: a database is damaged"), "\(junit.prefix(2_000))")
        #expect(!junit.contains("no such service or workload"))
        let counts = try #require(try summaryJSON(run.out)["violationCounts"] as? [String: Int])
        #expect((counts["databases-intact"] ?? 0) >= 1, "\(counts)")
    }

    /// A pause cut short by a crash: the messages held for the paused process died with it and
    /// were in no total (3,843 sent, 3,780 delivered, 52 dropped), and the reports showed the
    /// pause lasting its whole length though the restarted process served at once.
    @Test func aPauseEndedByACrashAddsUp() async throws {
        let run = try await runFile("pause-crash", """
            name: pause-crash
            seed: 17
            duration: 15s
            heal: 40s
            fixtures: FIXTURES
            workload:
              orders: {rate: 10}
            resilience:
              circuitBreaker: {resetTimeout: 2s}
            faults:
              - {at: 5s, pause: payment, for: 4s}
              - {at: 6s, crash: payment, restartAfter: 1s}
            """)
        defer { run.cleanup() }
        // A passing run's summary has the same keys as a failing one's (violationCounts was
        // absent), and its verdict.
        #expect(try summaryJSON(run.out)["violationCounts"] as? [String: Int] == [:])
        #expect(try summaryJSON(run.out)["exitStatus"] as? Int == 0 && run.status == 0)
        // JUnit cases keep their identity across seeds: no seed in the classname.
        let junit = try String(contentsOfFile: run.out + "/junit.xml", encoding: .utf8)
        #expect(junit.contains(#"classname="pause-crash.simulation""#), "\(junit.prefix(600))")
        let network = try #require(try summaryJSON(run.out)["network"] as? [String: Int])
        let (sent, delivered, dropped) = (network["sent"] ?? -1, network["delivered"] ?? -1, network["dropped"] ?? -1)
        #expect(network["duplicated"] == 0 && sent == delivered + dropped, "\(network)")
        let faults = try #require(try summaryJSON(run.out)["faults"] as? [String])
        #expect(faults.first == "at 5s for 4s: pause payment (ended at 6s by: crash payment, restart after 1s)", "\(faults)")
    }

    /// The workload is the seed's, whatever the faults: the same scenario with and without its
    /// clock skews submitted 133 and 118 orders at seed 21 (retries drew from the stream the
    /// arrivals and the orders' contents came from), so a fault changed what was ordered and
    /// `erp shrink`, taking faults out, changed the workload under them.
    @Test func theOrdersDoNotMoveWithTheFaults() async throws {
        let head = """
            name: skews
            seed: 21
            duration: 15s
            heal: 40s
            fixtures: FIXTURES
            workload:
              orders: {rate: 10}

            """
        let faulty = try await runFile("with-faults", head + """
            faults:
              - {at: 1s, clockSkew: {service: order, by: -4s}, for: 5s}
              - {at: 3s, clockSkew: {service: swishpay, by: 10s}, for: 5s}
              - {at: 8s, clockSkew: {service: event-bus, by: 30s}}
              - {at: 9s, clockSkew: {service: gateway, by: -2500ms}, for: 3s}
            """)
        defer { faulty.cleanup() }
        let calm = try await runFile("without", head)
        defer { calm.cleanup() }
        func orders(_ out: String) throws -> [String] {
            try DatabaseQueue(path: out + "/db/order-order.sqlite").read { db in
                try String.fetchAll(db, sql: """
                    SELECT r.requestKey || ' ' || o.userId || ' ' || o.shopId || ' ' || o.items FROM order_request r JOIN orders o USING (orderId)
                    ORDER BY CAST(substr(r.requestKey, 5) AS INTEGER)
                    """)
            }
        }
        let submitted = { (out: String) throws -> Int? in ((try self.summaryJSON(out))["orders"] as? [String: Any])?["submitted"] as? Int }
        #expect(try submitted(faulty.out) != nil && submitted(faulty.out) == submitted(calm.out))
        // The skews keep some orders from being accepted; each one that was is the calm run's.
        let (a, b) = (try orders(faulty.out), Set(try orders(calm.out)))
        #expect(a.count > 20 && b.count > 100, "\(a.count) and \(b.count) orders")
        #expect(a.allSatisfy(b.contains), "not in the calm run: \(a.filter { !b.contains($0) }.prefix(3))")
    }

    /// A device declared offline for its silence was last seen when the gateway last heard it:
    /// the shop's lastSeen jumped to the declaration, seconds later (a device developer's trial).
    @Test func aSilencedDeviceWasLastSeenWhenLastHeard() async throws {
        let dir = scratchDirectory("last-seen")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let result = try await runErp(["run", "scenarios/iot-partition.yaml", "--out", dir + "/out"])
        #expect(result.status == 0, "\(result.output)")
        let heard: [String: Int64] = try await DatabaseQueue(path: dir + "/out/db/iot-gateway-iot.sqlite").read { db in
            Dictionary(uniqueKeysWithValues: try Row.fetchAll(db, sql: "SELECT deviceId, lastReportAt FROM device WHERE silent = 1").map {
                ($0["deviceId"] as String, $0["lastReportAt"] as Int64)
            })
        }
        let seen: [String: Int64] = try await DatabaseQueue(path: dir + "/out/db/shop-shop.sqlite").read { db in
            Dictionary(uniqueKeysWithValues: try Row.fetchAll(db, sql: "SELECT deviceId, lastSeen FROM device WHERE status = 'offline'").map {
                ($0["deviceId"] as String, $0["lastSeen"] as Int64)
            })
        }
        #expect(!heard.isEmpty, "no device fell silent")
        for (device, at) in heard.sorted(by: { $0.key < $1.key }) { #expect(seen[device] == at, "\(device): heard at \(at), seen at \(String(describing: seen[device]))") }
    }

    /// A consumer down past the bus's retry bound: 28 dead letters, and violationCounts said 20
    /// (the checker's query read 20 examples and counted those).
    @Test func everyUndeliveredEventIsCounted() async throws {
        let run = try await runFile("dead", """
            name: dead-letters
            seed: 5
            duration: 140s
            heal: 30s
            fixtures: FIXTURES
            workload:
              orders: {rate: 0.5}
            faults:
              - {at: 2s, crash: notification, restartAfter: 130s}
            """)
        defer { run.cleanup() }
        let summary = try summaryJSON(run.out)
        let dead = try #require(summary["deadLetters"] as? Int)
        #expect(dead > 20, "the scenario no longer dead-letters more than the checker's 20 examples")
        let counts = try #require(summary["violationCounts"] as? [String: Int])
        #expect(counts["every-event-delivered-after-heal"] == dead, "\(counts), \(dead) dead letters")
        // The group's first example says how it stands: here every delivery it lacks was given up.
        let violations = try #require(summary["violations"] as? [[String: String]])
        let first = violations.first { $0["invariant"] == "every-event-delivered-after-heal" }?["example"] ?? ""
        #expect(first.contains("; notification has \(dead) of its ") && first.contains(": 0 never attempted, 0 pending after failed attempts, \(dead) dead-lettered"), "\(first)")
        // The verdict is in the files too, as the exit status says it.
        #expect(summary["exitStatus"] as? Int == 2 && run.status == 2, "\(run.status)")
        #expect(run.output.contains("every-event-delivered-after-heal: \(dead) counter-examples in all"), "\(run.output)")

        // Requeued by position: one that is a dead letter and one that is not. The second was
        // passed over without a word ("requeued 1 dead letters").
        // A list cut short by --limit says how many there are in all (a script could not tell).
        let two = try await runErp(["events", "dead-letters", run.out + "/db", "--json", "--limit", "2"])
        let listed = try #require(try JSONSerialization.jsonObject(with: Data(two.output.utf8)) as? [String: Any])
        #expect((listed["letters"] as? [Any])?.count == 2 && listed["total"] as? Int == dead, "\(two.output)")
        let short = try await runErp(["events", "dead-letters", run.out + "/db", "--limit", "2"])
        #expect(short.output.contains("… \(dead - 2) more (\(dead) in all; --limit shows more)"), "\(short.output)")
        let letters = try await runErp(["events", "dead-letters", run.out + "/db", "--group", "notification"])
        let firstLine = try #require(letters.output.split(separator: "\n").first { $0.hasPrefix("notification\tseq ") })
        let seq = try #require(firstLine.split(separator: "\t")[1].split(separator: " ").last.map(String.init))
        let requeue = try await runErp(["events", "requeue", run.out + "/db", "--group", "notification", "--seq", seq, "--seq", "999999"])
        #expect(requeue.status == 1, "\(requeue.output)")
        #expect(requeue.output.contains("requeued 1 dead letters of notification"), "\(requeue.output)")
        #expect(requeue.output.contains("no dead letter of notification at seq 999999 (left alone)"), "\(requeue.output)")
    }
}
