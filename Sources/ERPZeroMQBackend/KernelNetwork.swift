import ERPCore
import ERPProduction
import Foundation

/// How a run over real processes makes its partitions and isolations.
public enum NetworkFaults: String, CaseIterable, Sendable {
    /// Each process's fault filter drops the messages (every service on this host, `ipc://`).
    case filter
    /// The kernel: every service on a host of its own (a network namespace, joined to the others
    /// by a bridge) and a partition is a route the kernel refuses (`KernelNetwork`).
    case kernel
}

/// Every service on a "host" of its own: a network namespace per service, each with one address
/// on a bridge that lives in a namespace of its own (the switch), and the runner's namespace on
/// the same bridge through one veth pair. The services speak TCP to each other's addresses, so a
/// partition can be made by the kernel: `cut(from:to:)` adds an `unreachable` route for the other's
/// address in one namespace (the path between the two removed: a sender is told "no route to host"
/// and its packets never leave), and `cut(…, on: false)` or `restoreAll()` deletes it. The runner's
/// own path to every service is never cut (the runner is exempt from faults, as in the filter's
/// mode).
///
/// Needs root and iproute2. The namespaces are named `erp<pid>-…` after the runner's process;
/// `remove()` deletes them, and `create` first removes any left by a runner that is no longer
/// alive (one killed with SIGKILL cannot remove its own).
///
/// Why the runner reaches the services through a veth of its own, not by routing: this machine's
/// default route leads to a gateway that accepts a TCP connection to any address and port (a
/// connect to 198.51.100.7:7101, a documentation address that exists nowhere, succeeded in 1 ms;
/// 2026-12-07). A connect from the host to a namespace's address without a route of its own goes
/// there and "succeeds" without ever reaching the namespace: the connect an earlier namespace test
/// saw and could not explain.
final class KernelNetwork: @unchecked Sendable {
    // @unchecked Sendable: `cuts` is guarded by `lock`; the rest is set once in `create`.
    static let ipPath = "/usr/sbin/ip"

    /// The first three parts of the run's /24 (e.g. "10.202.57").
    let subnet: String
    /// The runner's address on the bridge.
    var hostAddress: String { subnet + ".1" }
    /// Each service's namespace and address.
    private(set) var namespaces: [ServiceName: String] = [:]
    private(set) var addresses: [ServiceName: String] = [:]
    private let prefix: String
    private let switchNamespace: String
    private let hostLink: String
    private let lock = NSLock()
    /// A path cut: `from`'s namespace cannot reach `to`'s address.
    private struct Cut: Hashable {
        var from: ServiceName
        var to: ServiceName
    }
    /// Cuts in force, counted (overlapping faults on one pair each hold it).
    private var cuts: [Cut: Int] = [:]
    /// Routes added so far (each directed cut that took effect).
    var routesAdded: Int { lock.withLock { added } }
    private var added = 0
    let log: @Sendable (String) -> Void

    private init(subnet: String, pid: Int32, log: @escaping @Sendable (String) -> Void) {
        self.subnet = subnet
        self.prefix = "erp\(pid)"
        self.switchNamespace = prefix + "-switch"
        self.hostLink = "erpH\(pid)"
        self.log = log
    }

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    /// Whether this process may make network namespaces (root, iproute2 present).
    static var permitted: Bool { geteuid() == 0 && FileManager.default.isExecutableFile(atPath: ipPath) }

    /// Makes the switch, the runner's link and a namespace per service. On any failure what was
    /// made is removed again and the error says which command failed and what it printed.
    static func create(services: [ServiceName], log: @escaping @Sendable (String) -> Void) throws -> KernelNetwork {
        guard permitted else {
            throw Failure(description: "--network kernel makes a network namespace per service: it needs root and iproute2 (\(ipPath))")
        }
        removeLeftovers(log: log)
        let pid = getpid()
        let network = KernelNetwork(subnet: try freeSubnet(seed: Int(pid)), pid: pid, log: log)
        do {
            try network.build(services)
        } catch {
            network.remove()
            throw error
        }
        return network
    }

    private func build(_ services: [ServiceName]) throws {
        let sw = switchNamespace
        try Self.ip(["netns", "add", sw])
        try Self.ip(["-n", sw, "link", "add", "br0", "type", "bridge"])
        try Self.ip(["-n", sw, "link", "set", "br0", "up"])
        // The runner's side: one veth whose peer is a port of the bridge.
        try Self.ip(["link", "add", hostLink, "type", "veth", "peer", "name", "up0", "netns", sw])
        try Self.ip(["addr", "add", hostAddress + "/24", "dev", hostLink])
        try Self.ip(["link", "set", hostLink, "up"])
        try Self.ip(["-n", sw, "link", "set", "up0", "master", "br0", "up"])
        for (index, service) in services.enumerated() {
            let namespace = "\(prefix)-\(service.rawValue)"
            let address = "\(subnet).\(10 + index)"
            try Self.ip(["netns", "add", namespace])
            try Self.ip(["link", "add", "eth0", "netns", namespace, "type", "veth", "peer", "name", "p\(index)", "netns", sw])
            try Self.ip(["-n", namespace, "addr", "add", address + "/24", "dev", "eth0"])
            try Self.ip(["-n", namespace, "link", "set", "lo", "up"])
            try Self.ip(["-n", namespace, "link", "set", "eth0", "up"])
            try Self.ip(["-n", sw, "link", "set", "p\(index)", "master", "br0", "up"])
            namespaces[service] = namespace
            addresses[service] = address
        }
        log("kernel network: \(services.count) namespaces on \(subnet).0/24 (\(prefix)-SERVICE), the runner at \(hostAddress)")
    }

