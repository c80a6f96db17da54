import Logging
import Testing
@testable import ERPProduction

/// Log lines quote what clients send; a control character in it must not start a line of the
/// client's making.
@Suite struct EscapingLogHandlerTests {
    @Test func controlCharactersAreWrittenAsEscapes() {
        let forged = "inj\n2026-12-04T22:00:00+0000 critical erp.order: FORGED"
        let escaped = EscapingLogHandler.escaped(forged)
        #expect(!escaped.contains("\n"))
        #expect(escaped == "inj\\n2026-12-04T22:00:00+0000 critical erp.order: FORGED")
        #expect(EscapingLogHandler.escaped("v\u{0}x\r\t\u{7F}é") == "v\\u{0}x\\r\\t\\u{7f}é")
        #expect(EscapingLogHandler.escaped("plain é ✓") == "plain é ✓")
        let value = EscapingLogHandler.escaped(Logger.Metadata.Value.array([.string("a\nb"), .dictionary(["k": .string("\u{1}")])]))
        guard case .array(let items) = value, case .string(let first) = items[0], case .dictionary(let entries) = items[1],
              case .string(let inner)? = entries["k"] else {
            Issue.record("the metadata's shape changed: \(value)")
            return
        }
        #expect(first == "a\\nb" && inner == "\\u{1}")
    }
}
