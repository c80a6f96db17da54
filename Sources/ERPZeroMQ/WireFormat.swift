import ERPCore
import Foundation

/// The `erp/1` wire format of `ZeroMQTransport` (written down for other languages in
/// docs/wire-format.md). A message is four frames — version, kind, header JSON, body JSON — and a
/// ROUTER adds (on receipt) or strips (on send) the peer's routing id in front.
public enum WireFormat {
    /// The first frame of every message.
    public static let version = "erp/1"
    static let versionBytes = Array(version.utf8)

    public enum Kind: String, Sendable {
        case request, reply
    }

    /// The header of a request: which call, which method, who calls, and the call's metadata.
    public struct RequestHeader: Codable, Sendable, Hashable {
        /// Chosen by the caller, unique among its calls in flight; the reply carries it back.
        public var callId: UInt64
        public var method: String
        /// The calling node's name (`CallContext.caller` on the server).
        public var caller: String
        /// The absolute deadline in milliseconds since the Unix epoch. A fraction carries
        /// sub-millisecond precision; an integer is fine from other clients.
        public var deadlineMs: Double
        public var correlationId: String
        public var idempotencyKey: String?
        public var traceParent: String?

        public init(callId: UInt64, method: String, caller: String, metadata: CallMetadata) {
            self.callId = callId
            self.method = method
            self.caller = caller
            self.deadlineMs = Double(metadata.deadline.nanosecondsSinceEpoch) / 1_000_000
            self.correlationId = metadata.correlationId
            self.idempotencyKey = metadata.idempotencyKey
            self.traceParent = metadata.traceParent
        }

        public var metadata: CallMetadata {
            CallMetadata(deadline: Timestamp(nanosecondsSinceEpoch: Int64(clamping: Int64((deadlineMs * 1_000_000).rounded(.down)))),
                         correlationId: correlationId, idempotencyKey: idempotencyKey, traceParent: traceParent)
        }
    }

    /// The header of a reply: `ok` true with the response as body, or false with a typed error
    /// (`RPCError`'s Codable form) and an empty body.
    public struct ReplyHeader: Codable, Sendable, Hashable {
        public var callId: UInt64
        public var ok: Bool
        public var error: RPCError?

        public init(callId: UInt64, result: Result<[UInt8], RPCError>) {
            self.callId = callId
            switch result {
            case .success: ok = true; error = nil
            case .failure(let failure): ok = false; error = failure
            }
        }
    }

    /// Why a message could not be taken, and the call id if the header was readable enough to
    /// address an error reply.
    public struct Refusal: Error, Sendable, Hashable {
        public var callId: UInt64?
        public var error: RPCError
    }

    // MARK: Encoding

    public static func requestFrames(_ header: RequestHeader, body: [UInt8]) throws -> [[UInt8]] {
        let headerBytes = try FastHeaderJSON.encode(header) ?? Array(JSONCoding.encode(header))
        return [versionBytes, requestKindBytes, headerBytes, body]
    }

    /// Reply frames; an error reply has an empty body. Never fails: the header has only plain fields.
    public static func replyFrames(callId: UInt64, result: Result<[UInt8], RPCError>) -> [[UInt8]] {
        let header = ReplyHeader(callId: callId, result: result)
        let headerBytes: [UInt8]
        do {
            headerBytes = try FastHeaderJSON.encode(header) ?? Array(JSONCoding.encode(header))
        } catch {
            preconditionFailure("a reply header always encodes: \(error)")
        }
        let body: [UInt8]
        switch result {
        case .success(let bytes): body = bytes
        case .failure: body = []
        }
        return [versionBytes, replyKindBytes, headerBytes, body]
    }

    // MARK: Decoding

    /// Reads a request (frames without the routing id).
    public static func decodeRequest(_ frames: ArraySlice<[UInt8]>) -> Result<(RequestHeader, [UInt8]), Refusal> {
        decode(frames, expecting: .request, RequestHeader.self, fast: FastHeaderJSON.requestHeader)
    }

    /// Reads a reply.
    public static func decodeReply(_ frames: ArraySlice<[UInt8]>) -> Result<(ReplyHeader, [UInt8]), Refusal> {
        decode(frames, expecting: .reply, ReplyHeader.self, fast: FastHeaderJSON.replyHeader)
    }

    private struct CallIdOnly: Decodable { var callId: UInt64 }

    static let requestKindBytes = Array(Kind.request.rawValue.utf8)
    static let replyKindBytes = Array(Kind.reply.rawValue.utf8)