    /// The command that runs a service's process inside its namespace.
    func wrapper(for service: ServiceName) -> [String] {
        guard let namespace = namespaces[service] else { return [] }
        return [Self.ipPath, "netns", "exec", namespace]
    }

    /// The two services, when both ends are services this network placed (devices and the runner
    /// are not) and they are not one.
    func placed(_ a: NodeName, _ b: NodeName) -> (ServiceName, ServiceName)? {
        guard let x = ServiceName(named: a.rawValue), let y = ServiceName(named: b.rawValue),
              x != y, addresses[x] != nil, addresses[y] != nil else { return nil }
        return (x, y)
    }

    /// Cuts (`on`) or restores the path from `from`'s namespace to `to`'s address. Counted: a pair
    /// cut by two overlapping faults is restored when both have ended.
    func cut(from: ServiceName, to: ServiceName, on: Bool) {
        let cut = Cut(from: from, to: to)
        let change: Bool = lock.withLock {
            let before = cuts[cut, default: 0]
            let after = max(0, before + (on ? 1 : -1))
            cuts[cut] = after == 0 ? nil : after
            return (before == 0) != (after == 0)
        }
        if change { route(cut, add: on) }
    }

    /// Restores every path still cut (the heal).
    func restoreAll() {
        let held = lock.withLock {
            defer { cuts = [:] }
            return cuts.keys.sorted { ($0.from.rawValue, $0.to.rawValue) < ($1.from.rawValue, $1.to.rawValue) }
        }
        for cut in held { route(cut, add: false) }
    }

    /// Adds or deletes the unreachable route that makes `cut`, and says so.
    private func route(_ cut: Cut, add: Bool) {
        guard let namespace = namespaces[cut.from], let address = addresses[cut.to] else { return }
        do {
            try Self.ip(["-n", namespace, "route", add ? "add" : "del", "unreachable", address + "/32"])
            if add { lock.withLock { added += 1 } }
            log("kernel: \(cut.from) -> \(cut.to) (\(address)) \(add ? "cut: unreachable route added" : "restored: route deleted") in \(namespace)")
        } catch {
            log("kernel: cannot \(add ? "cut" : "restore") \(cut.from) -> \(cut.to): \(error)")
        }
    }

    /// Deletes every namespace of this run (their veths go with them, the runner's too). Once: a
    /// run that fails as it starts is torn down and then unwound.
    func remove() {
        let (made, first) = lock.withLock {
            defer { removed = true }
            return (namespaces.values.sorted(), !removed)
        }
        guard first else { return }
        for namespace in made + [switchNamespace] {
            _ = try? Self.ip(["netns", "del", namespace])
        }
        // The runner's veth goes with its peer; deleted here too in case the switch never existed.
        _ = try? Self.ip(["link", "del", hostLink])
    }
    private var removed = false

    /// Removes the namespaces of runs whose process is gone.
    static func removeLeftovers(log: @Sendable (String) -> Void) {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: "/var/run/netns") else { return }
        for name in names.sorted() where name.hasPrefix("erp") {
            let digits = name.dropFirst(3).prefix { $0.isNumber }
            guard !digits.isEmpty, let pid = Int32(digits), name.dropFirst(3 + digits.count).hasPrefix("-") else { continue }
            if kill(pid, 0) == 0 || errno == EPERM { continue }
            do {
                try ip(["netns", "del", name])
                log("kernel network: removed \(name), left by a run that is gone")
            } catch {
                log("kernel network: cannot remove \(name), left by a run that is gone: \(error)")
            }
        }
    }

    /// A /24 under 10.202.0.0/16 that no interface of this namespace has an address in.
    private static func freeSubnet(seed: Int) throws -> String {
        let shown = (try? ip(["-4", "-o", "addr", "show"])) ?? ""
        for step in 0..<200 {
            let candidate = "10.202.\((seed + step) % 200 + 20)"
            if !shown.contains(" " + candidate + ".") { return candidate }
        }
        throw Failure(description: "no free /24 under 10.202.0.0/16 for the kernel network")
    }

    /// Runs `ip` with `arguments`; a failure says the command and what it printed.
    @discardableResult
    static func ip(_ arguments: [String]) throws -> String {
        let run = try runTool(ipPath, arguments, includingErrors: true)
        guard run.status == 0 else {
            throw Failure(description: "ip \(arguments.joined(separator: " ")): \(run.output.trimmingCharacters(in: .whitespacesAndNewlines)) (exit \(run.status))")
        }
        return run.output
    }
}
