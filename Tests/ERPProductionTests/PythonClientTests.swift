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
        let probe = sh(Self.python, ["-c", "import zmq"])
        try #require(probe.status == 0, "no Python ZeroMQ binding at \(Self.python): scripts/install-deps.sh --test installs python3-zmq (\(probe.output))")
        let binary = erpBinary
        try #require(FileManager.default.isExecutableFile(atPath: binary), "build erp first (swift build)")
        let dir = scratchDirectory("python")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let services = LoopbackTopology.orderServices
        let loopback = try LoopbackTopology(name: "python", services: services, clients: ["example-client"], in: dir)

        let up = try startErpUp(binary, topology: loopback.path, log: dir + "/up.log")
        defer { if up.isRunning { up.terminate(); up.waitUntilExit() } }
        try #require(try await loopback.gatewayHealthy(), "the gateway never answered /health")

        let client = sh(Self.python, [packageRoot + "/examples/python/place_order.py", "shop_stockholm", "prod_01"],
                        environment: ["ERP_GATEWAY_ENDPOINT": loopback.endpoints["gateway"]!, "ERP_KEYS_DIR": loopback.keys])
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
}
