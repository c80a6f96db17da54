import CMalloc
import ERPCore
import ERPGatewayHTTP
import ERPResilience
import ERPServices
import ERPStorage
import ERPTransport
import ERPZeroMQ
import Foundation
import Hummingbird
import Logging
import ServiceLifecycle

/// `erp serve <service>`: one service as a process on the ZeroMQ backend. It binds the service's
/// endpoint from the topology, admits only the topology's CURVE keys (refusals are logged and
/// counted), starts the service on its own serial executor, serves HTTP too when it is the
/// gateway, and on SIGTERM or SIGINT stops: sockets closed, databases closed, executor shut down.
public struct ServiceHost: Service {
    public let service: ServiceName
    public let topology: Topology
    /// What every service reads: fixtures, planted defects, provider behaviour, resilience policies.
    public let settings: ServiceSettings
    public var logLevel: Logger.Level = .info
    /// Serve the control methods of `FaultControl` (for `erp run --mode zmq`; never in production).
    public var faultControl = false
    /// Stop gracefully when the parent process dies (a supervisor killed with SIGKILL must not
    /// leave its services running).
    public var exitWithParent = false

    public init(service: ServiceName, topology: Topology, fixtures: Fixtures) {
        self.init(service: service, topology: topology, settings: ServiceSettings(fixtures: fixtures))
    }

    /// Who may call `service`'s methods, by CURVE key:
    /// - the topology's runner (`security.runner`): everything, the fault controls included;
    /// - nobody else the fault controls (`_control.*`);
    /// - another service: the methods of the services it declares it calls (the seed's diagrams),
    ///   the bus's if it publishes or consumes, and `consumer.deliverEvents` only from the bus;
    /// - another client (a tool such as `erp events --as`): the bus's and the gateway's methods.
    /// Devices never reach these sockets: their keys open only the IoT gateway's device door.
    /// The bus's methods a client key may call.
    static let busOperatorMethods: Set<String> = [ListDeadLetters.method, RequeueDeadLetters.method, ReplayGroup.method]

    /// `serviceKeys`: the services' public keys in force (what they were started with); nil to
    /// read them from the key folder.
    public static func authorization(of service: ServiceName, topology: Topology, keys: KeyStore,
                                     serviceKeys: [ServiceName: String]? = nil,
                                     leftOut: (String) -> Void = { _ in }) throws -> CallerAuthorization {
        var holders: [String: String] = [:]
        for other in topology.services { holders[try serviceKeys?[other] ?? keys.publicKey(of: other)] = other.rawValue }
        // A client whose key file is gone is revoked (`reloadKeys`); a service's key must be there.
        // One whose file is there but holds no key is left out, named (`leftOut`), and the rest
        // apply: it failed the whole reload before, so that a key revoked beside it stayed
        // admitted (a security trial), where the device registry left out only the bad file.
        for client in topology.clients where keys.hasPublicKey(named: client) {
            do { holders[try keys.publicKey(named: client)] = "client " + client } catch {
                leftOut("client \(client) left out (not admitted): \(error)")
            }
        }
        let runner = topology.runner.map { "client " + $0 }
        return CallerAuthorization(holders: holders) { holder, method in
            if holder == runner { return true }
            if method.hasPrefix("_control.") { return false }
            // Clients (tools such as `erp events --as`) reach the gateway, and on the bus its
            // operators' methods: dead letters, requeues and replays. Appending is for producers
            // (a client could otherwise forge any service's events: a restock of a million units).
            if holder.hasPrefix("client ") { return service == .gateway || (service == .eventBus && Self.busOperatorMethods.contains(method)) }
            guard let caller = ServiceName(rawValue: holder) else { return false }
            return ServiceCatalog.mayCall(caller, method, on: service)
        }
    }

