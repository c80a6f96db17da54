import ERPProduction
import ERPTestSupport
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
        let holder = try LoopbackListener(port: a + 1)
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
}
