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
        [versionBytes, Array(Kind.request.rawValue.utf8), Array(try JSONCoding.encode(header)), body]
    }

    /// Reply frames; an error reply has an empty body. Never fails: the header has only plain fields.
    public static func replyFrames(callId: UInt64, result: Result<[UInt8], RPCError>) -> [[UInt8]] {
        let header = ReplyHeader(callId: callId, result: result)
        let headerBytes: [UInt8]
        do {
            headerBytes = Array(try JSONCoding.encode(header))
        } catch {
            preconditionFailure("a reply header always encodes: \(error)")
        }
        let body: [UInt8]
        switch result {
        case .success(let bytes): body = bytes
        case .failure: body = []
        }
        return [versionBytes, Array(Kind.reply.rawValue.utf8), headerBytes, body]
    }

    // MARK: Decoding

    /// Reads a request (frames without the routing id).
    public static func decodeRequest(_ frames: ArraySlice<[UInt8]>) -> Result<(RequestHeader, [UInt8]), Refusal> {
        decode(frames, expecting: .request, RequestHeader.self)
    }

    /// Reads a reply.
    public static func decodeReply(_ frames: ArraySlice<[UInt8]>) -> Result<(ReplyHeader, [UInt8]), Refusal> {
        decode(frames, expecting: .reply, ReplyHeader.self)
    }

    private struct CallIdOnly: Decodable { var callId: UInt64 }

    private static func decode<H: Decodable>(_ frames: ArraySlice<[UInt8]>, expecting kind: Kind,
                                             _ type: H.Type) -> Result<(H, [UInt8]), Refusal> {
        let parts = Array(frames)
        // The call id, if a header frame is where it should be and has one: enough to answer.
        let callId: UInt64? = parts.count >= 3 ? peekCallId(parts[2]) : nil
        guard parts.count == 4 else {
            return .failure(Refusal(callId: callId, error: .rejected(code: "bad_frames", message: "expected 4 frames (version, kind, header, body), got \(parts.count)")))
        }
        guard parts[0] == versionBytes else {
            return .failure(Refusal(callId: callId, error: .rejected(code: "unsupported_version", message: "this node speaks \(version), not \(printable(parts[0]))")))
        }
        guard parts[1] == Array(kind.rawValue.utf8) else {
            return .failure(Refusal(callId: callId, error: .rejected(code: "bad_kind", message: "expected kind \(kind.rawValue), got \(printable(parts[1]))")))
        }
        do {
            let header = try JSONCoding.decode(H.self, from: Data(parts[2]))
            return .success((header, parts[3]))
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
