import Foundation
import Synchronization

/// A loopback TCP port that nobody listens on now, for a server a harness is about to start (a
/// service's metrics port, the gateway's HTTP port in a test). Consecutive calls answer different
/// ports.
///
/// Not a port the kernel picks (binding port 0). That comes from the ephemeral range, the range
/// every outgoing connection takes its source port from, so between this answer and the server's
/// bind another process's connection could take it (on a CI clone, payment's metrics port was held
/// by another process); and the kernel may hand the same port to two calls in a row once the first
/// probe is closed. The port comes from below that range instead, where no port is taken without
/// asking for it: each process walks the range from a place of its own (by its pid), and a port is
/// answered only if it can be bound now.
public func freeLoopbackPort() throws -> Int {
    let floor = 10_000
    let ceiling = ephemeralPortRangeStart()
    guard ceiling - floor >= 1_000 else { return try kernelPickedLoopbackPort() }
    let span = ceiling - floor
    for _ in 0..<span {
        let port = floor + portCursor.withLock { cursor in
            if cursor < 0 { cursor = Int(getpid()) &* 7_919 % span }
            defer { cursor = (cursor + 1) % span }
            return cursor
        }
        if canBindLoopback(port: port) { return port }
    }
    throw LoopbackPortError("no loopback port from \(floor) to \(ceiling - 1) can be bound")
}

private let portCursor = Mutex(-1)

/// Where the kernel's ephemeral ports begin (`net.ipv4.ip_local_port_range`; 32768 by default).
private func ephemeralPortRangeStart() -> Int {
    guard let text = try? String(contentsOfFile: "/proc/sys/net/ipv4/ip_local_port_range", encoding: .utf8),
          let first = text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }).first, let low = Int(first) else { return 32_768 }
    return low
}

/// Whether 127.0.0.1:`port` can be bound now (without SO_REUSEADDR: a port with a connection in
/// TIME_WAIT counts as taken).
private func canBindLoopback(port: Int) -> Bool {
    guard let fd = try? boundLoopbackSocket(port: port) else { return false }
    close(fd)
    return true
}

/// A port the kernel picks from its ephemeral range: the fallback when little lies below it.
private func kernelPickedLoopbackPort() throws -> Int {
    let fd = try boundLoopbackSocket(port: 0)
    defer { close(fd) }
    var address = sockaddr_in()
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let named = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) == 0 }
    }
    guard named else { throw LoopbackPortError("getsockname(): \(String(cString: strerror(errno)))") }
    return Int(UInt16(bigEndian: address.sin_port))
}

/// A TCP socket bound to 127.0.0.1:`port` (0: the kernel picks), not listening; the caller closes it.
private func boundLoopbackSocket(port: Int) throws -> Int32 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw LoopbackPortError("socket(): \(String(cString: strerror(errno)))") }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = UInt16(port).bigEndian
    let bound = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
    }
    guard bound else {
        let reason = String(cString: strerror(errno))
        close(fd)
        throw LoopbackPortError("cannot bind 127.0.0.1:\(port): \(reason)")
    }
    return fd
}

public struct LoopbackPortError: Error, CustomStringConvertible {
    public let description: String
    init(_ d: String) { description = d }
}