    /// SIGHUP: reads the topology's key folder and client list (and the device keys, on the IoT
    /// gateway) again and applies them to the running process: new keys are admitted at their next
    /// handshake, removed ones refused at their next connection and forbidden at once on the
    /// connections they have. Nothing restarts. On an error the keys in force stay.
    ///
    /// The services' own keys stay those they were started with (`serviceKeys`): each service's
    /// sockets hold its secret key and its peers' public keys from its start, so a pair replaced
    /// on disk (`erp keys generate --replace`) takes effect when `erp up` restarts them all.
    /// Applying the new public keys at once refused every service still using its old pair: the
    /// whole system down after one HUP (an operator's trial).
    static func reloadKeys(service: ServiceName, topology: Topology, keys: KeyStore, serviceKeys: [ServiceName: String],
                           authenticator: ZAPAuthenticator, transport: ZeroMQTransport, ingress: DeviceIngress?,
                           devices: [Fixtures.Device], logger: Logger) {
        let current: Topology
        do { current = topology.path.isEmpty ? topology : try Topology.load(path: topology.path) } catch {
            logger.error("keys not reloaded, the keys in force stay: \(error)")
            return
        }
        do {
            let changed = serviceKeys.keys.sorted { $0.rawValue < $1.rawValue }.filter { (try? keys.publicKey(of: $0)) != serviceKeys[$0] }
            if !changed.isEmpty {
                logger.warning("the key pairs of \(changed.map(\.rawValue).joined(separator: ", ")) changed on disk: a service's own keys take effect when erp up restarts every service; the running ones stay")
            }
            // The keys admitted are exactly those whose holders the rules know.
            let rules = try authorization(of: service, topology: current, keys: keys, serviceKeys: serviceKeys) { problem in
                logger.error("\(problem)")
            }
            let (added, revoked) = try authenticator.replaceAllowed(Set(rules.holders.keys))
            let before = transport.updateAuthorization(rules)
            // Each key by its holder's name and its id (an id alone had to be matched to a file by hand).
            func named(_ keys: some Sequence<String>, in holders: [String: String]?) -> String {
                keys.map { "\(holders?[$0] ?? "?") (key \(CallerAuthorization.keyId($0)))" }.sorted().joined(separator: ", ")
            }
            var detail = ""
            if !added.isEmpty { detail += "; added " + named(added, in: rules.holders) }
            if !revoked.isEmpty { detail += "; revoked " + named(revoked, in: before?.holders) }
            logger.info("keys reloaded: \(rules.holders.count) admitted, \(added.count) added, \(revoked.count) revoked\(detail)")
        } catch {
            logger.error("keys not reloaded, the keys in force stay: \(error)")
        }
        // The device registry on its own: a topology that stops the reload above does not keep a
        // device revoked on disk admitted, and a bad device file leaves out that device only.
        guard let ingress, let folder = current.deviceKeyDirectory else { return }
        do {
            let registry = DeviceIngress.registry(in: folder, devices: devices)
            for problem in registry.problems { logger.error("device key left out: \(problem)") }
            try ingress.replaceKeys(registry.keys)
        } catch {
            logger.error("device keys not reloaded, the keys in force stay: \(error)")
        }
    }

    public init(service: ServiceName, topology: Topology, settings: ServiceSettings) {
        self.service = service
        self.topology = topology
        self.settings = settings
    }

