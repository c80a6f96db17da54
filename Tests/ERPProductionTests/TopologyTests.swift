import ERPCore
import ERPProduction
import ERPStorage
import ERPZeroMQ
import Foundation
import ERPTestSupport
import Testing

let sample = """
    name: local
    dataDirectory: data
    http: {host: 127.0.0.1, port: 8080, apiKeys: [dev-key]}
    security: {curveKeys: keys}
    services:
      gateway: tcp://127.0.0.1:7107
      order: tcp://127.0.0.1:7105
      event-bus: tcp://127.0.0.1:7101
    """

@Suite struct TopologyTests {
    @Test func readsEndpointsInStartOrderWithEnvironmentOverrides() throws {
        let t = try Topology.parse(sample, file: "t.yaml", environment: ["ERP_ORDER_ENDPOINT": "tcp://10.1.2.3:9000"])
        #expect(t.services == [.eventBus, .order, .gateway])
        #expect(t.endpoint(of: .order) == "tcp://10.1.2.3:9000")
        #expect(t.apiKeys == ["dev-key"] && t.httpPort == 8080)
        #expect(t.keyDirectory == "keys" && !t.plaintext)
        #expect(t.synchronous == .beforeSend, "what a service sends survives a power loss unless the file says otherwise")
        #expect(try Topology.parse(sample + "\nsynchronous: normal\n", file: "t.yaml").synchronous == .normal)
        #expect(try Topology.parse(sample + "\nsynchronous: full\n", file: "t.yaml").synchronous == .full)
        #expect(throws: TopologyError.self) { try Topology.parse(sample + "\nsynchronous: sometimes\n", file: "t.yaml") }
    }

    @Test(arguments: [
        ("services:\n  warehouse: tcp://127.0.0.1:1\nsecurity: {plaintext: true}\n", 2, "unknown service 'warehouse'"),
        ("services:\n  order: http://x\nsecurity: {plaintext: true}\n", 2, "tcp://HOST:PORT"),
        ("services:\n  order: tcp://127.0.0.1:1\n", 1, "curveKeys"),
        ("colour: red\n", 1, "unknown field 'colour'"),
        ("synchronous: sometimes\nservices:\n  order: tcp://127.0.0.1:1\nsecurity: {plaintext: true}\n", 1, "synchronous must be one of off, normal, full"),
        ("http: {port: 70000}\nservices:\n  order: tcp://127.0.0.1:1\nsecurity: {plaintext: true}\n", 1, "http.port"),
        ("services:\n  order: {endpoint: tcp://127.0.0.1:1, metrics: localhost}\nsecurity: {plaintext: true}\n", 2, "HOST:PORT"),
        ("services:\n  order: {metrics: 127.0.0.1:9}\nsecurity: {plaintext: true}\n", 2, "needs an endpoint"),
        ("services:\n  order: tcp://127.0.0.1:1\nsecurity: {plaintext: true, clients: [../x]}\n", 3, "security.clients"),
        ("services:\n  order: tcp://127.0.0.1:1\nsecurity: {plaintext: true}\nresilience:\n  circuitBreaker: {errorThresholdPercentage: 150}\n", 5, "errorThresholdPercentage"),
        ("services:\n  order: tcp://127.0.0.1:1\nsecurity: {plaintext: true}\nresilience:\n  circuitBreaker: {timeout: -1s}\n", 5, "timeout"),
        ("http:\n  rateLimit: {capacity: 0, refillPerSecond: 5}\nservices:\n  order: tcp://127.0.0.1:1\nsecurity: {plaintext: true}\n", 2, "capacity"),
        ("http:\n  rateLimit: {capacity: 10, refillPerSecond: fast}\nservices:\n  order: tcp://127.0.0.1:1\nsecurity: {plaintext: true}\n", 2, "refillPerSecond must be a number"),
        // Named as the file names it (the settings' own check says refillRatePerSecond).
        ("http:\n  rateLimit: {capacity: 10, refillPerSecond: -25}\nservices:\n  order: tcp://127.0.0.1:1\nsecurity: {plaintext: true}\n", 2, "http.rateLimit.refillPerSecond must be from 0.001"),
        ("http:\n  rateLimit: {capacity: 10}\nservices:\n  order: tcp://127.0.0.1:1\nsecurity: {plaintext: true}\n", 2, "{capacity: N, refillPerSecond: R}"),
        ("http:\n  rateLimit: 10\nservices:\n  order: tcp://127.0.0.1:1\nsecurity: {plaintext: true}\n", 2, "http.rateLimit must be"),
        ("http:\n  rateLimit: {capacity: 10, refillPerSecond: 5, burst: 3}\nservices:\n  order: tcp://127.0.0.1:1\nsecurity: {plaintext: true}\n", 2, "unknown field 'burst'"),
    ])
    func badTopologiesNameLineAndProblem(text: String, line: Int, message: String) {
        do {
            _ = try Topology.parse(text, file: "t.yaml")
            Issue.record("accepted a bad topology")
        } catch {
            #expect(error.line == line, "\(error)")
            #expect(error.message.contains(message), "\(error)")
        }
    }

