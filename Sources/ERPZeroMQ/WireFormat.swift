import ERPCore
import ERPWire
import Foundation

/// The `erp/2` wire format of `ZeroMQTransport` (written down for other languages in
/// docs/wire-format.md). A message is **one frame**: a small binary header, then the body as JSON
/// (`WireJSON`, the bytes `JSONCoding` writes). A ROUTER adds (on receipt) or strips (on send) the
/// peer's routing id in front.
///
/// ```
/// offset  size  field
///  0      3     "erp"
///  3      1     version: 2
///  4      1     kind: 1 request, 2 reply
///  5      1     flags: request: bit 0 an idempotency key follows, bit 1 a trace parent follows;
///                      reply: bit 0 the call failed and the body is its RPCError
///  6      2     header size in bytes (where the body starts), little-endian
///  8      8     call id, little-endian
/// request only:
/// 16      8     absolute deadline, nanoseconds since the Unix epoch, signed, little-endian
/// 24      …     method, caller, correlation id, [idempotency key], [trace parent]:
///               each a 2-byte little-endian length and that many bytes of UTF-8
/// header size … end: the body
/// ```
///
/// Replaces `erp/1` (four frames with a JSON header), whose framing and header cost more than
/// the rest of a call's wire work (docs/benchmarks.md). An `erp/1` request is answered in `erp/1`
/// with `unsupported_version`, so an old peer reads why.
public enum WireFormat {
    /// The protocol's name, as documented and as the refusals name it.
    public static let version = "erp/2"
    static let versionNumber: UInt8 = 2
    /// "erp": the first three bytes of every message.
    static let magic: [UInt8] = [0x65, 0x72, 0x70]
    /// The part every message has: magic, version, kind, flags, header size, call id.
    static let commonSize = 16
    /// A request's fixed part: the common part and the deadline.
    static let requestFixedSize = 24
    /// More than a reply's header takes: what a reply's body must leave of a message's size.
    public static let replyHeaderRoom = 64
    /// The longest string a header field may carry (its length is two bytes).
    public static let fieldLengthMax = Int(UInt16.max)

    public enum Kind: UInt8, Sendable {
        case request = 1, reply = 2
    }

    enum RequestFlag {
        static let idempotencyKey: UInt8 = 1 << 0
        static let traceParent: UInt8 = 1 << 1
    }

    enum ReplyFlag {
        static let failed: UInt8 = 1 << 0
    }

    /// The header of a request: which call, which method, who calls, and the call's metadata.
    public struct RequestHeader: Sendable, Hashable {
        /// Chosen by the caller, unique among its calls in flight; the reply carries it back.
        public var callId: UInt64
        public var method: String
        /// The calling node's name (`CallContext.caller` on the server).
        public var caller: String
        /// The absolute deadline, as the caller's clock gives it.
        public var deadline: Timestamp
        public var correlationId: String
        public var idempotencyKey: String?
        public var traceParent: String?

        public init(callId: UInt64, method: String, caller: String, metadata: CallMetadata) {
            self.callId = callId
            self.method = method
            self.caller = caller
            self.deadline = metadata.deadline
            self.correlationId = metadata.correlationId
            self.idempotencyKey = metadata.idempotencyKey
            self.traceParent = metadata.traceParent
        }

        public var metadata: CallMetadata {
            CallMetadata(deadline: deadline, correlationId: correlationId, idempotencyKey: idempotencyKey, traceParent: traceParent)
        }
    }

    /// A reply: the call it answers and its outcome (the response's JSON, or a typed error).
    public struct Reply: Sendable, Hashable {
        public var callId: UInt64
        public var result: Result<[UInt8], RPCError>
    }

    /// Why a message could not be taken, and how to answer it, if at all.
    public struct Refusal: Error, Sendable, Hashable {
        /// The call id, when the message was readable enough to address an answer.
        public var callId: UInt64?
        public var error: RPCError
        /// The message was `erp/1`: its answer goes in `erp/1` frames, the only ones its sender reads.
        public var answersInERP1 = false
    }

