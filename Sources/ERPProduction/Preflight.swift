import Foundation

extension Topology {
    /// What would stop this topology's services from starting, found before any is started: a
    /// TCP address another process listens on (a second `erp up`, the gateway's port taken), a
    /// service without its key, a data folder that cannot be made. Each is one sentence. Without
    /// this a service that cannot bind exits, the supervisor starts it again, and `erp up` looks
    /// healthy while restarting it forever.
    public func preflightProblems() -> [String] {
        var problems: [String] = []
        var addresses: [(what: String, host: String, port: Int)] = []
        for (service, endpoint) in endpoints {
            if let (host, port) = Self.tcpAddress(endpoint) { addresses.append(("\(service)'s endpoint \(endpoint)", host, port)) }
        }
        if endpoint(of: .gateway) != nil { addresses.append(("the gateway's HTTP port", httpHost, httpPort)) }
        for service in endpoints.map(\.service) {
            if let metrics = metricsAddresses[service] { addresses.append(("\(service)'s metrics", metrics.host, metrics.port)) }
        }
        if let deviceEndpoint, let (host, port) = Self.tcpAddress(deviceEndpoint) {
            addresses.append(("the device ingress \(deviceEndpoint)", host, port))
        }
        let taken = addresses.compactMap { address in
            Self.cannotListen(host: address.host, port: address.port).map { "\(address.what) (\(address.host):\(address.port)) cannot be bound: \($0)" }
        }
        // A second `erp up` finds every address taken: the first few say it.
        problems += taken.prefix(3)
        if taken.count > 3 { problems.append("and \(taken.count - 3) more of the topology's addresses cannot be bound") }
        if let keyDirectory, !plaintext {
            let keys = KeyStore(directory: keyDirectory)
            let names = endpoints.map(\.service.rawValue)
            let missing = names.filter { !keys.hasSecretKey(named: $0) }
            if !missing.isEmpty {
                problems.append("no secret key for \(missing.joined(separator: ", ")) in \(keyDirectory) (erp keys generate --topology \(path.isEmpty ? "FILE" : path) makes them)")
            }
            // A key file that is there but unusable (emptied, truncated, its .pub from another
            // pair) stops its service at start as surely as a missing one.
            for name in names where keys.hasSecretKey(named: name) {
                do { _ = try keys.keyPair(named: name) } catch { problems.append("the key of \(name) cannot be used: \(error)") }
            }
        }
        do { try FileManager.default.createDirectory(atPath: dataDirectory, withIntermediateDirectories: true) } catch {
            problems.append("the data folder \(dataDirectory) cannot be made: \((error as NSError).localizedDescription)")
        }
        return problems
    }

    /// Host and port of a `tcp://HOST:PORT` endpoint with a numeric IPv4 host (others: nil, not probed).
    static func tcpAddress(_ endpoint: String) -> (String, Int)? {
        guard endpoint.hasPrefix("tcp://") else { return nil }
        let rest = endpoint.dropFirst("tcp://".count)
        guard let colon = rest.lastIndex(of: ":"), let port = Int(rest[rest.index(after: colon)...]), (1...65_535).contains(port) else { return nil }
        return (String(rest[..<colon]), port)
    }

    /// Why `host:port` cannot be listened on now, or nil when it can (or when the host is not a
    /// numeric IPv4 address, which is not probed). With SO_REUSEADDR, as libzmq and the HTTP
    /// server bind: a port left in TIME_WAIT by a previous run is no obstacle, a listener is.
    static func cannotListen(host: String, port: Int) -> String? {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        if host == "*" {
            address.sin_addr.s_addr = INADDR_ANY
        } else if inet_pton(AF_INET, host, &address.sin_addr) != 1 {
            return nil
        }
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var on: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, socklen_t(MemoryLayout<Int32>.size))
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
        if bound { return nil }
        let code = errno
        return code == EADDRINUSE ? "another process listens there (another erp up?)" : String(cString: strerror(code))
    }
}

extension Topology {
    /// The example API key of the shipped topology, which the README and the examples send.
    public static let exampleAPIKey = "dev-key-change-me"

    /// What in this topology is fit for a test bench only, each a sentence: `erp up` says them at
    /// start (it started quietly with public test keys readable by anyone on the machine and the
    /// example API key). Not refusals: the shipped topology is a test bench.
    public func insecureSettings() -> [String] {
        var found: [String] = []
        if apiKeys.contains(Self.exampleAPIKey) {
            found.append("http.apiKeys holds the example key \(Self.exampleAPIKey), which anyone who read the README knows: set keys of your own for anything but a test bench")
        }
        let fm = FileManager.default
        for folder in [keyDirectory, deviceKeyDirectory].compactMap({ $0 }) {
            let names = ((try? fm.contentsOfDirectory(atPath: folder)) ?? []).filter { $0.hasSuffix(".key") }.sorted()
            let open = names.filter { name in
                ((try? fm.attributesOfItem(atPath: folder + "/" + name))?[.posixPermissions] as? Int).map { $0 & 0o077 != 0 } ?? false
            }
            if !open.isEmpty {
                found.append("\(open.count) of the secret keys in \(folder) are readable by other users (\(open.first!) among them): `erp keys generate --replace` makes pairs whose secret keys are for their owner only (0600)")
            }
        }
        return found
    }
}