    @Test func aServiceMayGiveAMetricsAddressAndClientsMayBeAdmitted() throws {
        let t = try Topology.parse("""
            services:
              order: {endpoint: tcp://127.0.0.1:7105, metrics: 127.0.0.1:9105}
              inventory: tcp://127.0.0.1:7103
            security: {curveKeys: keys, clients: [runner]}
            """, file: "t.yaml")
        #expect(t.endpoint(of: .order) == "tcp://127.0.0.1:7105")
        #expect(t.metricsAddresses[.order]?.host == "127.0.0.1" && t.metricsAddresses[.order]?.port == 9105)
        #expect(t.metricsAddresses[.inventory] == nil)
        #expect(t.clients == ["runner"])
        #expect(t.resilience.defaultPolicy == .seed, "no resilience block: the seed's defaults")
    }

    @Test func theShippedTopologyLoadsWithTheSeedsResilienceDefaults() throws {
        let t = try Topology.load(path: packageRoot + "/fixtures/topology.yaml")
        #expect(t.resilience.defaultPolicy.circuitBreaker.timeout == .seconds(3))
        #expect(t.resilience.defaultPolicy.circuitBreaker.errorThresholdPercentage == 50)
        #expect(t.resilience.defaultPolicy.circuitBreaker.resetTimeout == .seconds(30))
        #expect(t.resilience.defaultPolicy.retry.attemptCountMax == 4)
        #expect(t.services.contains(.product) && t.metricsAddresses[.order]?.port == 9105)
        #expect(t.httpRateLimit?.capacity == 50 && t.httpRateLimit?.refillRatePerSecond == 25, "the shipped gateway limits each API key")
        // And each client key at its ZeroMQ door alike (a client key went past the HTTP limit there).
        let door = t.resilience.incomingLimit(of: .gateway)
        #expect(door?.bucket.capacity == 50 && door?.bucket.refillRatePerSecond == 25, "\(String(describing: door))")
        #expect(t.resilience.incomingLimit(of: .inventory) == nil, "services' calls to each other are not limited")
        #expect(try Topology.parse(sample, file: "t.yaml").httpRateLimit == nil, "no http.rateLimit: no limit per key")
    }

