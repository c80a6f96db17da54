// ERPProduction: running the services for real. A topology file says where each service listens
// (`tcp://` endpoints, so one file can place services on several hosts), where their databases
// live, the gateway's HTTP address and API keys, and whether sockets use CURVE (with keys from a
// folder made by `erp keys generate`). Environment variables override endpoints, as in the seed's
// service-discovery option 3: `ERP_ORDER_ENDPOINT=tcp://10.0.0.5:7105`.
import ERPCore
import ERPResilience
import ERPConfiguration
import ERPServices
import ERPStorage
import ERPGatewayHTTP
import Foundation
import Yams

public struct Topology: Sendable {
    public var name: String
    /// Service → ZeroMQ endpoint, in start order.
    public var endpoints: [(service: ServiceName, endpoint: String)]
    public var dataDirectory: String
    public var httpHost = "127.0.0.1"
    public var httpPort = 8080
    public var apiKeys: [String] = []
    /// The gateway's request rate per API key (`http.rateLimit`); nil: none.
    public var httpRateLimit: TokenBucketSettings?
    /// Folder of `<service>.key` files (Z85 secret keys); nil means plaintext sockets, which must be
    /// asked for explicitly with `plaintext: true`.
    public var keyDirectory: String?
    /// Where the services' own pairs are read instead of `keyDirectory` (not a topology key):
    /// `erp up` copies them there at its start and hands the folder to every `erp serve`, so that a
    /// service the supervisor restarts alone comes back with the pair its peers know, not one
    /// replaced on disk since (`erp keys generate --replace` then one crash cut order off).
    public var serviceKeyDirectory: String?
    public var plaintext = false
    /// Peers that are not services but may call them (their `<name>.pub` in the key folder): the
    /// scenario runner of `erp run --mode zmq`, an operator's tool.
    public var clients: [String] = []
    /// The one client key (of `clients`) that may call the fault-control methods and every
    /// method of every service: the harness that runs scenarios on this topology. Nil: none.
    public var runner: String?
    /// Where the IoT gateway listens for devices (`devices.endpoint`), and the folder of the
    /// devices' public keys (`devices.keys`: `<deviceId>.pub`, Z85): each device has a key of its
    /// own, and only a key of this folder is admitted. Nil: no device ingress.
    public var deviceEndpoint: String?
    public var deviceKeyDirectory: String?
    /// Where each service (but the gateway, which has `/metrics` on its HTTP port) serves
    /// Prometheus metrics over HTTP: `host:port`. A service without one exposes none.
    public var metricsAddresses: [ServiceName: (host: String, port: Int)] = [:]
    /// Breakers, retries and rate limits of every synchronous path (the seed's defaults unless
    /// the file has a `resilience:` block, written as in a scenario).
    public var resilience = ResilienceSettings()
    /// When every service's database (WAL throughout) waits for the disk: before anything leaves
    /// the node (`before-send`) unless the file says otherwise; docs/durability.md shows what a
    /// power loss does to the weaker settings.
    public var synchronous: SynchronousMode = .beforeSend
    public var path = ""

    public func endpoint(of service: ServiceName) -> String? { endpoints.first { $0.service == service }?.endpoint }
    public var services: [ServiceName] { endpoints.map(\.service) }

    /// This topology with no request-rate limit anywhere: per API key (`http.rateLimit`), at the
    /// gateway's admission and per service (`resilience.rateLimit`). For a load test of the
    /// system itself (`erp up --no-rate-limits` under `wrk`): with the shipped limits a load past
    /// 25 orders a second per key measures 429s.
    public func withoutRateLimits() -> Topology {
        var out = self
        out.httpRateLimit = nil
        out.resilience.perClientRateLimit = nil
        out.resilience.gatewayRateLimit = nil
        out.resilience.serviceRateLimits = [:]
        return out
    }
}

/// A topology file that cannot be used: `file:line: reason`, as for scenarios.
public typealias TopologyError = ConfigurationError