    private static func decode<H: Decodable>(_ frames: ArraySlice<[UInt8]>, expecting kind: Kind, _ type: H.Type,
                                             fast: ([UInt8]) -> H?) -> Result<(H, [UInt8]), Refusal> {
        let first = frames.startIndex
        // The call id, if a header frame is where it should be and has one: enough to answer.
        // Read only for a refusal (it costs a JSON decode).
        var callId: UInt64? { frames.count >= 3 ? peekCallId(frames[first + 2]) : nil }
        guard frames.count == 4 else {
            return .failure(Refusal(callId: callId, error: .rejected(code: "bad_frames", message: "expected 4 frames (version, kind, header, body), got \(frames.count)")))
        }
        guard frames[first] == versionBytes else {
            return .failure(Refusal(callId: callId, error: .rejected(code: "unsupported_version", message: "this node speaks \(version), not \(printable(frames[first]))")))
        }
        guard frames[first + 1] == (kind == .request ? requestKindBytes : replyKindBytes) else {
            return .failure(Refusal(callId: callId, error: .rejected(code: "bad_kind", message: "expected kind \(kind.rawValue), got \(printable(frames[first + 1]))")))
        }
        // The usual header (flat, plain fields) is read by hand; anything else goes to
        // JSONDecoder, whose verdict and errors are the reference.
        let header = frames[first + 2], body = frames[first + 3]
        if let fastHeader = fast(header) { return .success((fastHeader, body)) }
        do {
            return .success((try JSONCoding.decode(H.self, from: Data(header)), body))
        } catch {
            return .failure(Refusal(callId: callId, error: .rejected(code: "bad_header", message: "undecodable \(kind.rawValue) header: \(error)")))
        }
    }

    private static func peekCallId(_ frame: [UInt8]) -> UInt64? {
        do { return try JSONCoding.decode(CallIdOnly.self, from: Data(frame)).callId } catch { return nil }
    }

    /// At most 32 bytes of a frame, as text, for an error message.
    private static func printable(_ frame: [UInt8]) -> String {
        String(decoding: frame.prefix(32), as: UTF8.self).debugDescription
    }
}

/// Hand-written JSON for the two headers, on the path of every call (Foundation's JSONEncoder and
/// JSONDecoder cost more than the rest of a call together). Encoding writes what JSONEncoder with
/// `.sortedKeys` and `.withoutEscapingSlashes` writes; decoding accepts a flat object of strings,
/// numbers, booleans and nulls and returns nil for anything else (nested values, odd numbers,
/// duplicate keys, a wrong type, bad syntax or UTF-8), which then goes to JSONDecoder.
enum FastHeaderJSON {
    // MARK: Encoding

    static func encode(_ header: WireFormat.RequestHeader) -> [UInt8]? {
        guard header.deadlineMs.isFinite else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(160)
        append(&out, "{\"callId\":")
        append(&out, String(header.callId))
        append(&out, ",\"caller\":")
        appendString(&out, header.caller)
        append(&out, ",\"correlationId\":")
        appendString(&out, header.correlationId)
        append(&out, ",\"deadlineMs\":")
        append(&out, number(header.deadlineMs))
        if let key = header.idempotencyKey {
            append(&out, ",\"idempotencyKey\":")
            appendString(&out, key)
        }
        append(&out, ",\"method\":")
        appendString(&out, header.method)
        if let trace = header.traceParent {
            append(&out, ",\"traceParent\":")
            appendString(&out, trace)
        }
        out.append(UInt8(ascii: "}"))
        return out
    }

    /// Only the success header (`{"callId":N,"ok":true}`); error replies take JSONEncoder.
    static func encode(_ header: WireFormat.ReplyHeader) -> [UInt8]? {
        guard header.ok, header.error == nil else { return nil }
        return Array("{\"callId\":\(header.callId),\"ok\":true}".utf8)
    }

    private static func append(_ out: inout [UInt8], _ text: String) {
        out.append(contentsOf: text.utf8)
    }

    /// An integral value as an integer (as JSONEncoder writes it), otherwise Swift's shortest
    /// round-tripping form.
    private static func number(_ value: Double) -> String {
        if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
        return "\(value)"
    }