    /// A request header field longer than `fieldLengthMax` bytes.
    public struct FieldTooLong: Error, Sendable, CustomStringConvertible {
        public var field: String
        public var length: Int
        public var description: String { "the request's \(field) is \(length) bytes; \(WireFormat.version) carries at most \(WireFormat.fieldLengthMax)" }
    }

    // MARK: Encoding

    /// One request frame. Throws `FieldTooLong` for a string field past 65,535 bytes.
    public static func requestFrame(_ header: RequestHeader, body: [UInt8]) throws -> [UInt8] {
        let method = header.method.utf8, caller = header.caller.utf8, correlation = header.correlationId.utf8
        let key = header.idempotencyKey?.utf8, parent = header.traceParent?.utf8
        var headerSize = requestFixedSize + 6 + method.count + caller.count + correlation.count
        var flags: UInt8 = 0
        if let key {
            headerSize += 2 + key.count
            flags |= RequestFlag.idempotencyKey
        }
        if let parent {
            headerSize += 2 + parent.count
            flags |= RequestFlag.traceParent
        }
        // Each field's length, and the header's size, must fit in two bytes.
        if headerSize > fieldLengthMax {
            for (name, count) in [("method", method.count), ("caller", caller.count), ("correlation id", correlation.count),
                                  ("idempotency key", key?.count ?? 0), ("trace parent", parent?.count ?? 0)] where count > fieldLengthMax {
                throw FieldTooLong(field: name, length: count)
            }
            throw FieldTooLong(field: "header", length: headerSize)
        }
        var frame: [UInt8] = []
        frame.reserveCapacity(headerSize + body.count)
        appendCommon(to: &frame, kind: .request, flags: flags, headerSize: headerSize, callId: header.callId)
        appendInteger(header.deadline.nanosecondsSinceEpoch, to: &frame)
        appendField(method, to: &frame)
        appendField(caller, to: &frame)
        appendField(correlation, to: &frame)
        if let key { appendField(key, to: &frame) }
        if let parent { appendField(parent, to: &frame) }
        frame.append(contentsOf: body)
        return frame
    }

    /// One reply frame: the response's JSON, or the error's. Never fails (an `RPCError` has only
    /// strings and integers).
    public static func replyFrame(callId: UInt64, result: Result<[UInt8], RPCError>) -> [UInt8] {
        let body: [UInt8], flags: UInt8
        switch result {
        case .success(let bytes):
            body = bytes
            flags = 0
        case .failure(let error):
            do {
                body = try WireJSON.encode(error.bounded)
            } catch {
                preconditionFailure("an RPCError always encodes: \(error)")
            }
            flags = ReplyFlag.failed
        }
        var frame: [UInt8] = []
        frame.reserveCapacity(commonSize + body.count)
        appendCommon(to: &frame, kind: .reply, flags: flags, headerSize: commonSize, callId: callId)
        frame.append(contentsOf: body)
        return frame
    }

    /// What to send back for a refused message (without the routing id), or nil when there is
    /// nobody to address it to.
    public static func answer(to refusal: Refusal) -> [[UInt8]]? {
        guard let callId = refusal.callId else { return nil }
        return refusal.answersInERP1 ? ERP1.refusalFrames(callId: callId, error: refusal.error)
                                     : [replyFrame(callId: callId, result: .failure(refusal.error))]
    }

    private static func appendCommon(to frame: inout [UInt8], kind: Kind, flags: UInt8, headerSize: Int, callId: UInt64) {
        frame.append(contentsOf: magic)
        frame.append(versionNumber)
        frame.append(kind.rawValue)
        frame.append(flags)
        appendInteger(UInt16(headerSize), to: &frame)
        appendInteger(callId, to: &frame)
    }

    private static func appendInteger<T: FixedWidthInteger>(_ value: T, to frame: inout [UInt8]) {
        withUnsafeBytes(of: value.littleEndian) { frame.append(contentsOf: $0) }
    }

