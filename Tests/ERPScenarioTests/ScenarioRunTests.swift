import ERPCore
import ERPReports
import ERPScenario
import ERPTestSupport
import Foundation
import Testing

/// A scenario in simulation, its report removed afterwards.
func run(_ scenario: Scenario, seed: UInt64? = nil) async throws -> RunSummary {
    try await runInSimulation(scenario, seed: seed)
}

@Suite struct FixtureTests {
    @Test func fixturesHaveWhatTheIssueAsks() throws {
        let f = try loadFixtures()
        #expect(f.products.count >= 20)
        #expect(f.shops.count >= 3)
        #expect(f.customers.count >= 100)
        for shop in f.shops { #expect(shop.stock.allSatisfy { f.product($0.productId) != nil && $0.quantity > 0 }) }
    }
}

@Suite struct ScenarioLibraryTests {
    @Test(arguments: ["happy-path", "payment-declines", "order-crash", "inventory-outage", "slow-payment", "chaos-mix"])
    func everyLibraryScenarioHoldsItsInvariants(name: String) async throws {
        let summary = try await run(try library(name))
        #expect(summary.invariantsPass, "\(summary.violations)")
        #expect(summary.expectationFailures.isEmpty, "\(summary.expectationFailures)")
        #expect(summary.orders.pending == 0)
        #expect(summary.orders.accepted == summary.orders.confirmed + summary.orders.cancelled)
        #expect(summary.latency["orderPlacement"]!.count > 0)
        // Per call too: every reservation the sagas made, timed from the caller's side.
        #expect((summary.latency["rpc inventory.reserveStock"]?.count ?? 0) >= summary.orders.accepted - summary.orders.cancelled)
    }

    @Test func declinesGiveBothOutcomes() async throws {
        let summary = try await run(try library("payment-declines"))
        #expect(summary.orders.confirmed > 0 && summary.orders.cancelled > 0)
        #expect(summary.orders.cancelReasons["payment_failed", default: 0] > 0)
    }

    @Test func theOrderServiceRestartsAndFinishesItsSagas() async throws {
        let summary = try await run(try library("order-crash"))
        #expect(summary.serviceStarts["order"] == 3)
        #expect(summary.orders.pending == 0)
        #expect(summary.invariants["every-accepted-order-terminal-after-heal"] == .pass)
    }
}

@Suite struct ResilienceScenarioTests {
    /// While inventory is away the breaker opens, orders that arrive then are cancelled at once
    /// (nothing was reserved), and after heal the breaker closes.
    @Test(arguments: [11, 12, 13] as [UInt64])
    func inventoryOutageOpensAndClosesTheBreaker(seed: UInt64) async throws {
        let summary = try await run(try library("inventory-outage"), seed: seed)
        #expect(summary.invariantsPass, "\(summary.violations)")
        let path = try #require(summary.resilience["order->inventory"])
        #expect(path.breakerOpened >= 1)
        #expect(path.breakerRejections > 0)
        #expect(path.breakerState == "closed")
        #expect(path.breakerClosed >= 1)
        #expect(summary.orders.cancelReasons["inventory_unavailable", default: 0] > 0)
    }

    /// The provider answers after the deadline: charges are retried with the same key, and no
    /// customer is ever charged twice (the invariants read swishpay's ledger).
    @Test(arguments: [5, 6, 7] as [UInt64])
    func slowProviderNeverChargesTwice(seed: UInt64) async throws {
        let summary = try await run(try library("slow-payment"), seed: seed)
        #expect(summary.invariants["confirmed-order-has-exactly-one-captured-payment"] == .pass, "\(summary.violations)")
        #expect(summary.invariants["cancelled-order-has-no-net-charge"] == .pass)
        let payments = try #require(summary.resilience["order->payment"])
        #expect(payments.calls > summary.orders.accepted, "the slow window must make the saga ask again")
        #expect(payments.failedCalls > 0)
    }

    @Test func theGatewayShedsBurstsAndClientsComeBackLater() async throws {
        var s = Scenario(name: "rate-limited")
        s.duration = .seconds(5)
        s.heal = .seconds(20)
        s.workload.ratePerSecond = 40
        s.workload.attemptCountMax = 8
        s.resilience.gatewayRateLimit = .init(capacity: 10, refillRatePerSecond: 20)
        let summary = try await run(s)
        #expect(summary.rateLimited > 0)
        #expect(summary.invariantsPass, "\(summary.violations)")
        #expect(summary.orders.confirmed > 0)
    }
}

/// A checker that never fails proves nothing: each planted defect must be caught by the invariant
/// that guards against it, and the same scenario without the defect must pass.
@Suite struct PlantedDefectTests {
    func scenario(_ defect: String?, declineRate: Double = 0, duplicate: Double = 0) -> Scenario {
        var s = Scenario(name: "defect-\(defect ?? "none")")
        s.seed = 5
        s.duration = .seconds(4)
        s.heal = .seconds(10)
        s.workload.ratePerSecond = 20
        s.payment.declineRate = declineRate
        s.network.link.duplicateProbability = duplicate
        if let defect { _ = s.defects.enable(defect) }
        return s
    }

