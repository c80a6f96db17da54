#if canImport(Glibc)
import Glibc
#endif
import ERPCore
import Logging

/// The log of a service process: swift-log's standard-error lines, with every control character in
/// a message or a metadata value written as an escape (`\n`, `\u{0}`). Log lines quote what
/// clients send (vend ids, user ids, reasons), and a newline in one of them would otherwise start a
/// line of the client's making: `inj\n… critical erp.order: FORGED …` read as the order service's.
public struct EscapingLogHandler: LogHandler {
    private var inner: StreamLogHandler

    public init(label: String, metadataProvider: Logger.MetadataProvider?) {
        inner = .standardError(label: label, metadataProvider: metadataProvider)
    }

    /// Makes this the process's log handler. Call it before the process starts threads of its own.
    ///
    /// Also names the local time zone in `TZ` when the environment does not: each line's
    /// timestamp is formatted with `strftime`, and glibc, finding `TZ` unset, looks at
    /// `/etc/localtime` again every time (a `stat` per log line, about 1 % of the order service's
    /// CPU at 500 orders/s); with `TZ` naming the same file it reads it once.
    public static func bootstrap() {
        if getenv("TZ") == nil { setenv("TZ", ":/etc/localtime", 0) }
        LoggingSystem.bootstrap({ EscapingLogHandler(label: $0, metadataProvider: $1) }, metadataProvider: nil)
    }

    public var logLevel: Logger.Level {
        get { inner.logLevel }
        set { inner.logLevel = newValue }
    }

    public var metadata: Logger.Metadata {
        get { inner.metadata }
        set { inner.metadata = newValue }
    }

    public var metadataProvider: Logger.MetadataProvider? {
        get { inner.metadataProvider }
        set { inner.metadataProvider = newValue }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { inner[metadataKey: key] }
        set { inner[metadataKey: key] = newValue }
    }

    public func log(event: LogEvent) {
        var event = event
        let text = event.message.description
        if text.containsControlCharacter { event.message = "\(Self.escaped(text))" }
        event.metadata = event.metadata?.mapValues(Self.escaped)
        inner.log(event: event)
    }


    /// `text` with each control character (U+0000–U+001F, U+007F) as a visible escape.
    public static func escaped(_ text: String) -> String {
        guard text.containsControlCharacter else { return text }
        var out = ""
        out.reserveCapacity(text.utf8.count + 8)
        for scalar in text.unicodeScalars {
            switch scalar.value {
            case 0x0A: out += "\\n"
            case 0x0D: out += "\\r"
            case 0x09: out += "\\t"
            case 0..<0x20, 0x7F: out += "\\u{" + String(scalar.value, radix: 16) + "}"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    static func escaped(_ value: Logger.Metadata.Value) -> Logger.Metadata.Value {
        switch value {
        case .string(let s): .string(escaped(s))
        case .stringConvertible(let c): .string(escaped(c.description))
        case .array(let values): .array(values.map(escaped))
        case .dictionary(let entries): .dictionary(entries.mapValues(escaped))
        }
    }
}
