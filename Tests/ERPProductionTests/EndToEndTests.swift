import ERPCore
import ERPProduction
import ERPReports
import ERPScenario
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import ERPTestSupport
import Testing


/// A port nobody listens on now (the kernel picks it; we close and reuse it at once).
func freePort() throws -> Int { try freeLoopbackPort() }

/// `erp up` on `topology` with the library's fixtures, its output (every service's) in `log`.
func startErpUp(_ binary: String, topology: String, log: String, more: [String] = []) throws -> Process {
    let up = Process()
    up.executableURL = URL(fileURLWithPath: binary)
    up.arguments = ["up", "--topology", topology, "--fixtures", packageRoot + "/fixtures/retail.json"] + more
    FileManager.default.createFile(atPath: log, contents: nil)
    up.standardOutput = FileHandle(forWritingAtPath: log)
    up.standardError = up.standardOutput
    try up.run()
    return up
}

/// A topology of `services` on loopback ports, the gateway's HTTP on one more (API key `k1`), with
/// fresh CURVE keys for the services and for `clients`, written into `directory`.
struct LoopbackTopology {
    /// The services an order over HTTP passes through (and the bus, the provider, notification).
    static let orderServices = ["event-bus", "swishpay", "inventory", "product", "payment", "order", "notification", "gateway"]

    let path: String
    let keys: String
    let httpPort: Int
    /// Each service's ZeroMQ endpoint.
    let endpoints: [String: String]

    init(name: String, services: [String], clients: [String], in directory: String) throws {
        httpPort = try freePort()
        var yaml = "name: \(name)\ndataDirectory: data\nhttp: {host: 127.0.0.1, port: \(httpPort), apiKeys: [k1]}\n"
        yaml += "security: {curveKeys: keys, clients: [\(clients.joined(separator: ", "))]}\nservices:\n"
        var endpoints: [String: String] = [:]
        for service in services {
            endpoints[service] = "tcp://127.0.0.1:\(try freePort())"
            yaml += "  \(service): \(endpoints[service]!)\n"
        }
        self.endpoints = endpoints
        path = directory + "/topology.yaml"
        try yaml.write(toFile: path, atomically: true, encoding: .utf8)
        keys = directory + "/keys"
        try KeyStore(directory: keys).generate(for: services.compactMap(ServiceName.init(named:)))
        _ = try KeyStore(directory: keys).generate(named: clients)
    }

    /// Whether the gateway answered /health with 200 within 10 seconds.
    func gatewayHealthy() async throws -> Bool {
        for _ in 0..<100 {
            if await http("GET", "http://127.0.0.1:\(httpPort)/health")?.status == 200 { return true }
            try await Task.sleep(for: .milliseconds(100))
        }
        return false
    }
}

/// Processes whose command line contains `needle` (read from /proc, so no tool is needed).
func processes(matching needle: String) -> [Int32] {
    guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
    return entries.compactMap { entry in
        guard let pid = Int32(entry), let data = FileManager.default.contents(atPath: "/proc/\(entry)/cmdline") else { return nil }
        let line = String(decoding: data.map { $0 == 0 ? 32 : $0 }, as: UTF8.self)
        return line.contains(needle) ? pid : nil
    }
}

struct HTTPResult { var status: Int; var body: Data }

func http(_ method: String, _ url: String, body: String? = nil, headers: [String: String] = [:]) async -> HTTPResult? {
    var request = URLRequest(url: URL(string: url)!)
    request.httpMethod = method
    request.timeoutInterval = 5
    for (k, v) in headers { request.setValue(v, forHTTPHeaderField: k) }
    request.httpBody = body.map { Data($0.utf8) }
    guard let (data, response) = try? await URLSession.shared.data(for: request), let r = response as? HTTPURLResponse else { return nil }
    return HTTPResult(status: r.statusCode, body: data)
}

