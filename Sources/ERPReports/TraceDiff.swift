import Foundation

/// Where two traces first differ, with the lines around it from each: what `erp replay` and
/// `erp run --check-determinism` print when a run does not reproduce.
public struct TraceDivergence: Sendable, Equatable {
    /// 1-based line number of the first line that differs (or that only one trace has).
    public var line: Int
    /// Lines `line - context ... line + context` of each trace (fewer at either end).
    public var expected: [String]
    public var actual: [String]
    /// The line number of the first entry in `expected` and `actual`.
    public var firstShown: Int

    /// A person's reading: both excerpts, the differing line marked.
    public func rendered(expectedLabel: String, actualLabel: String) -> String {
        func excerpt(_ lines: [String]) -> String {
            lines.enumerated().map { i, text in
                let n = firstShown + i
                return (n == line ? "> " : "  ") + "\(n): " + (text.count > 300 ? String(text.prefix(300)) + "…" : text)
            }.joined(separator: "\n")
        }
        return "first difference at line \(line)\n--- \(expectedLabel)\n\(excerpt(expected))\n+++ \(actualLabel)\n\(excerpt(actual))"
    }
}

public enum TraceDiff {
    /// The first difference between the traces at `expected` and `actual` (files of lines), or nil
    /// when they are the same, line for line.
    public static func firstDivergence(expected: String, actual: String, context: Int = 3) throws -> TraceDivergence? {
        let a = try lines(expected), b = try lines(actual)
        return firstDivergence(a, b, context: context)
    }

    public static func firstDivergence(_ a: [Substring], _ b: [Substring], context: Int = 3) -> TraceDivergence? {
        var i = 0
        while i < a.count && i < b.count && a[i] == b[i] { i += 1 }
        if i == a.count && i == b.count { return nil }
        let from = max(0, i - context)
        func slice(_ lines: [Substring]) -> [String] { lines[min(from, lines.count)..<min(i + context + 1, lines.count)].map(String.init) }
        return TraceDivergence(line: i + 1, expected: slice(a), actual: slice(b), firstShown: from + 1)
    }

    static func lines(_ path: String) throws -> [Substring] {
        let text = try String(contentsOfFile: path, encoding: .utf8)
        var out = text.split(separator: "\n", omittingEmptySubsequences: false)
        if out.last == "" { out.removeLast() }
        return out
    }
}
