import ERPCore
import ERPProduction
import ERPTestSupport
import Foundation
import Testing

/// docs/wire-format.md's client in another language, run against a live system: Debian's
/// Python with its ZeroMQ binding (`scripts/install-deps.sh --test` installs `python3-zmq`) runs
/// `examples/python/place_order.py` against `erp up` over CURVE, so the erp/2 frame as another
/// language writes it from the document is checked on every run, not only the Swift side's bytes.
@Suite(.serialized) struct PythonClientTests {
    /// The interpreter `python3-zmq` installs into (a `python3` earlier on PATH may be another).
    static let python = "/usr/bin/python3"

    @Test func theExampleClientPlacesAnOrderAndItsRepeatOverERP2() async throws {
        let probe = try run(Self.python, ["-c", "import zmq"], environment: [:])
        try #require(probe.status == 0, "no Python ZeroMQ binding at \(Self.python): scripts/install-deps.sh --test installs python3-zmq (\(probe.output))")
        let binary = erpBinary
        try #require(FileManager.default.isExecutableFile(atPath: binary), "build erp first (swift build)")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("erp-python-\(UInt64.random(in: 0...UInt64.max))").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let services = ["event-bus", "swishpay", "inventory", "product", "payment", "order", "notification", "gateway"]
        let httpPort = try freePort()
        var yaml = "name: python\ndataDirectory: data\nhttp: {host: 127.0.0.1, port: \(httpPort), apiKeys: [k1]}\n"
        yaml += "security: {curveKeys: keys, clients: [example-client]}\nservices:\n"
        var gateway = ""
        for service in services {
            let endpoint = "tcp://127.0.0.1:\(try freePort())"
            if service == "gateway" { gateway = endpoint }
            yaml += "  \(service): \(endpoint)\n"
        }
        let topology = dir + "/topology.yaml"
        try yaml.write(toFile: topology, atomically: true, encoding: .utf8)
        try KeyStore(directory: dir + "/keys").generate(for: services.compactMap(ServiceName.init(named:)))
        _ = try KeyStore(directory: dir + "/keys").generate(named: ["example-client"])

        let up = try startErpUp(binary, topology: topology, log: dir + "/up.log")
        defer { if up.isRunning { up.terminate(); up.waitUntilExit() } }
        var healthy = false
        for _ in 0..<100 where !healthy {
            healthy = await http("GET", "http://127.0.0.1:\(httpPort)/health")?.status == 200
            if !healthy { try await Task.sleep(for: .milliseconds(100)) }
        }
        try #require(healthy, "the gateway never answered /health")

        let client = try run(Self.python, [packageRoot + "/examples/python/place_order.py", "shop_stockholm", "prod_01"],
                             environment: ["ERP_GATEWAY_ENDPOINT": gateway, "ERP_KEYS_DIR": dir + "/keys"])
        try #require(client.status == 0, "the example failed: \(client.output)")
        // Three lines: the order placed, the same order for the repeated idempotency key, and the
        // order read back.
        var orders: [String: OrderView] = [:]
        for line in client.output.split(separator: "\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let label = String(line[..<colon]), json = line[line.index(after: colon)...]
            orders[label] = try? JSONDecoder().decode(OrderView.self, from: Data(json.utf8))
        }
        let placed = try #require(orders["placed"], "no order placed: \(client.output)")
        #expect(placed.status == .confirmed && placed.shopId == "shop_stockholm" && placed.items.first?.productId == "prod_01")
        #expect(orders["same key again"]?.orderId == placed.orderId, "\(client.output)")
        #expect(orders["read back"]?.orderId == placed.orderId, "\(client.output)")
    }

    private func run(_ executable: String, _ arguments: [String], environment: [String: String]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }
}