    private static func appendField(_ field: String.UTF8View, to frame: inout [UInt8]) {
        appendInteger(UInt16(field.count), to: &frame)
        frame.append(contentsOf: field)
    }

    // MARK: Decoding

    /// Reads a request (the frames after the routing id).
    public static func decodeRequest(_ frames: ArraySlice<[UInt8]>) -> Result<(RequestHeader, [UInt8]), Refusal> {
        let frame: [UInt8], flags: UInt8, headerSize: Int, callId: UInt64
        switch readCommon(frames, expecting: .request) {
        case .failure(let refusal): return .failure(refusal)
        case .success(let common): (frame, flags, headerSize, callId) = common
        }
        func badHeader(_ why: String) -> Result<(RequestHeader, [UInt8]), Refusal> {
            .failure(Refusal(callId: callId, error: .rejected(code: "bad_header", message: "unreadable request header: \(why)")))
        }
        guard headerSize >= requestFixedSize + 6 else { return badHeader("header size \(headerSize) is below the \(requestFixedSize + 6) bytes a request needs") }
        var reader = FieldReader(frame: frame, offset: requestFixedSize, end: headerSize)
        let deadline = Timestamp(nanosecondsSinceEpoch: Int64(bitPattern: readInteger(UInt64.self, frame, at: commonSize)))
        guard let method = reader.string(), let caller = reader.string(), let correlationId = reader.string() else {
            return badHeader(reader.problem)
        }
        // Every hop passes the id on: one too long for a later hop's header must stop here.
        if let problem = CallMetadata.correlationIdProblem(correlationId) {
            return .failure(Refusal(callId: callId, error: .rejected(code: "bad_request", message: problem)))
        }
        var metadata = CallMetadata(deadline: deadline, correlationId: correlationId)
        if flags & RequestFlag.idempotencyKey != 0 {
            guard let key = reader.string() else { return badHeader(reader.problem) }
            metadata.idempotencyKey = key
        }
        if flags & RequestFlag.traceParent != 0 {
            guard let parent = reader.string() else { return badHeader(reader.problem) }
            metadata.traceParent = parent
        }
        // Header bytes past the fields this version knows are skipped: room for later fields.
        let header = RequestHeader(callId: callId, method: method, caller: caller, metadata: metadata)
        return .success((header, Array(frame[headerSize...])))
    }

    /// Reads a reply. A failed call's error that does not decode still ends the call it names,
    /// as `rejected` / `bad_reply`.
    public static func decodeReply(_ frames: ArraySlice<[UInt8]>) -> Result<Reply, Refusal> {
        let frame: [UInt8], flags: UInt8, headerSize: Int, callId: UInt64
        switch readCommon(frames, expecting: .reply) {
        case .failure(let refusal): return .failure(refusal)
        case .success(let common): (frame, flags, headerSize, callId) = common
        }
        let body = Array(frame[headerSize...])
        guard flags & ReplyFlag.failed != 0 else { return .success(Reply(callId: callId, result: .success(body))) }
        do {
            return .success(Reply(callId: callId, result: .failure(try WireJSON.decode(RPCError.self, from: body))))
        } catch {
            return .success(Reply(callId: callId, result: .failure(.rejected(code: "bad_reply", message: "undecodable error in the reply: \(error)"))))
        }
    }

