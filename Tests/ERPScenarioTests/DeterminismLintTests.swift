import ERPCore
import ERPReports
import ERPScenario
import ERPTestSupport
import Foundation
import Testing

/// Service, storage, resilience and transport code (the relay and the consumers run in simulation
/// too) must take time, randomness and tasks from the runtime.
@Suite struct DeterminismLintTests {
    static let banned = #"Date\(\)|Task\.sleep|UUID\(\)|\.random\(|Task *\{|Task\.detached|DispatchQueue|Thread\b|@MainActor|ContinuousClock"#

    static func offences(in text: String, file: String) throws -> [String] {
        let regex = try Regex(banned)
        var out: [String] = []
        for (i, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let code = line.trimmingCharacters(in: .whitespaces)
            if code.hasPrefix("//") { continue }
            if line.contains(regex) { out.append("\(file):\(i + 1): \(code)") }
        }
        return out
    }

    @Test func theLintCatchesWhatItMust() throws {
        #expect(try Self.offences(in: "let t = Date()\n// Date() in a comment\nTask { }\nlet x = Int.random(in: 0...1)", file: "f").count == 3)
    }

    @Test func servicesStorageResilienceAndTransportUseOnlyTheRuntime() throws {
        var offences: [String] = []
        for module in ["ERPServices", "ERPStorage", "ERPResilience", "ERPTransport"] {
            let dir = packageRoot + "/Sources/" + module
            guard let files = FileManager.default.enumerator(atPath: dir) else { continue }
            for case let file as String in files where file.hasSuffix(".swift") {
                offences += try Self.offences(in: String(contentsOfFile: dir + "/" + file, encoding: .utf8), file: module + "/" + file)
            }
        }
        #expect(offences.isEmpty, "\(offences.joined(separator: "\n"))")
    }
}
