import ERPZeroMQBackend
import Foundation
import Testing

/// `erp soak`'s look at a process through /proc, tried on this test process: memory by kind, and
/// a TCP connection accepted on a port it listens on counted as a client's, not as its own.
@Suite(.serialized) struct ProcessProbeTests {
    @Test func countsAnAcceptedConnectionAsAClients() throws {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        try #require(listener >= 0)
        defer { close(listener) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, length) == 0 && getsockname(listener, $0, &length) == 0 }
        }
        try #require(bound && listen(listener, 4) == 0)

        let before = ProcessProbe.read(pid: getpid())
        #expect(before.rssKiB > 0 && before.anonymousKiB > 0 && before.fileKiB > 0)
        #expect(before.anonymousKiB + before.fileKiB <= before.rssKiB + 4, "\(before)")

        let client = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(client) }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(client, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
        try #require(connected)
        let accepted = accept(listener, nil, nil)
        try #require(accepted >= 0)
        defer { close(accepted) }

        let after = ProcessProbe.read(pid: getpid())
        // The accepted end is a client's connection; the connecting end (an ephemeral port nobody
        // listens on) is the process's own, like the listener.
        #expect(after.clientConnections == before.clientConnections + 1, "\(before) then \(after)")
        #expect(after.descriptors >= before.descriptors + 2)
        #expect(after.ownDescriptors >= before.ownDescriptors + 1)
    }

    /// The soak's gateway holds dozens of its clients' connections at once, in a connection table
    /// of thousands of rows (the load's closed connections in TIME_WAIT): every one must count.
    @Test func countsManyAcceptedConnections() throws {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        try #require(listener >= 0)
        defer { close(listener) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, length) == 0 && getsockname(listener, $0, &length) == 0 }
        }
        try #require(bound && listen(listener, 512) == 0)
        var open: [Int32] = []
        defer { for fd in open { close(fd) } }
        let count = 300
        for _ in 0..<count {
            let client = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            try #require(client >= 0)
            open.append(client)
            let connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(client, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
            }
            try #require(connected)
            let accepted = accept(listener, nil, nil)
            try #require(accepted >= 0)
            open.append(accepted)
        }
        let after = ProcessProbe.read(pid: getpid())
        // At least ours (tests beside this one may hold more, and may close theirs meanwhile).
        #expect(after.clientConnections >= count, "\(after)")
        #expect(after.ownDescriptors >= count + 1)
    }

    @Test func aProcessThatIsGoneReadsAsZeros() {
        let probe = ProcessProbe.read(pid: Int32.max)
        #expect(probe == ProcessProbe())
    }
}