    private static func appendString(_ out: inout [UInt8], _ text: String) {
        out.append(UInt8(ascii: "\""))
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""): append(&out, "\\\"")
            case UInt8(ascii: "\\"): append(&out, "\\\\")
            case 0x0A: append(&out, "\\n")
            case 0x0D: append(&out, "\\r")
            case 0x09: append(&out, "\\t")
            case 0x08: append(&out, "\\b")
            case 0x0C: append(&out, "\\f")
            case 0..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                append(&out, "\\u00")
                out.append(hex[Int(byte >> 4)])
                out.append(hex[Int(byte & 0x0F)])
            default: out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
    }

    // MARK: Decoding

    enum Value: Equatable {
        case string(String)
        /// The number's text, as written.
        case number(String)
        case bool(Bool)
        case null
    }

    private static let callIdKey = Array("callId".utf8), methodKey = Array("method".utf8),
                       callerKey = Array("caller".utf8), deadlineMsKey = Array("deadlineMs".utf8),
                       correlationIdKey = Array("correlationId".utf8), idempotencyKeyKey = Array("idempotencyKey".utf8),
                       traceParentKey = Array("traceParent".utf8), okKey = Array("ok".utf8), errorKey = Array("error".utf8)

    static func requestHeader(_ bytes: [UInt8]) -> WireFormat.RequestHeader? {
        var callId: UInt64?, method: String?, caller: String?, deadlineMs: Double?, correlationId: String?
        var idempotencyKey: String?, traceParent: String?
        var seen: UInt8 = 0
        let read = forEachMember(bytes) { key, value in
            let slot: UInt8
            if key.elementsEqual(callIdKey) {
                guard case .number(let text) = value, let number = UInt64(text) else { return false }
                callId = number; slot = 0
            } else if key.elementsEqual(methodKey) {
                guard case .string(let text) = value else { return false }
                method = text; slot = 1
            } else if key.elementsEqual(callerKey) {
                guard case .string(let text) = value else { return false }
                caller = text; slot = 2
            } else if key.elementsEqual(deadlineMsKey) {
                guard case .number(let text) = value, let number = Double(text) else { return false }
                deadlineMs = number; slot = 3
            } else if key.elementsEqual(correlationIdKey) {
                guard case .string(let text) = value else { return false }
                correlationId = text; slot = 4
            } else if key.elementsEqual(idempotencyKeyKey) {
                guard let text = optionalString(value) else { return false }
                idempotencyKey = text; slot = 5
            } else if key.elementsEqual(traceParentKey) {
                guard let text = optionalString(value) else { return false }
                traceParent = text; slot = 6
            } else {
                return true // unknown keys are ignored, as JSONDecoder ignores them
            }
            defer { seen |= 1 << slot }
            return seen & (1 << slot) == 0
        }
        guard read, let callId, let method, let caller, let deadlineMs, let correlationId else { return nil }
        var header = WireFormat.RequestHeader(
            callId: callId, method: method, caller: caller,
            metadata: CallMetadata(deadline: Timestamp(nanosecondsSinceEpoch: 0), correlationId: correlationId))
        header.deadlineMs = deadlineMs
        header.idempotencyKey = idempotencyKey
        header.traceParent = traceParent
        return header
    }

    static func replyHeader(_ bytes: [UInt8]) -> WireFormat.ReplyHeader? {
        var callId: UInt64?, ok: Bool?
        var seen: UInt8 = 0
        let read = forEachMember(bytes) { key, value in
            let slot: UInt8
            if key.elementsEqual(callIdKey) {
                guard case .number(let text) = value, let number = UInt64(text) else { return false }
                callId = number; slot = 0
            } else if key.elementsEqual(okKey) {
                guard case .bool(let flag) = value else { return false }
                ok = flag; slot = 1
            } else if key.elementsEqual(errorKey) {
                // An error is an object: JSONDecoder reads it. Null is no error.
                guard value == .null else { return false }
                slot = 2
            } else {
                return true
            }
            defer { seen |= 1 << slot }
            return seen & (1 << slot) == 0
        }
        guard read, let callId, let ok else { return nil }
        var header = WireFormat.ReplyHeader(callId: callId, result: .success([]))
        header.ok = ok
        return header
    }

    /// `.some(nil)` for null, `.some(text)` for a string, nil for another type.
    private static func optionalString(_ value: Value) -> String?? {
        switch value {
        case .null: return .some(nil)
        case .string(let text): return .some(text)
        default: return nil
        }
    }

    /// Calls `body` with each member of a flat object (its key as raw bytes: keys with escapes are
    /// refused). False if the text is not such an object or `body` refused a member.
    private static func forEachMember(_ bytes: [UInt8], _ body: (ArraySlice<UInt8>, Value) -> Bool) -> Bool {
        var parser = Parser(bytes: bytes)
        return parser.object(body)
    }

    /// A flat object's members as a dictionary (nil as for the headers, or on a duplicate key).
    static func parseFlatObject(_ bytes: [UInt8]) -> [String: Value]? {
        var members: [String: Value] = [:]
        let read = forEachMember(bytes) { key, value in
            members.updateValue(value, forKey: String(decoding: key, as: UTF8.self)) == nil
        }
        return read ? members : nil
    }

    private struct Parser {
        let bytes: [UInt8]
        var index = 0

        mutating func object(_ visit: (ArraySlice<UInt8>, Value) -> Bool) -> Bool {
            skipSpace()
            guard take(UInt8(ascii: "{")) else { return false }
            skipSpace()
            if take(UInt8(ascii: "}")) { return atEnd() }
            while true {
                skipSpace()
                guard let key = rawKey() else { return false }
                skipSpace()
                guard take(UInt8(ascii: ":")) else { return false }
                skipSpace()
                guard let value = value(), visit(key, value) else { return false }
                skipSpace()
                if take(UInt8(ascii: ",")) { continue }
                guard take(UInt8(ascii: "}")) else { return false }
                return atEnd()
            }
        }

        /// A key's bytes between its quotes, if it has no escape, no control character and is
        /// valid UTF-8; nil otherwise (the header then goes to JSONDecoder).
        private mutating func rawKey() -> ArraySlice<UInt8>? {
            guard take(UInt8(ascii: "\"")) else { return nil }
            let start = index
            var ascii = true
            while index < bytes.count {
                let byte = bytes[index]
                if byte == UInt8(ascii: "\"") {
                    let key = bytes[start..<index]
                    index += 1
                    return ascii || String(validating: key, as: UTF8.self) != nil ? key : nil
                }
                if byte == UInt8(ascii: "\\") || byte < 0x20 { return nil }
                if byte >= 0x80 { ascii = false }
                index += 1
            }
            return nil
        }

        private mutating func atEnd() -> Bool {
            skipSpace()
            return index == bytes.count
        }

        private mutating func skipSpace() {
            while index < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[index]) { index += 1 }
        }

        private mutating func take(_ byte: UInt8) -> Bool {
            guard index < bytes.count, bytes[index] == byte else { return false }
            index += 1
            return true
        }

        private mutating func literal(_ text: String) -> Bool {
            let expected = Array(text.utf8)
            guard bytes.count - index >= expected.count, Array(bytes[index..<(index + expected.count)]) == expected else { return false }
            index += expected.count
            return true
        }

        private mutating func value() -> Value? {
            guard index < bytes.count else { return nil }
            switch bytes[index] {
            case UInt8(ascii: "\""): return string().map(Value.string)
            case UInt8(ascii: "t"): return literal("true") ? .bool(true) : nil
            case UInt8(ascii: "f"): return literal("false") ? .bool(false) : nil
            case UInt8(ascii: "n"): return literal("null") ? .null : nil
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return number().map(Value.number)
            default: return nil // objects, arrays, garbage
            }
        }

        /// A JSON number's text: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
        private mutating func number() -> String? {
            let start = index
            _ = take(UInt8(ascii: "-"))
            func digits(_ parser: inout Parser) -> Int {
                let from = parser.index
                while parser.index < parser.bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(parser.bytes[parser.index]) {
                    parser.index += 1
                }
                return parser.index - from
            }
            let integerStart = index
            let integerDigits = digits(&self)
            guard integerDigits > 0 else { return nil }
            if integerDigits > 1 && bytes[integerStart] == UInt8(ascii: "0") { return nil }
            if take(UInt8(ascii: ".")) { guard digits(&self) > 0 else { return nil } }
            if take(UInt8(ascii: "e")) || take(UInt8(ascii: "E")) {
                if !take(UInt8(ascii: "+")) { _ = take(UInt8(ascii: "-")) }
                guard digits(&self) > 0 else { return nil }
            }
            return String(decoding: bytes[start..<index], as: UTF8.self)
        }

        private mutating func string() -> String? {
            guard take(UInt8(ascii: "\"")) else { return nil }
            var out: [UInt8] = []
            while index < bytes.count {
                let byte = bytes[index]
                index += 1
                switch byte {
                case UInt8(ascii: "\""):
                    return String(validating: out, as: UTF8.self)
                case UInt8(ascii: "\\"):
                    guard index < bytes.count else { return nil }
                    let escape = bytes[index]
                    index += 1
                    switch escape {
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(escape)
                    case UInt8(ascii: "b"): out.append(0x08)
                    case UInt8(ascii: "f"): out.append(0x0C)
                    case UInt8(ascii: "n"): out.append(0x0A)
                    case UInt8(ascii: "r"): out.append(0x0D)
                    case UInt8(ascii: "t"): out.append(0x09)
                    case UInt8(ascii: "u"):
                        // Only the basic plane outside surrogates here; the rest goes to JSONDecoder.
                        guard let unit = hex4(), !(0xD800...0xDFFF).contains(unit),
                              let scalar = Unicode.Scalar(unit) else { return nil }
                        out.append(contentsOf: String(Character(scalar)).utf8)
                    default:
                        return nil
                    }
                case 0..<0x20:
                    return nil
                default:
                    out.append(byte)
                }
            }
            return nil
        }

        private mutating func hex4() -> UInt32? {
            guard bytes.count - index >= 4 else { return nil }
            var value: UInt32 = 0
            for _ in 0..<4 {
                let byte = bytes[index]
                index += 1
                let digit: UInt8
                switch byte {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
                case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
                case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
                default: return nil
                }
                value = value << 4 | UInt32(digit)
            }
            return value
        }
    }
}
