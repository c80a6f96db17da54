import Foundation

/// A TCP listener on 127.0.0.1 for tests that need real connections (a port held, connections
/// accepted), closed with `close()`.
public final class LoopbackListener: @unchecked Sendable {
    public let fd: Int32
    /// The port it listens on (the kernel's choice when made with port 0).
    public let port: Int

    /// Listens on 127.0.0.1:`port` (0: a port the kernel picks), with `backlog` connections queued.
    public init(port: Int = 0, backlog: Int32 = 16) throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw LoopbackError("socket(): \(String(cString: strerror(errno)))") }
        var address = Self.address(port: port)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ready = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        } && listen(fd, backlog) == 0
        guard ready else {
            let reason = String(cString: strerror(errno))
            Foundation.close(fd)
            throw LoopbackError("cannot listen on 127.0.0.1:\(port): \(reason)")
        }
        self.fd = fd
        self.port = Int(UInt16(bigEndian: address.sin_port))
    }

    /// A client socket connected to this listener (the caller closes it).
    public func connectClient() throws -> Int32 {
        let client = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard client >= 0 else { throw LoopbackError("socket(): \(String(cString: strerror(errno)))") }
        var address = Self.address(port: port)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(client, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
        guard connected else {
            let reason = String(cString: strerror(errno))
            Foundation.close(client)
            throw LoopbackError("cannot connect to 127.0.0.1:\(port): \(reason)")
        }
        return client
    }

    /// The next connection in the queue, accepted (the caller closes it).
    public func accept() throws -> Int32 {
        let accepted = Glibc.accept(fd, nil, nil)
        guard accepted >= 0 else { throw LoopbackError("accept(): \(String(cString: strerror(errno)))") }
        return accepted
    }

    public func close() { Foundation.close(fd) }

    static func address(port: Int) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        return address
    }

    public struct LoopbackError: Error, CustomStringConvertible {
        public let description: String
        init(_ d: String) { description = d }
    }
}
