import ERPCore
import ERPReports
import ERPScenario
import ERPTestSupport
import Foundation
import Testing

/// Code the simulator runs (services, storage, resilience, transport, the core types, the
/// simulator itself and the workload clients) must take time, randomness, ids, sleeps, threads
/// and tasks from the runtime. The rule is `scripts/check-determinism.sh`'s: its pattern and its
/// paths are read from that file, so the fast gate and the suite cannot drift apart.
@Suite struct DeterminismLintTests {
    struct Rule {
        var pattern: String
        var paths: [String]
    }

    static func rule() throws -> Rule {
        let script = try String(contentsOfFile: packageRoot + "/scripts/check-determinism.sh", encoding: .utf8)
        let patternLine = try #require(script.split(separator: "\n").first { $0.hasPrefix("pattern='") })
        let pattern = String(patternLine.dropFirst("pattern='".count).dropLast())
        let start = try #require(script.range(of: "paths=("))
        let end = try #require(script[start.upperBound...].firstIndex(of: ")"))
        let paths = script[start.upperBound..<end].split(whereSeparator: { $0 == " " || $0 == "\n" }).map(String.init)
        return Rule(pattern: pattern, paths: paths)
    }

    static func offences(in text: String, file: String, pattern: String) throws -> [String] {
        let regex = try Regex(pattern)
        var out: [String] = []
        for (i, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let code = line.trimmingCharacters(in: .whitespaces)
            if code.hasPrefix("//") || line.contains("determinism-exempt:") { continue }
            if line.contains(regex) { out.append("\(file):\(i + 1): \(code)") }
        }
        return out
    }

    /// What the helper of a determinism audit found the old pattern let through, and what it
    /// must keep letting through (the runtime's own `sleep`, identifiers that hold "Thread").
    @Test func theLintCatchesWhatItMust() throws {
        let pattern = try Self.rule().pattern
        let banned = ["let t = Date()", "let t = Date.now", "Date(timeIntervalSinceNow: 1)", "CFAbsoluteTimeGetCurrent()",
                      "var g = SystemRandomNumberGenerator()", "arc4random()", "xs.shuffled()", "xs.randomElement()",
                      "let x = Int.random(in: 0...1)", "Task { }", "Task(priority: .high) {", "Task.detached {",
                      "DispatchTime.now()", "DispatchQueue.main.async {", "let s = DispatchSemaphore(value: 0)", "Thread.sleep(forTimeInterval: 1)",
                      "usleep(10)", "sleep(1)", "ProcessInfo.processInfo.environment", "getpid()", "key.hashValue",
                      "async let a = f()", "await withTaskGroup(of: Int.self) { _ in }", "try await withThrowingTaskGroup(of: Int.self) { _ in }",
                      "let c = ContinuousClock.now", "SuspendingClock().now", "@MainActor func f()", "UUID()", "try await Task.sleep(for: .seconds(1))"]
        for line in banned {
            #expect(try Self.offences(in: line, file: "f", pattern: pattern).count == 1, "not caught: \(line)")
        }
        let allowed = ["await runtime.sleep(for: .seconds(1))", "func sleep(for duration: Duration) async", "private var runningThread: pthread_t?",
                       "onWorldThread { }", "runtime.spawn(\"relay\") { }", "// Date() in a comment",
                       "Task(executorPreference: self) { }  // determinism-exempt: the simulator's own"]
        for line in allowed {
            #expect(try Self.offences(in: line, file: "f", pattern: pattern).isEmpty, "caught: \(line)")
        }
    }

    @Test func simulatedCodeUsesOnlyTheRuntime() throws {
        let rule = try Self.rule()
        #expect(rule.paths.contains("Sources/ERPServices") && rule.paths.contains("Sources/ERPSimulation"), "\(rule.paths)")
        var offences: [String] = []
        for path in rule.paths {
            let full = packageRoot + "/" + path
            var isDirectory: ObjCBool = false
            try #require(FileManager.default.fileExists(atPath: full, isDirectory: &isDirectory), "\(path) is gone: the script names it")
            let files = isDirectory.boolValue
                ? (FileManager.default.enumerator(atPath: full)?.compactMap { $0 as? String }.filter { $0.hasSuffix(".swift") }.map { full + "/" + $0 } ?? [])
                : [full]
            for file in files {
                offences += try Self.offences(in: String(contentsOfFile: file, encoding: .utf8),
                                              file: String(file.dropFirst(packageRoot.count + 1)), pattern: rule.pattern)
            }
        }
        #expect(offences.isEmpty, "\(offences.joined(separator: "\n"))")
    }
}
