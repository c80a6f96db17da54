import ERPProduction
import Foundation
import Testing

@Suite struct LoopbackPortTests {
    /// Ports come from below the kernel's ephemeral range (where no outgoing connection takes one),
    /// never twice in a row, and never one that someone holds.
    @Test func portsAreBelowTheEphemeralRangeDistinctAndFree() throws {
        let rangeText = (try? String(contentsOfFile: "/proc/sys/net/ipv4/ip_local_port_range", encoding: .utf8)) ?? "32768 60999"
        let ephemeralStart = Int(rangeText.split(whereSeparator: \.isWhitespace).first!)!
        let a = try freeLoopbackPort()
        // Hold the port after it, the next one this process's walk would reach.
        let holder = try Listener(port: a + 1)
        defer { holder.close() }
        var seen: Set<Int> = [a]
        for _ in 0..<20 {
            let port = try freeLoopbackPort()
            #expect(port != a + 1, "answered a port somebody listens on")
            #expect(!seen.contains(port), "answered \(port) twice")
            #expect(port >= 10_000 && port < ephemeralStart)
            seen.insert(port)
        }
    }

    final class Listener {
        let fd: Int32
        init(port: Int) throws {
            fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            address.sin_port = UInt16(port).bigEndian
            let ok = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
            } && listen(fd, 1) == 0
            try #require(ok, "could not hold port \(port) for the test")
        }
        func close() { _ = Foundation.close(fd) }
    }
}
