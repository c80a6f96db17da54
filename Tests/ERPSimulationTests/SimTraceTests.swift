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
        trace.observer = { seen.append(String(decoding: $0, as: UTF8.self)) }
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

    /// A line written piece by piece is the same line as one appended whole: same hash, same text
    /// for the observer.
    @Test func aLineWrittenInPiecesIsTheLineAppendedWhole() throws {
        let whole = try SimTrace(), pieces = try SimTrace()
        var seenWhole: [String] = [], seenPieces: [String] = []
        whole.observer = { seenWhole.append(String(decoding: $0, as: UTF8.self)) }
        pieces.observer = { seenPieces.append(String(decoding: $0, as: UTF8.self)) }
        for i in 0..<3_000 {
            let time = Int64(i) * 7_654_321, arrives = time + 1_500_000
            let name = i % 11 == 0 ? "båten" : "order"
            whole.append(time, "send \(name)->event-bus call#\(UInt64(i) * 977) bus.append arrives \(SimTrace.format(arrives))")
            pieces.line(time) { line in
                line.put("send ")
                line.put(name)
                line.put("->event-bus call#")
                line.put(decimal: UInt64(i) * 977)
                line.put(" bus.append arrives ")
                line.put(time: arrives)
            }
        }
        #expect(seenPieces == seenWhole)
        #expect(seenPieces[11] == "send båten->event-bus call#10747 bus.append arrives 0.085697s")
        #expect(pieces.lineCount == whole.lineCount)
        #expect(pieces.finish() == whole.finish())
    }
}