    /// `erp up` says what is fit for a test bench only: the example API key, secret keys others
    /// may read. Keys made by `erp keys generate` (0600) and an API key of one's own say nothing.
    @Test func insecureSettingsAreNamed() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("erp-insecure-\(UInt64.random(in: 0...UInt64.max))").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        _ = try KeyStore(directory: dir + "/keys").generate(named: ["order"])
        func topology(apiKey: String) throws -> Topology {
            try Topology.parse("dataDirectory: data\nhttp: {host: 127.0.0.1, port: 8080, apiKeys: [\(apiKey)]}\nsecurity: {curveKeys: \(dir)/keys}\nservices:\n  order: tcp://127.0.0.1:7105\n  gateway: tcp://127.0.0.1:7100\n", file: "t.yaml")
        }
        #expect(try topology(apiKey: "a-key-of-ours").insecureSettings().isEmpty)
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: dir + "/keys/order.key")
        let warnings = try topology(apiKey: Topology.exampleAPIKey).insecureSettings()
        #expect(warnings.count == 2, "\(warnings)")
        #expect(warnings.contains { $0.contains("example key dev-key-change-me") })
        #expect(warnings.contains { $0.contains("1 of the secret keys in \(dir)/keys are readable by other users (order.key among them)") }, "\(warnings)")
    }

    /// `erp serve` on an endpoint another process holds says so, as `erp up` does before it starts
    /// anything (libzmq's "Address already in use" alone named no cause).
    @Test func aTakenEndpointIsNamedByErpServe() async throws {
        let dir = scratchDirectory("serve-taken")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let holder = try LoopbackListener()
        defer { holder.close() }
        try "dataDirectory: \(dir)/data\nsecurity: {plaintext: true}\nservices:\n  order: tcp://127.0.0.1:\(holder.port)\n"
            .write(toFile: dir + "/topology.yaml", atomically: true, encoding: .utf8)
        let result = try await runErp(["serve", "order", "--topology", dir + "/topology.yaml"])
        #expect(result.status == 1, "\(result.output)")
        #expect(result.output.contains("erp serve: order's endpoint is taken") && result.output.contains("another erp up or erp serve of this topology?"), "\(result.output)")
    }

    @Test func keysAreGeneratedOncePerServiceAndReadBack() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("erp-keys-\(UInt64.random(in: 0...UInt64.max))").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = KeyStore(directory: dir)
        #expect(try store.generate(for: [.order, .payment]) == [.order, .payment])
        #expect(try store.generate(for: [.order, .payment, .inventory]) == [.inventory], "existing keys are kept")
        let order = try store.keyPair(of: .order)
        #expect(order.publicKey == (try store.publicKey(of: .order)))
        #expect(order.publicKey != (try store.publicKey(of: .payment)))
        let attributes = try FileManager.default.attributesOfItem(atPath: dir + "/order.key")
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
        #expect(throws: KeyStoreError.self) { try store.keyPair(of: .gateway) }
    }

    /// The allow-list each service's transport enforces, from the topology's keys and the
    /// catalogue's declared calls (the seed's diagrams).
    @Test func authorizationFollowsTheDiagramsAndKeepsTheControlsForTheRunner() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("erp-authz-\(UInt64.random(in: 0...UInt64.max))").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = KeyStore(directory: dir + "/keys")
        let services: [ServiceName] = [.eventBus, .inventory, .payment, .order, .notification, .gateway, .swishpay]
        _ = try store.generate(named: services.map(\.rawValue) + ["runner", "tool"])
        var text = "dataDirectory: data\nsecurity: {curveKeys: \(dir)/keys, clients: [runner, tool], runner: runner}\nservices:\n"
        for (i, service) in services.enumerated() { text += "  \(service.rawValue): tcp://127.0.0.1:\(7300 + i)\n" }
        let topology = try Topology.parse(text, file: "t.yaml")
        func allows(_ caller: String, _ method: String, on service: ServiceName) throws -> Bool {
            let rules = try ServiceHost.authorization(of: service, topology: topology, keys: store)
            let key = try store.publicKey(named: caller)
            guard let holder = rules.holders[key] else { return false }
            return rules.allows(holder, method)
        }
        #expect(try allows("order", "inventory.reserveStock", on: .inventory))
        #expect(try !allows("notification", "inventory.reserveStock", on: .inventory), "notification calls nobody")
        #expect(try allows("payment", "swishpay.charge", on: .swishpay))
        #expect(try !allows("order", "swishpay.charge", on: .swishpay), "only payment talks to the provider")
        #expect(try allows("order", "bus.append", on: .eventBus))
        #expect(try allows("event-bus", "consumer.deliverEvents", on: .inventory))
        #expect(try !allows("order", "consumer.deliverEvents", on: .inventory), "only the bus delivers events")
        #expect(try !allows("order", "_control.applyFaults", on: .inventory))
        #expect(try !allows("tool", "_control.applyFaults", on: .inventory))
        #expect(try allows("runner", "_control.applyFaults", on: .inventory))
        #expect(try allows("tool", "bus.deadLetters", on: .eventBus))
        #expect(try allows("tool", "bus.requeue", on: .eventBus))
        #expect(try allows("tool", "bus.replay", on: .eventBus))
        #expect(try !allows("tool", "bus.append", on: .eventBus), "a client key could forge any service's events")
        #expect(try allows("runner", "bus.append", on: .eventBus), "the harness's own key may")
        #expect(try !allows("tool", "order.createOrder", on: .order))
        // Method by method: a service's key may call what it sends, not every method of a service
        // it calls (the gateway's key sold stock and released reservations in a security trial).
        #expect(try allows("gateway", "inventory.checkStock", on: .inventory))
        #expect(try !allows("gateway", "inventory.sell", on: .inventory))
        #expect(try !allows("gateway", "inventory.releaseStock", on: .inventory))
        #expect(try !allows("gateway", "inventory.reserveStock", on: .inventory))
        #expect(try allows("order", "payment.refund", on: .payment), "the saga's compensation")
        #expect(try !allows("order", "bus.replay", on: .eventBus), "only an operator, or report for its own group")
        #expect(try !allows("order", "bus.requeue", on: .eventBus))
        #expect(try !allows("inventory", "inventory.nothing", on: .inventory))
        // A client whose key file is gone is revoked.
        try FileManager.default.removeItem(atPath: dir + "/keys/tool.pub")
        #expect(try allows("runner", "bus.requeue", on: .eventBus), "the other clients stay")
        #expect(try ServiceHost.authorization(of: .eventBus, topology: topology, keys: store).holders.values.contains("client tool") == false)
        // A file that holds no key leaves that client out, named, and the rest apply (it failed the
        // whole reload, keeping admitted a key revoked beside it).
        try "garbage".write(toFile: dir + "/keys/tool.pub", atomically: true, encoding: .utf8)
        var problems: [String] = []
        let rules = try ServiceHost.authorization(of: .eventBus, topology: topology, keys: store) { problems.append($0) }
        #expect(!rules.holders.values.contains("client tool") && rules.holders.values.contains("client runner"))
        #expect(problems.count == 1 && problems[0].contains("client tool left out") && problems[0].contains(dir + "/keys/tool.pub"), "\(problems)")
        // The runner must be one of the clients.
        #expect(throws: TopologyError.self) {
            try Topology.parse("security: {curveKeys: keys, clients: [tool], runner: runner}\nservices:\n  order: tcp://127.0.0.1:1\n", file: "t.yaml")
        }
    }
}

