import ERPCore
import ERPWire
import Foundation

/// The `erp/1` wire format of `ZeroMQTransport` (written down for other languages in
/// docs/wire-format.md). A message is four frames — version, kind, header JSON, body JSON — and a
/// ROUTER adds (on receipt) or strips (on send) the peer's routing id in front. Headers and bodies
/// are written by one writer, `WireJSON`.
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

    /// Throws `EncodingError` only for a header JSON cannot carry (a deadline that is not finite).
    public static func requestFrames(_ header: RequestHeader, body: [UInt8]) throws -> [[UInt8]] {
        [versionBytes, requestKindBytes, try WireJSON.encode(header), body]
    }

    /// Reply frames; an error reply has an empty body. Never fails: the header has only plain fields.
    public static func replyFrames(callId: UInt64, result: Result<[UInt8], RPCError>) -> [[UInt8]] {
        let header = ReplyHeader(callId: callId, result: result)
        let headerBytes: [UInt8]
        do {
            headerBytes = try WireJSON.encode(header)
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

/// The two headers on the path of every call, read without Foundation's JSONDecoder (it costs
/// more than the rest of a call together); they are written by `WireJSON`, as bodies are. Reading
/// uses `WireJSON`'s parser and accepts a flat object of strings, numbers, booleans and nulls,
/// returning nil for anything else (nested values, odd numbers, repeated keys, a wrong type, bad
/// syntax or UTF-8), which then goes to JSONDecoder, whose verdict and errors are the reference.
enum FastHeaderJSON {
    /// The members of a flat object — strings, numbers, booleans and nulls, each key once — read
    /// with `WireJSON`'s parser; nil for anything else (bad JSON, a nested value, a repeated key),
    /// which the caller then leaves to JSONDecoder.
    static func flatMembers(_ bytes: [UInt8]) -> [(String, WireValue)]? {
        guard case .object(let members)? = try? WireJSON.parse(bytes) else { return nil }
        for (index, member) in members.enumerated() {
            switch member.1 {
            case .array, .object: return nil
            case .null, .bool, .number, .string: break
            }
            for earlier in 0..<index where members[earlier].0 == member.0 { return nil }
        }
        return members
    }

    static func requestHeader(_ bytes: [UInt8]) -> WireFormat.RequestHeader? {
        guard let members = flatMembers(bytes) else { return nil }
        var callId: UInt64?, method: String?, caller: String?, deadlineMs: Double?, correlationId: String?
        var idempotencyKey: String?, traceParent: String?
        for (key, value) in members {
            switch key {
            case "callId":
                guard case .number(let text) = value, let number = UInt64(text) else { return nil }
                callId = number
            case "method":
                guard case .string(let text) = value else { return nil }
                method = text
            case "caller":
                guard case .string(let text) = value else { return nil }
                caller = text
            case "deadlineMs":
                guard case .number(let text) = value, let number = Double(text), number.isFinite else { return nil }
                deadlineMs = number
            case "correlationId":
                guard case .string(let text) = value else { return nil }
                correlationId = text
            case "idempotencyKey":
                guard let text = optionalString(value) else { return nil }
                idempotencyKey = text
            case "traceParent":
                guard let text = optionalString(value) else { return nil }
                traceParent = text
            default:
                continue // unknown keys are ignored, as JSONDecoder ignores them
            }
        }
        guard let callId, let method, let caller, let deadlineMs, let correlationId else { return nil }
        var header = WireFormat.RequestHeader(
            callId: callId, method: method, caller: caller,
            metadata: CallMetadata(deadline: Timestamp(nanosecondsSinceEpoch: 0), correlationId: correlationId))
        header.deadlineMs = deadlineMs
        header.idempotencyKey = idempotencyKey
        header.traceParent = traceParent
        return header
    }

    static func replyHeader(_ bytes: [UInt8]) -> WireFormat.ReplyHeader? {
        guard let members = flatMembers(bytes) else { return nil }
        var callId: UInt64?, ok: Bool?
        for (key, value) in members {
            switch key {
            case "callId":
                guard case .number(let text) = value, let number = UInt64(text) else { return nil }
                callId = number
            case "ok":
                guard case .bool(let flag) = value else { return nil }
                ok = flag
            case "error":
                // An error is an object (JSONDecoder reads it); null is no error.
                guard case .null = value else { return nil }
            default:
                continue
            }
        }
        guard let callId, let ok else { return nil }
        var header = WireFormat.ReplyHeader(callId: callId, result: .success([]))
        header.ok = ok
        return header
    }

    /// `.some(nil)` for null, `.some(text)` for a string, nil for another type.
    private static func optionalString(_ value: WireValue) -> String?? {
        switch value {
        case .null: return .some(nil)
        case .string(let text): return .some(text)
        default: return nil
        }
    }
}
