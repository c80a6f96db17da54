import ERPCore
import ERPWire
import Foundation
import Testing
@testable import ERPZeroMQ

/// Headers are written by the one writer, `WireJSON` (the bytes Foundation's JSONEncoder writes);
/// the reading fast path (`FastHeaderJSON`, WireJSON's parser) agrees with JSONDecoder both ways,
/// and leaves to JSONDecoder whatever it does not read itself.
@Suite struct WireFormatFastPathTests {
    static let headers: [WireFormat.RequestHeader] = [
        WireFormat.RequestHeader(callId: 1, method: "inventory.reserve", caller: "orders",
                                 metadata: CallMetadata(deadline: Timestamp(nanosecondsSinceEpoch: 1_764_000_000_123_456_789), correlationId: "c-1")),
        WireFormat.RequestHeader(callId: UInt64.max, method: "m/with/slashes", caller: "qu\"ote\\back\nline\u{01}tab\t",
                                 metadata: CallMetadata(deadline: Timestamp(nanosecondsSinceEpoch: 1_764_000_000_000_000_000), correlationId: "é – 日本 🙂",
                                                        idempotencyKey: "k", traceParent: "00-abc-def-01")),
        WireFormat.RequestHeader(callId: 0, method: "", caller: "", metadata: CallMetadata(deadline: Timestamp(nanosecondsSinceEpoch: -5), correlationId: "")),
    ]

    @Test func requestHeadersRoundTripBothWays() throws {
        for header in Self.headers {
            let written = try WireFormat.requestFrames(header, body: [])[2]
            let reference = Array(try JSONCoding.encode(header))
            #expect(written == (try WireJSON.encode(header)))
            #expect(String(decoding: written, as: UTF8.self) == String(decoding: reference, as: UTF8.self))
            #expect(try JSONCoding.decode(WireFormat.RequestHeader.self, from: Data(written)) == header)
            #expect(FastHeaderJSON.requestHeader(reference) == header)
            #expect(FastHeaderJSON.requestHeader(written) == header)
        }
    }

    @Test func replyHeaders() throws {
        let ok = WireFormat.ReplyHeader(callId: 42, result: .success([1]))
        let okFrames = WireFormat.replyFrames(callId: 42, result: .success([1]))
        #expect(String(decoding: okFrames[2], as: UTF8.self) == #"{"callId":42,"ok":true}"#)
        #expect(okFrames[2] == Array(try JSONCoding.encode(ok)))
        #expect(FastHeaderJSON.replyHeader(Array(#"{ "ok" : true , "callId" : 42 }"#.utf8)) == ok)
        // Errors are objects: written by WireJSON like every header (JSONEncoder's bytes), read by
        // JSONDecoder.
        let failed = WireFormat.ReplyHeader(callId: 42, result: .failure(.deadlineExceeded))
        let failedFrames = WireFormat.replyFrames(callId: 42, result: .failure(.deadlineExceeded))
        #expect(String(decoding: failedFrames[2], as: UTF8.self) == String(decoding: try JSONCoding.encode(failed), as: UTF8.self))
        #expect(FastHeaderJSON.replyHeader(failedFrames[2]) == nil)
        #expect(FastHeaderJSON.replyHeader(Array(try JSONCoding.encode(failed))) == nil)
        let frames = WireFormat.replyFrames(callId: 42, result: .failure(.unavailable("x")))
        #expect(try WireFormat.decodeReply(frames[...]).get().0.error == .unavailable("x"))
    }

    @Test func whatItDoesNotReadGoesToJSONDecoder() {
        let refused = [
            #"{"callId":1,"ok":true,"callId":2}"#,           // duplicate key
            #"{"callId":1.5,"ok":true}"#,                     // not an integer
            #"{"callId":-1,"ok":true}"#,
            #"{"callId":01,"ok":true}"#,
            #"{"callId":1,"ok":"yes"}"#,                      // wrong type
            #"{"callId":1}"#,                                 // missing
            #"{"callId":1,"ok":true} x"#,                     // trailing garbage
            #"{"callId":1,"ok":true,"extra":[1]}"#,           // nested value
            #"[1]"#, "", "{",
        ]
        for text in refused { #expect(FastHeaderJSON.replyHeader(Array(text.utf8)) == nil, "\(text)") }
        // Unknown plain keys are ignored, as JSONDecoder ignores them.
        #expect(FastHeaderJSON.replyHeader(Array(#"{"callId":1,"ok":false,"later":"x","error":null}"#.utf8))?.ok == false)
        // Escapes it reads (surrogate pairs too, with WireJSON's parser); bad UTF-8 it leaves.
        func text(_ json: String) -> String? {
            guard let members = FastHeaderJSON.flatMembers(Array(json.utf8)), members.count == 1,
                  case .string(let value) = members[0].1 else { return nil }
            return value
        }
        #expect(text(#"{"a":"\u00e9\/\"\\"}"#) == "é/\"\\")
        #expect(text(#"{"a":"\ud83d\ude42"}"#) == "🙂")
        #expect(FastHeaderJSON.flatMembers([UInt8(ascii: "{"), UInt8(ascii: "\""), 0xFF, UInt8(ascii: "\""), UInt8(ascii: ":"), UInt8(ascii: "1"), UInt8(ascii: "}")]) == nil)
        #expect(FastHeaderJSON.flatMembers(Array(#"{"a":1,"a":2}"#.utf8)) == nil)
        #expect(FastHeaderJSON.flatMembers(Array(#"{"a":{}}"#.utf8)) == nil)
    }
}