/// `erp up`'s check before it starts anything.
@Suite struct TopologyPreflightTests {
    /// A topology whose addresses are taken (a second `erp up`) made every service exit at its
    /// bind and restart forever while `erp up` printed the gateway's address as if it were up.
    @Test func aTopologyThatCannotStartIsRefusedBeforeAnythingStarts() throws {
        var listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { if listener >= 0 { close(listener) } }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        try #require(withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(listener, $0, length) == 0 && listen(listener, 1) == 0 && getsockname(listener, $0, &length) == 0
            }
        })
        let port = Int(UInt16(bigEndian: address.sin_port))
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("erp-preflight-\(UInt64.random(in: 0...UInt64.max))").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let free = try freeLoopbackPort()
        let topology = try Topology.parse("""
            name: t
            dataDirectory: \(dir)/data
            http: {host: 127.0.0.1, port: \(port), apiKeys: [k]}
            security: {curveKeys: \(dir)/keys}
            services:
              order: tcp://127.0.0.1:\(port)
              gateway: tcp://127.0.0.1:\(free)
            """, file: "t.yaml", environment: [:])
        let problems = topology.preflightProblems()
        #expect(problems.contains { $0.contains("order's endpoint") && $0.contains("another process listens there") }, "\(problems)")
        #expect(problems.contains { $0.contains("the gateway's HTTP port") }, "\(problems)")
        #expect(problems.contains { $0.contains("no secret key for order, gateway") }, "\(problems)")
        #expect(!problems.contains { $0.contains("gateway's endpoint") }, "a free address is no problem: \(problems)")

        close(listener)
        listener = -1
        try FileManager.default.createDirectory(atPath: dir + "/keys", withIntermediateDirectories: true)
        // Key files that are there but hold no key stop their services as surely as none.
        for name in ["order", "gateway"] { FileManager.default.createFile(atPath: dir + "/keys/\(name).key", contents: Data()) }
        // The port was released: a test running beside this one may bind it meanwhile (fresh-clone
        // CI of 54d42fc: "another process listens there" after the close), which says nothing
        // about the keys checked here.
        func keyProblems() -> [String] { topology.preflightProblems().filter { !$0.contains("cannot be bound") } }
        let unusable = keyProblems()
        #expect(unusable.count == 2 && unusable.allSatisfy { $0.contains("cannot be used") }, "\(unusable)")
        try KeyStore(directory: dir + "/keys").generate(named: ["order", "gateway"], replace: true)
        #expect(keyProblems() == [])
        // A malformed public key is named by its file.
        try "not a key".write(toFile: dir + "/keys/order.pub", atomically: true, encoding: .utf8)
        #expect(throws: KeyStoreError.self) { try KeyStore(directory: dir + "/keys").publicKey(named: "order") }
        do { _ = try KeyStore(directory: dir + "/keys").publicKey(named: "order") } catch {
            #expect("\(error)".contains(dir + "/keys/order.pub"), "\(error)")
        }
    }
}
