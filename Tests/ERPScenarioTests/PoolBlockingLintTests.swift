import ERPTestSupport
import Foundation
import Testing

/// The tests share one process and its cooperative pool: two threads on a two-core machine. A test
/// that blocks one of them (waiting for a child process, reading a pipe to its end, a semaphore, a
/// sleep) beside another that does the same stops every other test's tasks for as long: a CI run
/// saw two calls with a 5 s deadline fail while a Chromium ran for minutes beside them, read and
/// waited for on the pool. So the tests wait through ERPTestSupport's `waitForExit`, `readToEnd`
/// and `onThreadOfItsOwn`, which block a thread of their own. A line that must block says why with
/// `pool-exempt:` (a wait already on a thread of its own, a handler on libzmq's I/O thread); a
/// `defer` may, as it cannot await (a process told to stop, waited for when a test ends early).
@Suite struct PoolBlockingLintTests {
    /// What blocks the calling thread, and what to use instead.
    static let blockingCalls: [(call: String, instead: String)] = [
        ("waitUntilExit()", "await waitForExit(process)"),
        ("readDataToEndOfFile()", "await readToEnd(handle)"),
        (".readToEnd()", "await readToEnd(handle)"),
        ("Thread.sleep(", "try await Task.sleep(for:)"),
        ("usleep(", "try await Task.sleep(for:)"),
        ("Task.detached", "onThreadOfItsOwn (a detached task runs on the same pool)"),
    ]

    /// The offending lines of `text`, each as `file:line: code (use …)`.
    static func offences(in text: String, file: String) -> [String] {
        var out: [String] = []
        for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let code = line.trimmingCharacters(in: .whitespaces)
            if code.hasPrefix("//") || line.contains("pool-exempt:") || line.contains("defer {") { continue }
            var found = blockingCalls.filter { line.contains($0.call) }.map(\.instead)
            if waitsOnASemaphore(line) { found.append("an async signal (a continuation), or onThreadOfItsOwn") }
            if let instead = found.first { out.append("\(file):\(index + 1): \(code)   (use \(instead))") }
        }
        return out
    }

    /// `x.wait()` or `x.wait(timeout: …)` that is not awaited: a semaphore's or a group's wait.
    static func waitsOnASemaphore(_ line: Substring) -> Bool {
        var rest = line[...]
        while let range = rest.range(of: ".wait(") {
            guard rest[range.upperBound...].hasPrefix(")") || rest[range.upperBound...].hasPrefix("timeout:") else {
                rest = rest[range.upperBound...]
                continue
            }
            var receiverStart = range.lowerBound
            while receiverStart > line.startIndex {
                let previous = line[line.index(before: receiverStart)]
                guard previous.isLetter || previous.isNumber || previous == "_" || previous == "." else { break }
                receiverStart = line.index(before: receiverStart)
            }
            if !line[..<receiverStart].hasSuffix("await ") { return true }
            rest = line[range.upperBound...]
        }
        return false
    }

    @Test func noTestBlocksAThreadOfThePool() throws {
        var offences: [String] = []
        for root in ["Tests", "Sources/ERPTestSupport", "Sources/ZeroMQTestSupport"] {
            let directory = packageRoot + "/" + root
            let files = try #require(FileManager.default.subpathsOfDirectory(atPath: directory) as [String]?)
            // The lint tests hold the calls they look for as samples.
            for file in files.sorted() where file.hasSuffix(".swift") && !file.hasSuffix("LintTests.swift") {
                let text = try String(contentsOfFile: directory + "/" + file, encoding: .utf8)
                offences += Self.offences(in: text, file: root + "/" + file)
            }
        }
        #expect(offences.isEmpty, "blocking waits on the cooperative pool:\n\(offences.joined(separator: "\n"))")
    }

    @Test func theLintSeesEachBlockingWait() {
        let blocked = [
            "        process.waitUntilExit()",
            "        let data = pipe.fileHandleForReading.readDataToEndOfFile()",
            "        let data = try await Task.detached { try out.fileHandleForReading.readToEnd() ?? Data() }.value",
            "        Thread.sleep(forTimeInterval: 0.3)",
            "        usleep(1_000)",
            "        if done.wait(timeout: .now() + 30) == .timedOut {",
            "        held.wait()",
            "        let first = Task { await barrier.wait() }; self.group.wait()",
        ]
        for line in blocked {
            #expect(Self.offences(in: line, file: "t.swift").count == 1, "\(line)")
        }
        let allowed = [
            "        await waitForExit(process)",
            "        let said = await readToEnd(pipe.fileHandleForReading)",
            "        await barrier.wait()",
            "        let first = Task { await self.barrier.wait() }",
            "        defer { if up.isRunning { up.terminate(); up.waitUntilExit() } }",
            "        _ = release.wait(timeout: .now() + 300)  // pool-exempt: on libzmq's I/O thread",
            "        // process.waitUntilExit() would block",
            "        #expect(policy.wait(afterDeaths: 6) == .milliseconds(400))",
        ]
        for line in allowed {
            #expect(Self.offences(in: line, file: "t.swift").isEmpty, "\(line)")
        }
    }
}
