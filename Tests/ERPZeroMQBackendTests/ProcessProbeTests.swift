import ERPTestSupport
@testable import ERPZeroMQBackend
import Foundation
import Testing

/// `erp soak`'s look at a process through /proc, tried on this test process: memory by kind, and
/// a TCP connection accepted on a port it listens on counted as a client's, not as its own.
@Suite(.serialized) struct ProcessProbeTests {
    @Test func countsAnAcceptedConnectionAsAClients() throws {
        let listener = try LoopbackListener(backlog: 4)
        defer { listener.close() }

        let first = ProcessProbe.read(pid: getpid())
        #expect(first.rssKiB > 0 && first.anonymousKiB > 0 && first.fileKiB > 0)
        #expect(first.anonymousKiB + first.fileKiB <= first.rssKiB + 4, "\(first)")

        // The counts are the whole test process's, and suites running beside this one open and
        // close descriptors and connections between the two reads (a fresh-clone CI saw 41 after
        // 41 before two new descriptors). A probe that counts right sees the pair in at least one
        // of five tries; one that does not count them never does.
        var seen: [String] = []
        for _ in 0..<5 {
            let before = ProcessProbe.read(pid: getpid())
            let client = try listener.connectClient()
            let accepted = try listener.accept()
            let after = ProcessProbe.read(pid: getpid())
            close(client)
            close(accepted)
            // The accepted end is a client's connection; the connecting end (an ephemeral port
            // nobody listens on) is the process's own, like the listener.
            if after.clientConnections == before.clientConnections + 1 && after.descriptors >= before.descriptors + 2
                && after.ownDescriptors >= before.ownDescriptors + 1 { return }
            seen.append("\(before) then \(after)")
        }
        Issue.record("an accepted connection was not counted as a client's in five tries: \(seen)")
    }

    /// The soak's gateway holds dozens of its clients' connections at once, in a connection table
    /// of thousands of rows (the load's closed connections in TIME_WAIT): every one must count.
    @Test func countsManyAcceptedConnections() throws {
        let listener = try LoopbackListener(backlog: 512)
        defer { listener.close() }
        var open: [Int32] = []
        defer { for fd in open { close(fd) } }
        let count = 300
        for _ in 0..<count {
            open.append(try listener.connectClient())
            open.append(try listener.accept())
        }
        let after = ProcessProbe.read(pid: getpid())
        // At least ours (tests beside this one may hold more, and may close theirs meanwhile).
        #expect(after.clientConnections >= count, "\(after)")
        #expect(after.ownDescriptors >= count + 1)
    }

    /// A connection table read while connections come and go can list a socket twice (seen in
    /// 4 of 300 reads of a soaked gateway's): it is still one client's connection.
    @Test func aSocketListedTwiceCountsOnce() {
        let header = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode"
        func row(_ sl: Int, local: String, remote: String, state: String, inode: String) -> String {
            "   \(sl): \(local) \(remote) \(state) 00000000:00000000 00:00000000 00000000     0        0 \(inode) 1 0000000000000000 20 4 30 10 -1"
        }
        let listener = row(0, local: "0100007F:186A", remote: "00000000:0000", state: "0A", inode: "100")
        let client = row(1, local: "0100007F:186A", remote: "0100007F:9C40", state: "01", inode: "200")
        let outgoing = row(2, local: "0100007F:9C41", remote: "0100007F:1F90", state: "01", inode: "300")
        let ours: Set<Substring> = ["100", "200", "300"]
        #expect(ProcessProbe.clientConnections(sockets: ours, tables: [[header, listener, client, outgoing].joined(separator: "\n"), header]) == 1)
        // The same table, read while it changed: the client's row twice.
        #expect(ProcessProbe.clientConnections(sockets: ours, tables: [[header, listener, client, outgoing, client].joined(separator: "\n"), header]) == 1)
        // Another process's connection to the same port is not this one's.
        let theirs = row(3, local: "0100007F:186A", remote: "0100007F:9C42", state: "01", inode: "400")
        #expect(ProcessProbe.clientConnections(sockets: ours, tables: [[header, listener, client, theirs].joined(separator: "\n"), header]) == 1)
    }

    @Test func aProcessThatIsGoneReadsAsZeros() {
        let probe = ProcessProbe.read(pid: Int32.max)
        #expect(probe == ProcessProbe())
    }

    /// A service run under a tool (`ERP_WRAP`) is the process whose own first words are `serve
    /// SERVICE`: the tool's command line holds the same words further on.
    @Test func aServiceIsTheProcessThatServesItNotItsWrapper() {
        func words(_ line: String) -> [Substring] { line.split(separator: " ") }
        #expect(ProcessProbe.isServe("order", arguments: words("/x/erp serve order --topology t.yaml")))
        #expect(!ProcessProbe.isServe("order", arguments: words("/bin/sh /tmp/wrap.sh /x/erp serve order --topology t.yaml")))
        #expect(!ProcessProbe.isServe("order", arguments: words("bash /usr/bin/heaptrack -o /tmp/order /x/erp serve order")))
        #expect(!ProcessProbe.isServe("order", arguments: words("/x/erp serve payment")))
        #expect(!ProcessProbe.isServe("order", arguments: words("/x/erp serve")))
    }

    /// The walk down from a wrapper finds its child by command line, and a process with nothing
    /// matching under it finds nothing.
    @Test func findsTheProcessUnderAWrapper() async throws {
        let wrapper = Process()
        wrapper.executableURL = URL(fileURLWithPath: "/bin/sh")
        // Not the last command, so the shell forks `sleep` and waits for it.
        wrapper.arguments = ["-c", "sleep 37; true"]
        try wrapper.run()
        defer { wrapper.terminate(); wrapper.waitUntilExit() }
        let isSleep: ([Substring]) -> Bool = { $0.count == 2 && $0[0].hasSuffix("sleep") && $0[1] == "37" }
        var found: Int32?
        for _ in 0..<100 where found == nil {  // sleeping, not blocking a thread of the pool
            found = ProcessProbe.process(under: wrapper.processIdentifier, where: isSleep)
            if found == nil { try await Task.sleep(for: .milliseconds(20)) }
        }
        let child = try #require(found, "sleep under the shell")
        defer { kill(child, SIGKILL) }
        #expect(child != wrapper.processIdentifier)
        #expect(ProcessProbe.parent(of: child) == wrapper.processIdentifier)
        #expect(ProcessProbe.process(under: child, where: { $0.first == "no-such-program" }) == nil)
        #expect(ProcessProbe.parent(of: Int32.max) == nil)
    }
}