    /// The part every message shares, checked: one frame, magic, version, kind, a header size
    /// within the frame. An `erp/1` message is refused in a form its sender can read.
    private static func readCommon(_ frames: ArraySlice<[UInt8]>, expecting kind: Kind)
        -> Result<(frame: [UInt8], flags: UInt8, headerSize: Int, callId: UInt64), Refusal> {
        guard let first = frames.first else {
            return .failure(Refusal(callId: nil, error: .rejected(code: "bad_frames", message: "an empty message")))
        }
        if frames.count > 1 && first == ERP1.versionBytes {
            let callId = frames.count >= 3 ? ERP1.peekCallId(frames[frames.startIndex + 2]) : nil
            return .failure(Refusal(callId: callId, error: .rejected(
                code: "unsupported_version", message: "this node speaks \(version) (one frame; docs/wire-format.md), not erp/1"), answersInERP1: true))
        }
        // The call id, when the first frame is long enough and looks like ours: enough to answer.
        let callId: UInt64? = first.count >= commonSize && first.starts(with: magic) ? readInteger(UInt64.self, first, at: 8) : nil
        func refuse(_ code: String, _ message: String) -> Result<(frame: [UInt8], flags: UInt8, headerSize: Int, callId: UInt64), Refusal> {
            .failure(Refusal(callId: callId, error: .rejected(code: code, message: message)))
        }
        guard let callId else { return refuse("bad_frames", "not an \(version) message") }
        guard frames.count == 1 else { return refuse("bad_frames", "expected 1 frame, got \(frames.count)") }
        guard first[3] == versionNumber else { return refuse("unsupported_version", "this node speaks \(version), not version \(first[3])") }
        guard first[4] == kind.rawValue else { return refuse("bad_kind", "expected kind \(kind.rawValue) (\(kind)), got \(first[4])") }
        let headerSize = Int(readInteger(UInt16.self, first, at: 6))
        guard headerSize >= commonSize, headerSize <= first.count else {
            return refuse("bad_header", "header size \(headerSize) outside \(commonSize)...\(first.count), the frame's size")
        }
        return .success((first, first[5], headerSize, callId))
    }

    static func readInteger<T: FixedWidthInteger>(_: T.Type, _ bytes: [UInt8], at offset: Int) -> T {
        var value: T = 0
        for index in (offset..<offset + MemoryLayout<T>.size).reversed() { value = value << 8 | T(truncatingIfNeeded: bytes[index]) }
        return value
    }

    /// Reads the length-prefixed UTF-8 fields of a request header, never past its end.
    private struct FieldReader {
        let frame: [UInt8]
        var offset: Int
        let end: Int
        var problem = ""

        mutating func string() -> String? {
            guard offset + 2 <= end else {
                problem = "a field's length runs past the header's end"
                return nil
            }
            let length = Int(WireFormat.readInteger(UInt16.self, frame, at: offset))
            let start = offset + 2
            guard start + length <= end else {
                problem = "a \(length)-byte field runs past the header's end"
                return nil
            }
            offset = start + length
            let text = frame.withUnsafeBufferPointer { whole -> String? in
                let field = UnsafeBufferPointer(rebasing: whole[start..<offset])
                // ASCII (nearly every field: methods, node names, ids) is valid UTF-8 as it is;
                // `String(validating:)` on a slice went through generic metadata lookups, a few
                // per cent of a serving thread in `erp bench transport`.
                if !field.contains(where: { $0 >= 0x80 }) { return String(decoding: field, as: UTF8.self) }
                return String(validating: field, as: UTF8.self)
            }
            guard let text else {
                problem = "a field is not UTF-8"
                return nil
            }
            return text
        }
    }

    /// What is left of `erp/1`: recognizing its requests, and refusing them in its own frames.
    enum ERP1 {
        static let versionBytes = Array("erp/1".utf8)

        private struct CallIdOnly: Decodable { var callId: UInt64 }

        /// The erp/1 reply header, for the refusal only.
        private struct ReplyHeader: Encodable {
            var callId: UInt64
            var error: RPCError
            var ok = false
        }

        static func peekCallId(_ header: [UInt8]) -> UInt64? {
            try? WireJSON.decode(CallIdOnly.self, from: header).callId
        }

        static func refusalFrames(callId: UInt64, error: RPCError) -> [[UInt8]] {
            let header: [UInt8]
            do {
                header = try WireJSON.encode(ReplyHeader(callId: callId, error: error))
            } catch {
                preconditionFailure("an erp/1 reply header always encodes: \(error)")
            }
            return [versionBytes, Array("reply".utf8), header, []]
        }
    }
}