    public func run() async throws {
        var logger = Logger(label: "erp.\(service.rawValue)")
        logger.logLevel = logLevel
        guard let endpoint = topology.endpoint(of: service) else {
            throw KeyStoreError("\(topology.path): no endpoint for \(service)")
        }
        let book = AddressBook()
        let keys = topology.keyDirectory.map(KeyStore.init(directory:))
        // The services' pairs: those `erp up` started with when it says where they are, else the
        // key folder's. Clients' and devices' keys are always read from their folders (a HUP
        // reloads them).
        let pairs = keys.map { topology.serviceKeyDirectory.map(KeyStore.init(directory:)) ?? $0 }
        // The services' public keys as this process starts with them: its sockets keep them, and a
        // HUP keeps them too (`reloadKeys`).
        var serviceKeys: [ServiceName: String] = [:]
        for (other, otherEndpoint) in topology.endpoints {
            let key = try pairs?.publicKey(of: other)
            serviceKeys[other] = key
            book.set(NodeName(other), .init(endpoint: otherEndpoint, curvePublicKey: key))
            book.set(other, servedBy: NodeName(other))
        }
        let context = try ZMQContext()
        var authenticator: ZAPAuthenticator?
        let security: ZeroMQTransport.Security
        // Who may call what; the ZAP handler admits exactly the keys whose holders it knows.
        let authorization = try keys.map {
            try Self.authorization(of: service, topology: topology, keys: $0, serviceKeys: serviceKeys) { problem in logger.error("\(problem)") }
        }
        if let pairs, let authorization {
            let throttle = LogThrottle()
            authenticator = try await ZAPAuthenticator.start(context: context, allowedClientPublicKeys: Set(authorization.holders.keys)) { [logger] refusal in
                if let line = throttle.line("zap", "refused a connection: \(refusal)") { logger.warning("\(line)") }
            }
            security = .curve(try pairs.keyPair(of: service))
        } else {
            guard topology.plaintext else { throw KeyStoreError("\(topology.path): no curveKeys and plaintext not allowed") }
            logger.warning("plaintext sockets: anyone who reaches \(endpoint) can call \(service)")
            security = .plaintext
        }
        let executor = SerialTaskExecutor(name: service.rawValue)
        let node = NodeName(service)
        let clock = SystemClock()
        // Under `before-send` the databases commit without waiting for the disk, and whatever the
        // node sends waits for a sync, made on a thread of its own, of what it committed before.
        let syncBeforeSend = topology.synchronous == .beforeSend ? SyncBeforeSend(name: service.rawValue, logger: logger) : nil
        let transport = ZeroMQTransport(node: node, endpoint: endpoint, addressBook: book, context: context,
                                        security: security, executor: executor, clock: clock, logger: logger,
                                        authorization: authorization, syncBeforeSend: syncBeforeSend)
        if let limit = settings.resilience.incomingLimit(of: service) {
            transport.limitIncoming(limit)
            logger.info("at most \(limit.bucket.refillRatePerSecond) requests per second from each caller (bursts of \(limit.bucket.capacity))")
        }
        let bound = try await transport.start()
        try FileManager.default.createDirectory(atPath: topology.dataDirectory, withIntermediateDirectories: true)
        let runtime = ZeroMQRuntime(node: node, transport: transport, executor: executor, dataDirectory: topology.dataDirectory,
                                    clock: clock, logLevel: logLevel,
                                    durability: Durability(synchronous: topology.synchronous, exclusiveLock: false),
                                    syncBeforeSend: syncBeforeSend)
        if faultControl {
            logger.warning(authorization == nil ? "serving fault-control methods over plaintext: any peer that reaches this node can inject faults"
                                                : "serving fault-control methods: only the runner's key may call them")
            Self.registerFaultControl(node: node, transport: transport, clock: clock, settings: settings)
        }
        if service == .eventBus { try BusLock.hold(in: topology.dataDirectory) }
        let instance = try ServiceCatalog.make(service, runtime: runtime, settings: settings,
                                               routes: ServiceCatalog.routes(for: topology.services))
        try await executor.run { try await instance.start() }
        logger.info("\(service) serving on \(bound)")

        // glibc keeps what the threads free in its arenas and gives little of it back: under steady
        // load a service's resident set crept up by a quarter in ten minutes while its live heap
        // stayed flat (heaptrack; docs/soak.md). Trimming now and then hands the free pages back,
        // so that the resident set follows what the process uses.
        let trimmer = Task.detached {
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(30))
                malloc_trim(0)
            }
        }
        defer { trimmer.cancel() }

        // Real devices, each with a key of its own, reach the IoT gateway through its own door.
        var ingress: DeviceIngress?
        if service == .iotGateway, let deviceEndpoint = topology.deviceEndpoint, let operations = instance as? DeviceOperations {
            guard let keys, let folder = topology.deviceKeyDirectory else {
                throw KeyStoreError("\(topology.path): devices need CURVE (security.curveKeys) and devices.keys")
            }
            // A bad file leaves out its device, named, and the rest are admitted: one malformed
            // file had the gateway exit at every start, every device locked out.
            let registry = DeviceIngress.registry(in: folder, devices: settings.fixtures.devices)
            for problem in registry.problems { logger.error("device key left out: \(problem)") }
            let door = DeviceIngress(endpoint: deviceEndpoint, serverKeys: try keys.keyPair(of: service), deviceKeys: registry.keys,
                                     operations: operations, logger: logger, hop: { body in
                                         // A device's answer, like any message, waits for what its handling committed.
                                         await executor.run {
                                             let answer = await body()
                                             await syncBeforeSend?.wait()
                                             return answer
                                         }
                                     })
            _ = try await door.start()
            ingress = door
        }

        // Keys added or revoked on a running process: `kill -HUP` (erp up passes it to every service).
        var reloadSignal: (any DispatchSourceSignal)?
        if let keys, let authenticator {
            signal(SIGHUP, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: SIGHUP, queue: .global())
            let topology = self.topology, devices = settings.fixtures.devices, door = ingress
            let serviceKeys = serviceKeys
            source.setEventHandler {
                Self.reloadKeys(service: service, topology: topology, keys: keys, serviceKeys: serviceKeys, authenticator: authenticator,
                                transport: transport, ingress: door, devices: devices, logger: logger)
            }
            source.resume()
            reloadSignal = source
        }
        defer { reloadSignal?.cancel() }

        // The paths this service calls, shown in its /metrics before their first call.
        let callPaths = (ServiceCatalog.type(of: service)?.calls ?? []).map { ResilienceSettings.pathName(service, $0) }
        if service == .gateway, let operations = instance as? GatewayOperations {
            let http = GatewayHTTP(operations: operations, settings: GatewayHTTPSettings(apiKeys: topology.apiKeys, rateLimitPerKey: topology.httpRateLimit),
                                   clock: clock, ids: runtime.ids,
                                   hop: { body in await executor.run(body) },
                                   moreMetrics: { [resilience = settings.resilienceMetrics] in transport.prometheusText() + resilience.prometheusText(declared: callPaths) },
                                   note: { [logger] in logger.warning("\($0)") })
            let app = Application(router: http.router(), server: http.settings.limits.server(logger: logger),
                                  configuration: .init(address: .hostname(topology.httpHost, port: topology.httpPort)),
                                  logger: logger)
            logger.info("gateway HTTP on http://\(topology.httpHost):\(topology.httpPort)")
            // The application stops on the group's graceful shutdown, like this service.
            try await app.runService(gracefulShutdownSignals: [])
        } else if let metrics = topology.metricsAddresses[service] {
            // Prometheus scrapes this service's RPC metrics (served and called, per method) here.
            let door = ingress, resilience = settings.resilienceMetrics
            let bus = instance as? EventBusService
            let router = MetricsEndpoint.router {
                transport.prometheusText() + resilience.prometheusText(declared: callPaths) + (door?.prometheusText() ?? "") + (bus?.prometheusText() ?? "")
            }
            let app = Application(router: router, server: HTTPServerLimits().server(logger: logger),
                                  configuration: .init(address: .hostname(metrics.host, port: metrics.port)), logger: logger)
            logger.info("\(service) metrics on http://\(metrics.host):\(metrics.port)/metrics")
            do {
                try await app.runService(gracefulShutdownSignals: [])
            } catch {
                // Metrics are a window on the service, not the service: a taken port (another
                // process holds it) must not stop the RPC it serves, nor send it into a restart loop.
                logger.error("cannot serve metrics on \(metrics.host):\(metrics.port): \(error); serving without /metrics")
                try? await gracefulShutdown()
            }
        } else {
            try? await gracefulShutdown()
        }
        logger.info("\(service) stopping")
        await ingress?.stop()
        await transport.stop()
        // Stop the service's code first (shutdown returns once the job in progress has finished),
        // then close its databases: closing under a running job would pull SQLite from under it.
        executor.shutdown()
        for error in runtime.closeDatabases() { logger.error("closing a database: \(error)") }
        await authenticator?.stop()
        context.terminate()
    }

    /// Runs one service until SIGTERM or SIGINT (or, with `exitWithParent`, until the process
    /// that started it is gone).
    public static func serve(_ host: ServiceHost) async throws {
        if host.exitWithParent { ParentWatch.start() }
        let group = ServiceGroup(services: [host], gracefulShutdownSignals: [.sigterm, .sigint], logger: Logger(label: "erp.serve"))
        try await group.run()
    }
}
