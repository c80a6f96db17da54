import Crypto
@testable import ERPSimulation
import Foundation
import Testing

/// The trace's fingerprint is SHA-256 over its text, line by line, whatever chunks it is hashed
/// in; its file holds the same text; times read `seconds.microseconds` followed by `s`.
@Suite struct SimTraceTests {
    @Test func timesAreSecondsWithSixDigitsOfMicroseconds() {
        #expect(SimTrace.format(0) == "0.000000s")
        #expect(SimTrace.format(999) == "0.000000s")
        #expect(SimTrace.format(1_000) == "0.000001s")
        #expect(SimTrace.format(12_345_678_000) == "12.345678s")
        #expect(SimTrace.format(100_000_000_000_000) == "100000.000000s")
    }

    @Test func theHashIsSHA256OfTheTextAndTheFileHoldsIt() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("erp-trace-\(UInt64.random(in: 0...UInt64.max)).log").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let trace = try SimTrace(writingTo: path)
        var text = ""
        var seen: [String] = []
        trace.observer = { seen.append($0) }
        // Enough lines to cross several 64 KiB flushes, some long, some not ASCII.
        for i in 0..<5_000 {
            let line = i % 97 == 0 ? String(repeating: "å", count: 3_000) : "node-\(i % 7) sends call \(i) to order"
            let time = Int64(i) * 1_234_567
            trace.append(time, line)
            text += SimTrace.format(time) + " " + line + "\n"
        }
        let hash = trace.finish()
        let expected = SHA256.hash(data: Data(text.utf8)).map { String(format: "%02x", $0) }.joined()
        #expect(hash == expected)
        #expect(trace.lineCount == 5_000)
        #expect(seen.count == 5_000 && seen[1] == "node-1 sends call 1 to order")
        #expect(try String(contentsOfFile: path, encoding: .utf8) == text)
    }

    @Test func aTraceWithoutAFileHashesTheSame() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("erp-trace-\(UInt64.random(in: 0...UInt64.max)).log").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let a = try SimTrace(), b = try SimTrace(writingTo: path)
        for i in 0..<20_000 { a.append(Int64(i), "line \(i)"); b.append(Int64(i), "line \(i)") }
        #expect(a.finish() == b.finish())
    }
}
