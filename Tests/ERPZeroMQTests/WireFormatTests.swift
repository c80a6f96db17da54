import ERPCore
import Foundation
import Testing
import ZeroMQTestSupport
@testable import ERPZeroMQ

/// The erp/2 frame, byte for byte as docs/wire-format.md gives it to clients in other languages,
/// and its reader's refusals: every prefix of a valid frame, every wrong length, refused with a
/// typed error (never a trap).
@Suite struct WireFormatTests {
    static let metadata = CallMetadata(deadline: Timestamp(nanosecondsSinceEpoch: 1_764_000_000_123_456_789), correlationId: "c1",
                                       idempotencyKey: "k", traceParent: "00-abc-def-01")

    @Test func aRequestIsTheDocumentedBytes() throws {
        let header = WireFormat.RequestHeader(callId: 0x0102, method: "inventory.checkStock", caller: "order",
                                              metadata: CallMetadata(deadline: Timestamp(nanosecondsSinceEpoch: 1_764_000_000_000_000_000),
                                                                     correlationId: "corr_1"))
        let frame = try WireFormat.requestFrame(header, body: bytes(#"{"a":1}"#))
        // The example of docs/wire-format.md, "Example exchange".
        var expected: [UInt8] = [0x65, 0x72, 0x70, 2, 1, 0, 61, 0, 0x02, 0x01, 0, 0, 0, 0, 0, 0]
        expected += withUnsafeBytes(of: Int64(1_764_000_000_000_000_000).littleEndian, Array.init)
        expected += [20, 0] + bytes("inventory.checkStock") + [5, 0] + bytes("order") + [6, 0] + bytes("corr_1")
        expected += bytes(#"{"a":1}"#)
        #expect(frame == expected)
        #expect(frame.count == 61 + 7)
        let (decoded, body) = try WireFormat.decodeRequest([frame][...]).get()
        #expect(decoded == header && body == bytes(#"{"a":1}"#))
    }

    @Test func metadataSurvivesExactly() throws {
        let header = WireFormat.RequestHeader(callId: UInt64.max, method: "m/é", caller: "n\u{0}", metadata: Self.metadata)
        let frame = try WireFormat.requestFrame(header, body: [])
        #expect(frame[5] == 0b11, "both optional fields flagged")
        let (decoded, body) = try WireFormat.decodeRequest([frame][...]).get()
        #expect(decoded == header && body.isEmpty)
        #expect(decoded.metadata.deadline == Self.metadata.deadline, "nanoseconds, not a rounded float")
        #expect(decoded.metadata.idempotencyKey == "k" && decoded.metadata.traceParent == "00-abc-def-01")
        var negative = header
        negative.deadline = Timestamp(nanosecondsSinceEpoch: -5)
        negative.idempotencyKey = nil
        #expect(try WireFormat.decodeRequest([try WireFormat.requestFrame(negative, body: [1])][...]).get().0 == negative)
    }

    @Test func repliesCarryBodiesAndTypedErrors() throws {
        let ok = WireFormat.replyFrame(callId: 42, result: .success(bytes("\"HI\"")))
        #expect(Array(ok.prefix(16)) == [0x65, 0x72, 0x70, 2, 2, 0, 16, 0, 42, 0, 0, 0, 0, 0, 0, 0])
        #expect(try WireFormat.decodeReply([ok][...]).get() == WireFormat.Reply(callId: 42, result: .success(bytes("\"HI\""))))
        for error: RPCError in [.deadlineExceeded, .unavailable("x"), .rejected(code: "c", message: "m"),
                                .overloaded(retryAfterMilliseconds: 5), .overloaded(retryAfterMilliseconds: nil), .unauthenticated] {
            let frame = WireFormat.replyFrame(callId: 1, result: .failure(error))
            #expect(frame[5] == 1)
            #expect(try WireFormat.decodeReply([frame][...]).get().result == .failure(error))
        }
        // The error forms docs/wire-format.md promises to clients in other languages.
        func errorBody(_ error: RPCError) -> String {
            String(decoding: WireFormat.replyFrame(callId: 42, result: .failure(error)).dropFirst(16), as: UTF8.self)
        }
        #expect(errorBody(.rejected(code: "unknown_product", message: "no p-1 in shop-1"))
            == #"{"rejected":{"code":"unknown_product","message":"no p-1 in shop-1"}}"#)
        #expect(errorBody(.deadlineExceeded) == #"{"deadlineExceeded":{}}"#)
        #expect(errorBody(.unavailable("why")) == #"{"unavailable":{"_0":"why"}}"#)
        #expect(errorBody(.overloaded(retryAfterMilliseconds: 250)) == #"{"overloaded":{"retryAfterMilliseconds":250}}"#)
        #expect(errorBody(.overloaded(retryAfterMilliseconds: nil)) == #"{"overloaded":{}}"#)
        #expect(errorBody(.unauthenticated) == #"{"unauthenticated":{}}"#)
        // A message that quotes a caller's 3 MB id goes back cut to 1 KiB (at a character's end),
        // saying how long it was: a client that never read its answers had the gateway hold them.
        let huge = "no order " + String(repeating: "é", count: 1_500_000)
        guard case .failure(.rejected("not_found", let cut)) = try WireFormat.decodeReply(
            [WireFormat.replyFrame(callId: 3, result: .failure(.rejected(code: "not_found", message: huge)))][...]).get().result else {
            Issue.record("not the rejection sent"); return
        }
        #expect(cut.utf8.count <= RPCError.messageByteCountMax && cut.hasPrefix("no order éé") && cut.hasSuffix("… (3000009 bytes in all)"), "\(cut.suffix(60))")
        // An error that does not decode still ends the call it names.
        var garbled = WireFormat.replyFrame(callId: 9, result: .failure(.deadlineExceeded))
        garbled.removeLast()
        guard case .failure(.rejected("bad_reply", _)) = try WireFormat.decodeReply([garbled][...]).get().result else {
            Issue.record("a garbled error was not bad_reply"); return
        }
    }

    @Test func everyTruncationIsRefusedWithATypedError() throws {
        let frame = try WireFormat.requestFrame(WireFormat.RequestHeader(callId: 7, method: "m", caller: "c", metadata: Self.metadata), body: [])
        for length in 0..<frame.count {
            guard case .failure(let refusal) = WireFormat.decodeRequest([Array(frame.prefix(length))][...]) else {
                Issue.record("a \(length)-byte prefix was read"); continue
            }
            // From 16 bytes on, the call id is readable: the refusal can be answered.
            #expect(refusal.callId == (length >= 16 ? 7 : nil), "prefix \(length)")
            #expect((WireFormat.answer(to: refusal) != nil) == (length >= 16))
        }
        // Header sizes that lie, each way.
        for size in [0, 15, 16, 23, 29, frame.count + 1, 0xFFFF] {
            var lying = frame
            lying[6] = UInt8(size & 0xFF)
            lying[7] = UInt8(size >> 8)
            guard case .failure(let refusal) = WireFormat.decodeRequest([lying][...]), case .rejected("bad_header", _) = refusal.error else {
                Issue.record("header size \(size) was not bad_header"); continue
            }
        }
        // One byte changed: a field length that runs past the header, a method that is not
        // UTF-8, another version, a reply's kind.
        for (offset, byte, code): (Int, UInt8, String) in [(24, 200, "bad_header"), (26, 0xFF, "bad_header"),
                                                           (3, 3, "unsupported_version"), (4, 2, "bad_kind")] {
            var changed = frame
            changed[offset] = byte
            #expect(refusalCode(changed) == code, "byte \(offset) set to \(byte)")
        }
        #expect(refusalCode(frame, frames: 2) == "bad_frames")
    }

    @Test func anERP1RequestIsAnsweredInERP1() throws {
        let header = bytes(#"{"callId":12,"caller":"py","correlationId":"c","deadlineMs":1,"method":"inventory.checkStock"}"#)
        guard case .failure(let refusal) = WireFormat.decodeRequest([bytes("erp/1"), bytes("request"), header, bytes("{}")][...]) else {
            Issue.record("erp/1 was read"); return
        }
        #expect(refusal.callId == 12 && refusal.answersInERP1)
        let answer = try #require(WireFormat.answer(to: refusal))
        #expect(answer.count == 4 && answer[0] == bytes("erp/1") && answer[1] == bytes("reply") && answer[3].isEmpty)
        let text = String(decoding: answer[2], as: UTF8.self)
        #expect(text.hasPrefix(#"{"callId":12,"error":{"rejected":{"code":"unsupported_version","message":"this node speaks erp/2"#))
        #expect(text.hasSuffix(#""ok":false}"#))
        // Without a readable call id there is nobody to answer.
        guard case .failure(let unreadable) = WireFormat.decodeRequest([bytes("erp/1"), bytes("request"), bytes("{"), bytes("{}")][...]) else {
            Issue.record("erp/1 was read"); return
        }
        #expect(WireFormat.answer(to: unreadable) == nil)
    }

    @Test func fieldsPastTwoBytesOfLengthAreRefusedWhenWritten() {
        let long = String(repeating: "x", count: 70_000)
        #expect(throws: WireFormat.FieldTooLong.self) {
            try WireFormat.requestFrame(WireFormat.RequestHeader(callId: 1, method: "m", caller: "c",
                                                                 metadata: CallMetadata(deadline: .init(nanosecondsSinceEpoch: 0), correlationId: long)),
                                        body: [])
        }
    }

    /// Every hop passes a request's correlation id on: one past 128 bytes is refused where it
    /// comes in, with the call id to answer, before a later hop's header could outgrow the format.
    @Test func anOverlongCorrelationIdIsRefusedOnArrival() throws {
        func frame(_ id: String) throws -> [UInt8] {
            try WireFormat.requestFrame(WireFormat.RequestHeader(callId: 5, method: "m", caller: "c",
                                                                 metadata: CallMetadata(deadline: .init(nanosecondsSinceEpoch: 0), correlationId: id)),
                                        body: [])
        }
        #expect(refusalCode(try frame(String(repeating: "x", count: 129))) == "bad_request")
        #expect(refusalCode(try frame("x\u{1}y")) == "bad_request")
        guard case .success(let (header, _)) = WireFormat.decodeRequest([try frame(String(repeating: "x", count: 128))][...]) else {
            Issue.record("a 128-byte id was refused"); return
        }
        #expect(header.metadata.correlationId.utf8.count == 128)
    }

    private func refusalCode(_ frame: [UInt8], frames count: Int = 1) -> String? {
        let frames = [frame] + Array(repeating: [UInt8](), count: count - 1)
        guard case .failure(let refusal) = WireFormat.decodeRequest(frames[...]), case .rejected(let code, _) = refusal.error else { return nil }
        return code
    }
}