extension Topology {
    /// Loads a topology, applying `ERP_<SERVICE>_ENDPOINT` overrides from `environment`.
    public static func load(path: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws(TopologyError) -> Topology {
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw TopologyError(file: path, line: nil, message: "cannot read the file: \(whyUnreadable(path, error))")
        }
        var topology = try parse(text, file: path, environment: environment)
        topology.path = path
        // Paths inside the file are relative to the file's folder.
        let base = URL(fileURLWithPath: path).deletingLastPathComponent()
        if let keys = topology.keyDirectory, !keys.hasPrefix("/") { topology.keyDirectory = base.appendingPathComponent(keys).path }
        if let keys = topology.deviceKeyDirectory, !keys.hasPrefix("/") { topology.deviceKeyDirectory = base.appendingPathComponent(keys).path }
        if !topology.dataDirectory.hasPrefix("/") { topology.dataDirectory = base.appendingPathComponent(topology.dataDirectory).path }
        return topology
    }

    public static func parse(_ text: String, file: String, environment: [String: String] = [:]) throws(TopologyError) -> Topology {
        // The scenario loader's reader: the same messages, limits and blocks.
        let read = ConfigurationReader(file: file)
        func fail(_ node: Node?, _ message: String) -> TopologyError { read.fail(node, message) }
        let root = try read.root(of: text)
        guard case .mapping(let top) = root else { throw fail(root, "a topology is a mapping") }
        var name = "topology", data = ".erp-data", host = "127.0.0.1", port = 8080
        var apiKeys: [String] = [], keys: String?, plaintext = false, clients: [String] = [], runner: (name: String, node: Node)?
        var httpRateLimit: TokenBucketSettings?
        var endpoints: [(ServiceName, String)] = []
        var metrics: [ServiceName: (host: String, port: Int)] = [:]
        var resilience = ResilienceSettings()
        var synchronous = SynchronousMode.beforeSend
        var deviceEndpoint: String?, deviceKeys: String?
        for (k, v) in top {
            switch k.string ?? "" {
            case "name": name = v.string ?? name
            case "dataDirectory": data = v.string ?? data
            case "synchronous":
                guard let mode = v.string.flatMap(SynchronousMode.init(rawValue:)) else {
                    throw fail(v, "synchronous must be one of \(SynchronousMode.choices) (docs/durability.md)")
                }
                synchronous = mode
            case "http":
                guard case .mapping(let http) = v else { throw fail(v, "http must be a mapping with host, port and apiKeys") }
                for (hk, hv) in http {
                    switch hk.string ?? "" {
                    case "host": host = hv.string ?? host
                    case "port":
                        guard let p = hv.int, (1...65_535).contains(p) else { throw fail(hv, "http.port must be a port number, 1...65535") }
                        port = p
                    case "apiKeys":
                        guard case .sequence(let list) = hv else { throw fail(hv, "http.apiKeys must be a list") }
                        apiKeys = list.compactMap(\.string)
                    case "rateLimit":
                        httpRateLimit = try read.tokenBucket(hv, "http.rateLimit")
                    default: throw fail(hk, "unknown field '\(hk.string ?? "")' in http; expected host, port, apiKeys, rateLimit")
                    }
                }
            case "security":
                guard case .mapping(let sec) = v else { throw fail(v, "security must be a mapping") }
                for (sk, sv) in sec {
                    switch sk.string ?? "" {
                    case "curveKeys": keys = sv.string
                    case "plaintext": plaintext = sv.bool ?? false
                    case "clients":
                        guard case .sequence(let list) = sv, list.allSatisfy({ $0.string.map { !$0.isEmpty && !$0.contains("/") } ?? false }) else {
                            throw fail(sv, "security.clients must be a list of key names (files NAME.pub in the curveKeys folder)")
                        }
                        clients = list.compactMap(\.string)
                    case "runner":
                        guard let name = sv.string, !name.isEmpty else { throw fail(sv, "security.runner must be the name of a client key") }
                        runner = (name, sv)
                    default: throw fail(sk, "unknown field '\(sk.string ?? "")' in security; expected curveKeys, plaintext, clients, runner")
                    }
                }
            case "services":
                guard case .mapping(let services) = v else { throw fail(v, "services must map service names to endpoints") }
                for (sk, sv) in services {
                    guard let service = sk.string.flatMap(ServiceName.init(named:)) else {
                        throw fail(sk, "unknown service '\(sk.string ?? "")'; known: \(ServiceName.allCases.map(\.rawValue).joined(separator: ", "))")
                    }
                    // `order: tcp://…`, or `order: {endpoint: tcp://…, metrics: 127.0.0.1:9105}`.
                    var endpointNode = sv
                    if case .mapping(let fields) = sv {
                        guard let e = fields["endpoint"] else { throw fail(sv, "\(service) needs an endpoint") }
                        endpointNode = e
                        for (fk, fv) in fields {
                            switch fk.string ?? "" {
                            case "endpoint": break
                            case "metrics":
                                guard let text = fv.string, let colon = text.lastIndex(of: ":"),
                                      let port = Int(text[text.index(after: colon)...]), (1...65_535).contains(port), colon > text.startIndex else {
                                    throw fail(fv, "the metrics address of \(service) must be HOST:PORT, e.g. 127.0.0.1:9105")
                                }
                                metrics[service] = (String(text[..<colon]), port)
                            default: throw fail(fk, "unknown field '\(fk.string ?? "")' for \(service); expected endpoint, metrics")
                            }
                        }
                    }
                    guard let endpoint = endpointNode.string, endpoint.hasPrefix("tcp://") || endpoint.hasPrefix("ipc://") else {
                        throw fail(endpointNode, "the endpoint of \(service) must be tcp://HOST:PORT or ipc://PATH")
                    }
                    endpoints.append((service, endpoint))
                }
            case "devices":
                let d = try read.mapping(v, "devices", keys: ["endpoint", "keys"])
                guard let endpoint = try d["endpoint"].map({ n throws(TopologyError) in try read.string(n) }),
                      endpoint.hasPrefix("tcp://") || endpoint.hasPrefix("ipc://") else {
                    throw fail(v, "devices.endpoint must be tcp://HOST:PORT or ipc://PATH (where the IoT gateway listens for devices)")
                }
                guard let keys = try d["keys"].map({ n throws(TopologyError) in try read.string(n) }) else {
                    throw fail(v, "devices.keys must name the folder of the devices' public keys (<deviceId>.pub)")
                }
                deviceEndpoint = endpoint
                deviceKeys = keys
            case "resilience":
                resilience = try read.resilience(v, clientTimeout: GatewayHTTPSettings(apiKeys: []).requestTimeout)
            default:
                throw fail(k, "unknown field '\(k.string ?? "")'; expected name, dataDirectory, http, security, services, devices, resilience")
            }
        }
        guard !endpoints.isEmpty else { throw fail(root, "services: no service has an endpoint") }
        if keys == nil && !plaintext {
            throw fail(root, "security: give curveKeys (a folder made by `erp keys generate`) or say plaintext: true")
        }
        // Environment overrides (option 3 of the seed's service discovery).
        for i in endpoints.indices {
            let variable = "ERP_" + endpoints[i].0.rawValue.uppercased().replacingOccurrences(of: "-", with: "_") + "_ENDPOINT"
            if let override = environment[variable] { endpoints[i].1 = override }
        }
        // Start order: dependencies first, as the simulator starts them.
        let ordered = ServiceCatalog.startOrder.compactMap { s in endpoints.first { $0.0 == s } }
            + endpoints.filter { e in !ServiceCatalog.startOrder.contains(e.0) }
        var topology = Topology(name: name, endpoints: ordered.map { (service: $0.0, endpoint: $0.1) }, dataDirectory: data)
        topology.httpHost = host
        topology.httpPort = port
        topology.apiKeys = apiKeys
        topology.httpRateLimit = httpRateLimit
        topology.keyDirectory = keys
        topology.plaintext = plaintext
        topology.clients = clients
        if let runner, !clients.contains(runner.name) {
            throw fail(runner.node, "security.runner '\(runner.name)' is not one of security.clients (\(clients.joined(separator: ", ")))")
        }
        topology.runner = runner?.name
        topology.metricsAddresses = metrics
        topology.resilience = resilience
        topology.synchronous = synchronous
        topology.deviceEndpoint = deviceEndpoint
        topology.deviceKeyDirectory = deviceKeys
        return topology
    }
}
