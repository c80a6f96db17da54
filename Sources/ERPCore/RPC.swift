/// A typed RPC contract, like one method of a proto service: the request type names its method,
/// the service that serves it and its response type.
public protocol RPCRequest: Codable, Sendable {
    associatedtype Response: Codable & Sendable
    static var method: String { get }
    static var service: ServiceName { get }
    /// True when doing the call twice has the effect of doing it once even without an
    /// idempotency key (reads). Retry policies may retry these freely.
    static var isIdempotent: Bool { get }
}

extension RPCRequest {
    public static var isIdempotent: Bool { false }
}

/// The typed errors of a call. `rejected` carries an application answer (`out_of_stock`);
/// the others are about the call itself.
public enum RPCError: Error, Hashable, Sendable, Codable, CustomStringConvertible {
    /// The absolute deadline passed before an answer arrived (or before the server began).
    case deadlineExceeded
    /// The callee could not be reached (crashed, partitioned, not serving the method).
    case unavailable(String)
    /// The callee answered no, with a code and a message.
    case rejected(code: String, message: String)
    /// The callee sheds load (the seed's 429); try again after the hint.
    case overloaded(retryAfterMilliseconds: Int64?)
    case unauthenticated

    public var description: String {
        switch self {
        case .deadlineExceeded: "deadline exceeded"
        case .unavailable(let why): "unavailable: \(why)"
        case .rejected(let code, let message): "rejected \(code): \(message)"
        case .overloaded(let ms): "overloaded" + (ms.map { ", retry after \($0)ms" } ?? "")
        case .unauthenticated: "unauthenticated"
        }
    }

    /// The longest message an error carries over the wire, in bytes.
    public static let messageByteCountMax = 1_024

    /// The error with its texts cut to `messageByteCountMax` bytes (at a character's end, saying
    /// how long they were): a message may quote what a caller sent (`no order <id>`), and a
    /// client that sent 3 MB ids and never read its answers had the gateway hold a gigabyte of
    /// them.
    public var bounded: RPCError {
        func cut(_ text: String) -> String {
            guard text.utf8.count > Self.messageByteCountMax else { return text }
            var kept = Substring(text).utf8.prefix(Self.messageByteCountMax - 40)
            while !kept.isEmpty, String(kept) == nil { kept = kept.dropLast() }
            return (String(kept) ?? "") + "… (\(text.utf8.count) bytes in all)"
        }
        switch self {
        case .unavailable(let why): return .unavailable(cut(why))
        case .rejected(let code, let message): return .rejected(code: cut(code), message: cut(message))
        default: return self
        }
    }

    /// A short label for counting errors in reports.
    public var kind: String {
        switch self {
        case .deadlineExceeded: "deadline_exceeded"
        case .unavailable: "unavailable"
        case .rejected(let code, _): "rejected:" + code
        case .overloaded: "overloaded"
        case .unauthenticated: "unauthenticated"
        }
    }

    /// Whether the callee may have done the work: only a definite answer rules it out.
    public var outcomeIsUnknown: Bool {
        switch self {
        case .deadlineExceeded, .unavailable: true
        case .rejected, .overloaded, .unauthenticated: false
        }
    }
}

/// What travels with every call besides the request itself.
public struct CallMetadata: Sendable, Hashable, Codable {
    /// Absolute: each hop passes on what remains, never a fresh timeout.
    public var deadline: Timestamp
    public var correlationId: String
    public var idempotencyKey: String?
    /// W3C-style trace parent: the id of the calling span.
    public var traceParent: String?

    public init(deadline: Timestamp, correlationId: String, idempotencyKey: String? = nil, traceParent: String? = nil) {
        self.deadline = deadline
        self.correlationId = correlationId
        self.idempotencyKey = idempotencyKey
        self.traceParent = traceParent
    }

    /// The longest correlation id a call may carry, in bytes. It travels in every hop's header
    /// and every log line of the request: one of 65 kB pushed the later hops' headers past the
    /// wire format's limit (the saga's calls refused, the order left pending) and wrote a
    /// megabyte of log per order.
    public static let correlationIdByteCountMax = 128

    /// Why `id` cannot be a correlation id, or nil: longer than `correlationIdByteCountMax`
    /// bytes, or holding a control character.
    public static func correlationIdProblem(_ id: String) -> String? {
        if id.utf8.count > correlationIdByteCountMax {
            return "the correlation id is \(id.utf8.count) bytes; at most \(correlationIdByteCountMax)"
        }
        if id.containsControlCharacter { return "the correlation id holds a control character" }
        return nil
    }

    /// The longest idempotency key a service stores, in bytes (common payment APIs allow 255).
    /// A key is stored with the request it names and quoted in refusals, so an unbounded one
    /// would let one client fill every database it reaches.
    public static let idempotencyKeyByteCountMax = 255

    /// Why `key` cannot name a request, or nil: it is blank (one key every client would share),
    /// longer than `idempotencyKeyByteCountMax` bytes, or holds a control character.
    public static func idempotencyKeyProblem(_ key: String) -> String? {
        if key.allSatisfy(\.isWhitespace) {
            return "Idempotency-Key is empty: send a key unique to this request, or no header"
        }
        if key.utf8.count > idempotencyKeyByteCountMax {
            return "Idempotency-Key is \(key.utf8.count) bytes; at most \(idempotencyKeyByteCountMax) are kept (a UUID is 36)"
        }
        if key.containsControlCharacter {
            return "Idempotency-Key holds a control character"
        }
        return nil
    }
}

extension String {
    /// Whether the text holds a control character (U+0000–U+001F or U+007F): in an id it would be
    /// cut short by SQLite (NUL) or forge a log line (a newline). Each is one byte in UTF-8 and
    /// never part of another character's bytes, so the bytes tell.
    public var containsControlCharacter: Bool { utf8.contains { $0 < 0x20 || $0 == 0x7F } }

    /// The text as an answer or a log line quotes what a caller sent: its first `characterCountMax`
    /// characters, and "…" when there were more.
    public func clipped(to characterCountMax: Int = 100) -> String {
        let head = prefix(characterCountMax)
        return head.endIndex == endIndex ? self : String(head) + "…"
    }
}