    @Test(arguments: [
        ("skip-stock-release", 0.5, 0.0, "confirmed-order-stock-taken-cancelled-order-stock-released"),
        ("confirm-declined-payments", 0.5, 0.0, "confirmed-order-has-exactly-one-captured-payment"),
        ("ignore-payment-idempotency", 0.0, 0.3, "confirmed-order-has-exactly-one-captured-payment"),
        ("skip-inbox", 0.0, 0.3, "one-confirmation-per-confirmed-order"),
        // The catalogue counts a redelivered StockUpdated twice.
        ("skip-inbox", 0.0, 0.3, "product-availability-follows-stock"),
    ])
    func eachDefectIsCaught(defect: String, declineRate: Double, duplicate: Double, invariant: String) async throws {
        let control = try await run(scenario(nil, declineRate: declineRate, duplicate: duplicate))
        #expect(control.invariantsPass, "control run failed: \(control.violations)")
        let broken = try await run(scenario(defect, declineRate: declineRate, duplicate: duplicate))
        #expect(broken.invariants[invariant] == .fail, "\(defect) was not caught by \(invariant)")
        #expect(broken.violations.contains { $0.invariant == invariant })
    }
}

/// The same scenario and seed in two separate processes give the same trace hash; another seed
/// gives another. No hashing environment variable is set.
@Suite struct CrossProcessDeterminismTests {
    func runCLI(_ arguments: [String]) throws -> (status: Int32, output: String) {
        guard FileManager.default.isExecutableFile(atPath: erpBinary) else {
            throw CocoaError(.fileNoSuchFile, userInfo: [NSFilePathErrorKey: erpBinary])
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: erpBinary)
        process.arguments = arguments
        process.currentDirectoryURL = URL(fileURLWithPath: packageRoot)
        var environment = ProcessInfo.processInfo.environment
        environment.removeValue(forKey: "SWIFT_DETERMINISTIC_HASHING")
        process.environment = environment
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    func hash(_ output: String) -> String? {
        output.split(separator: "\n").first { $0.hasPrefix("trace hash: ") }.map { String($0.split(separator: " ")[2]) }
    }

    @Test func twoProcessesOneSeedOneHash() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("erp-cli-\(UInt64.random(in: 0...UInt64.max))").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let a = try runCLI(["run", "scenarios/order-crash.yaml", "--seed", "11", "--out", dir + "/a"])
        let b = try runCLI(["run", "scenarios/order-crash.yaml", "--seed", "11", "--out", dir + "/b"])
        let c = try runCLI(["run", "scenarios/order-crash.yaml", "--seed", "12", "--out", dir + "/c"])
        #expect(a.status == 0 && b.status == 0 && c.status == 0, "\(a.output)\n\(c.output)")
        #expect(hash(a.output) != nil)
        #expect(hash(a.output) == hash(b.output))
        #expect(hash(a.output) != hash(c.output))
        let summary = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/a/summary.json"))) as! [String: Any]
        #expect(summary["traceHash"] as? String == hash(a.output))
        for key in ["scenario", "seed", "mode", "traceHash", "orders", "invariants", "latency"] { #expect(summary[key] != nil, "\(key)") }
    }

    @Test func aBadScenarioExitsNonZeroWithFileAndLineAndWritesNothing() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("erp-bad-\(UInt64.random(in: 0...UInt64.max))").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try "name: bad\nworkload:\n  orders:\n    rate: -3\n".write(toFile: dir + "/bad.yaml", atomically: true, encoding: .utf8)
        let result = try runCLI(["run", dir + "/bad.yaml", "--out", dir + "/out"])
        #expect(result.status == 1)
        #expect(result.output.contains("bad.yaml:4: workload.orders.rate must not be negative"), "\(result.output)")
        #expect(!FileManager.default.fileExists(atPath: dir + "/out"))
        #expect(!FileManager.default.fileExists(atPath: dir + "/out.partial"))
    }
}

/// Service, storage, resilience and transport code (the relay and the consumers run in simulation
/// too) must take time, randomness and tasks from the runtime.
@Suite struct DeterminismLintTests {
    static let banned = #"Date\(\)|Task\.sleep|UUID\(\)|\.random\(|Task *\{|Task\.detached|DispatchQueue|Thread\b|@MainActor|ContinuousClock"#

    static func offences(in text: String, file: String) throws -> [String] {
        let regex = try Regex(banned)
        var out: [String] = []
        for (i, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let code = line.trimmingCharacters(in: .whitespaces)
            if code.hasPrefix("//") { continue }
            if line.contains(regex) { out.append("\(file):\(i + 1): \(code)") }
        }
        return out
    }

    @Test func theLintCatchesWhatItMust() throws {
        #expect(try Self.offences(in: "let t = Date()\n// Date() in a comment\nTask { }\nlet x = Int.random(in: 0...1)", file: "f").count == 3)
    }

    @Test func servicesStorageResilienceAndTransportUseOnlyTheRuntime() throws {
        var offences: [String] = []
        for module in ["ERPServices", "ERPStorage", "ERPResilience", "ERPTransport"] {
            let dir = packageRoot + "/Sources/" + module
            guard let files = FileManager.default.enumerator(atPath: dir) else { continue }
            for case let file as String in files where file.hasSuffix(".swift") {
                offences += try Self.offences(in: String(contentsOfFile: dir + "/" + file, encoding: .utf8), file: module + "/" + file)
            }
        }
        #expect(offences.isEmpty, "\(offences.joined(separator: "\n"))")
    }
}