/// The whole topology as processes over ZeroMQ with CURVE, orders over real HTTP, the order
/// service SIGKILLed in the middle and respawned; afterwards every order is confirmed or
/// cancelled, nobody was charged twice and stock is conserved (judged from the databases).
@Suite(.serialized) struct EndToEndTests {
    @Test func ordersOverHTTPSurviveSIGKILLOfTheOrderService() async throws {
        let binary = erpBinary
        try #require(FileManager.default.isExecutableFile(atPath: binary), "build erp first (swift build)")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("erp-e2e-\(UInt64.random(in: 0...UInt64.max))").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let services = LoopbackTopology.orderServices
        let loopback = try LoopbackTopology(name: "e2e", services: services, clients: ["tool"], in: dir)
        let topology = loopback.path

        // The databases where --data says, not in the topology's folder (a device integrator had
        // to copy the topology to keep them out of the repository).
        let log = dir + "/up.log", data = dir + "/elsewhere"
        let up = try startErpUp(binary, topology: topology, log: log, more: ["--data", data])
        defer { if up.isRunning { up.terminate(); up.waitUntilExit() } }

        let base = "http://127.0.0.1:\(loopback.httpPort)"
        try #require(try await loopback.gatewayHealthy(), "the gateway never answered /health")
        let product = await http("GET", base + "/products/prod_01", headers: ["X-API-Key": "k1"])
        #expect(product?.status == 200)
        let info = try product.map { try JSONDecoder().decode(ProductInfo.self, from: $0.body) }
        #expect(info?.name == "Espresso beans 500g" && info?.available == true)
        #expect(await http("GET", base + "/products/prod_nope", headers: ["X-API-Key": "k1"])?.status == 404)

        var records: [ClientRecord] = []
        let customers = (1...20).map { String(format: "user_%03d", $0) }
        for n in 0..<40 {
            if n == 15 {
                let victims = processes(matching: "serve order --topology \(topology)")
                try #require(!victims.isEmpty, "no order service process found")
                for pid in victims { kill(pid, SIGKILL) }
            }
            let key = "e2e-\(n)"
            let body = #"{"userId":"\#(customers[n % 20])","shopId":"shop_stockholm","items":[{"productId":"prod_\#(String(format: "%02d", n % 20 + 1))","quantity":1}]}"#
            var record = ClientRecord(requestKey: key, scheduledAt: .simulationEpoch, completedAt: nil, outcome: .gaveUp, orderId: nil, attempts: 0)
            // Retry with the same Idempotency-Key while the outcome is unknown (5xx, no answer).
            for attempt in 1...100 {
                record.attempts = attempt
                let r = await http("POST", base + "/orders", body: body, headers: ["X-API-Key": "k1", "Idempotency-Key": key, "Content-Type": "application/json"])
                if let r, r.status == 201 || r.status == 202 {
                    let view = try JSONDecoder().decode(OrderView.self, from: r.body)
                    record.orderId = view.orderId
                    record.outcome = view.status == .confirmed ? .confirmed : view.status == .cancelled ? .cancelled : .pending
                    break
                }
                try await Task.sleep(for: .milliseconds(200))
            }
            records.append(record)
        }
        #expect(records.allSatisfy { $0.orderId != nil }, "some orders were never accepted: \(records.filter { $0.orderId == nil }.map(\.requestKey))")
        #expect(processes(matching: "serve order --topology \(topology)").count == 1, "the order service was not respawned")

        // Let pending orders finish, reading them back over HTTP.
        for i in records.indices where records[i].outcome == .pending {
            for _ in 0..<100 {
                if let r = await http("GET", base + "/orders/\(records[i].orderId!)", headers: ["X-API-Key": "k1"]), r.status == 200,
                   let view = try? JSONDecoder().decode(OrderView.self, from: r.body), view.status != .pending {
                    records[i].outcome = view.status == .confirmed ? .confirmed : .cancelled
                    break
                }
                try await Task.sleep(for: .milliseconds(200))
            }
        }
        try await Task.sleep(for: .seconds(2)) // events settle (inventory commits, notifications)
        // A tool with the topology's client key asks the running bus: no dead letters; a replay of
        // notification's group from the start is queued, and its inbox makes it change nothing
        // (one-confirmation-per-confirmed-order below still holds).
        let letters = try await runErp(["events", "dead-letters", "--topology", topology, "--as", "tool"])
        #expect(letters.status == 0 && letters.output.contains("no dead letters"), "\(letters.output)")
        let replay = try await runErp(["events", "replay", "--topology", topology, "--as", "tool", "--group", "notification", "--from", "0"])
        #expect(replay.status == 0 && replay.output.contains("queued"), "\(replay.output)")
        let refused = try await runErp(["events", "dead-letters", "--topology", topology, "--as", "order"])
        #expect(refused.status != 0, "a service's key is not a tool's: \(refused.output)")
        try await Task.sleep(for: .seconds(2)) // the replayed deliveries are acknowledged
        up.terminate()
        await waitForExit(up)

        var summary = RunSummary(scenario: "e2e", seed: 0, mode: "zmq", reproduce: "", chaos: .zero, heal: .zero)
        try ConsistencyChecker(databaseDirectory: data, history: records).check(into: &summary)
        #expect(summary.orders.accepted == 40)
        #expect(!FileManager.default.fileExists(atPath: dir + "/data"), "a service kept its database in the topology's folder")
        let said = String(decoding: FileManager.default.contents(atPath: log) ?? Data(), as: UTF8.self)
        #expect(said.contains("erp up: pid \(up.processIdentifier); databases in \(data); kill -HUP \(up.processIdentifier)"), "\(said.prefix(2_000))")
        #expect(summary.invariantsPass, "\(summary.violations)\n\(String(decoding: FileManager.default.contents(atPath: log) ?? Data(), as: UTF8.self).suffix(3000))")
    }
}
