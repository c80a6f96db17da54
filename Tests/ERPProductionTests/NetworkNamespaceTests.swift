import ERPCore
import ERPProduction
import Foundation
import ERPTestSupport
import Testing

/// Runs a command, returning its exit status and output; `environment` adds to this process's.
@discardableResult
func sh(_ executable: String, _ arguments: [String], environment: [String: String] = [:]) -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    if !environment.isEmpty { process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    do { try process.run() } catch { return (-1, "\(error)") }
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: data, as: UTF8.self))
}

enum NetworkNamespaces {
    /// Whether this machine lets us make network namespaces (root with iproute2).
    static let permitted: Bool = {
        let probe = "erp-probe-\(getpid())"
        guard sh("/usr/sbin/ip", ["netns", "add", probe]).status == 0 else { return false }
        sh("/usr/sbin/ip", ["netns", "del", probe])
        return true
    }()
}

/// Nothing may assume one host: the event bus and inventory run in one network namespace, the
/// gateway in another, joined only by a veth pair; a stock read through the gateway's HTTP must
/// cross it (gateway → inventory over ZeroMQ with CURVE). Then the kernel cuts the link (the veth
/// goes down): reads are refused in time and no process stops; the link comes back and reads
/// succeed again.
@Suite(.serialized) struct NetworkNamespaceTests {
    @Test(.enabled(if: NetworkNamespaces.permitted, "network namespaces are not permitted here (needs root and iproute2); skipped"))
    func servicesInTwoNamespacesTalkOverAVethPair() async throws {
        let binary = erpBinary
        try #require(FileManager.default.isExecutableFile(atPath: binary), "build erp first (swift build)")
        let tag = String(getpid() % 10_000)
        let (nsA, nsB, vethA, vethB) = ("erpA-\(tag)", "erpB-\(tag)", "veA\(tag)", "veB\(tag)")
        let subnet = "10.201.\(getpid() % 200 + 20)"
        let ip = "/usr/sbin/ip"
        defer {
            sh(ip, ["netns", "del", nsA])
            sh(ip, ["netns", "del", nsB])
        }
        for args in [["netns", "add", nsA], ["netns", "add", nsB],
                     ["link", "add", vethA, "type", "veth", "peer", "name", vethB],
                     ["link", "set", vethA, "netns", nsA], ["link", "set", vethB, "netns", nsB],
                     ["-n", nsA, "addr", "add", "\(subnet).1/24", "dev", vethA], ["-n", nsB, "addr", "add", "\(subnet).2/24", "dev", vethB],
                     ["-n", nsA, "link", "set", vethA, "up"], ["-n", nsB, "link", "set", vethB, "up"],
                     ["-n", nsA, "link", "set", "lo", "up"], ["-n", nsB, "link", "set", "lo", "up"]] {
            let r = sh(ip, args)
            try #require(r.status == 0, "ip \(args.joined(separator: " ")): \(r.output)")
        }

        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("erp-netns-\(tag)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let yaml = """
            name: two-hosts
            dataDirectory: data
            http: {host: \(subnet).2, port: 8080, apiKeys: [k1]}
            security: {curveKeys: keys}
            services:
              event-bus: tcp://\(subnet).1:7101
              inventory: tcp://\(subnet).1:7103
              gateway: tcp://\(subnet).2:7107
            """
        let topology = dir + "/topology.yaml"
        try yaml.write(toFile: topology, atomically: true, encoding: .utf8)
        try KeyStore(directory: dir + "/keys").generate(for: [.eventBus, .inventory, .gateway])

        var servers: [Process] = []
        defer { for p in servers where p.isRunning { p.terminate(); p.waitUntilExit() } }
        for (namespace, service) in [(nsA, "event-bus"), (nsA, "inventory"), (nsB, "gateway")] {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: ip)
            p.arguments = ["netns", "exec", namespace, binary, "serve", service, "--topology", topology,
                           "--fixtures", packageRoot + "/fixtures/retail.json"]
            p.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
            p.standardError = p.standardOutput
            try p.run()
            servers.append(p)
        }

        // The client sits in the gateway's namespace: from there only the veth leads to inventory.
        // (Traffic stays inside the two namespaces this test made; nothing is sent from the host's.)
        let read = """
            import json, sys, time, urllib.request, urllib.error
            want, tries = sys.argv[1], int(sys.argv[2])
            for _ in range(tries):
                try:
                    req = urllib.request.Request("http://\(subnet).2:8080/inventory/shop_malmo/prod_01", headers={"X-API-Key": "k1"})
                    body = urllib.request.urlopen(req, timeout=10).read()
                    if want == "stock":
                        print(json.loads(body)["available"]); sys.exit(0)
                    print("answered while partitioned:", body); sys.exit(1)
                except urllib.error.HTTPError as e:
                    if want == "refusal":
                        print(e.code); sys.exit(0)
                    last = e
                except Exception as e:
                    last = e
                time.sleep(0.2)
            print("failed:", last); sys.exit(1)
            """
        func stock(_ tries: Int) -> (status: Int32, output: String) {
            sh(ip, ["netns", "exec", nsB, "/usr/bin/env", "python3", "-c", read, "stock", String(tries)])
        }
        let result = stock(100)
        #expect(result.status == 0, "\(result.output)")
        let available = Int(result.output.trimmingCharacters(in: .whitespacesAndNewlines))
        #expect((available ?? 0) > 0, "stock read across the namespaces: \(result.output)")

        // A partition made by the kernel, not by our fault filter: the link between the two
        // "hosts" goes down. The gateway answers with a typed refusal (503 unavailable or 504
        // deadline exceeded) within its deadline, and no process stops.
        let down = sh(ip, ["-n", nsA, "link", "set", vethA, "down"])
        try #require(down.status == 0, "ip link set down: \(down.output)")
        let refused = sh(ip, ["netns", "exec", nsB, "/usr/bin/env", "python3", "-c", read, "refusal", "1"])
        #expect(refused.status == 0, "a read across the cut link: \(refused.output)")
        #expect(["503", "504"].contains(refused.output.trimmingCharacters(in: .whitespacesAndNewlines)), "\(refused.output)")
        for (process, service) in zip(servers, ["event-bus", "inventory", "gateway"]) {
            #expect(process.isRunning, "\(service) stopped during the partition")
        }

        // Healed: the link comes back and the same connections carry reads again.
        let up = sh(ip, ["-n", nsA, "link", "set", vethA, "up"])
        try #require(up.status == 0, "ip link set up: \(up.output)")
        let healed = stock(150)
        #expect(healed.status == 0, "no read after the link came back: \(healed.output)")
        for (process, service) in zip(servers, ["event-bus", "inventory", "gateway"]) {
            #expect(process.isRunning, "\(service) stopped after the partition healed")
        }
    }
}
