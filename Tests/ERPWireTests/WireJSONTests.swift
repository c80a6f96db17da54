import ERPCore
import ERPWire
import Foundation
import Testing

/// `WireJSON` must write what `JSONCoding` (Foundation) writes, read what it writes, and refuse bad
/// input with a `DecodingError`, never a crash.
@Suite struct WireJSONTests {
    struct Sample: Codable, Hashable {
        enum Mood: String, Codable { case calm, busy }
        var text: String
        var count: Int
        var big: UInt64
        var negative: Int64
        var ratio: Double
        var small: Float
        var flag: Bool
        var missing: String?
        var present: Int?
        var mood: Mood
        var list: [Int]
        var nested: [[String]]
        var table: [String: Double]
        var error: RPCError
        var errors: [RPCError]
    }

    static let text = "quote \" backslash \\ slash / tab \t newline \n bell \u{07} unit separator \u{1F} é 漢 🛒"

    static let sample = Sample(
        text: text, count: -42, big: UInt64.max, negative: Int64.min, ratio: 0.1, small: 2.5, flag: true, missing: nil,
        present: 7, mood: .busy, list: [], nested: [["a", "b"], [], ["c"]], table: ["b": 1.5, "a": -3, "z": 1e-7],
        error: .rejected(code: "c", message: "m"),
        errors: [.deadlineExceeded, .unavailable("gone"), .overloaded(retryAfterMilliseconds: nil),
                 .overloaded(retryAfterMilliseconds: 250), .unauthenticated])

    static let envelope = EventEnvelope(
        eventId: "evt_1", eventType: "OrderCreated", eventVersion: "2.0", source: "order", timestamp: 1_764_000_000_123,
        correlationId: "corr/1",
        data: .object(["orderId": .string("ord_1"), "lines": .array([.object(["q": .int(2), "p": .double(12.5)]), .null]),
                       "ok": .bool(false), "empty": .object([:]), "note": .string(text)]))

    static let order = OrderView(orderId: "ord_1", userId: "u", shopId: "s",
                                 items: [], totalAmount: Money(minorUnits: 12_345), status: .confirmed, reason: nil)

    @Test func writesTheBytesJSONCodingWrites() throws {
        func same<T: Encodable>(_ value: T) throws {
            let ours = try WireJSON.encode(value)
            let foundation = Array(try JSONCoding.encode(value))
            #expect(String(decoding: ours, as: UTF8.self) == String(decoding: foundation, as: UTF8.self))
        }
        try same(Self.sample)
        try same(Self.envelope)
        try same(AppendEvents(events: [Self.envelope, Self.envelope]))
        try same(Self.order)
        try same(PlaceOrder(userId: "u", shopId: "s", items: [OrderLine(productId: "p", quantity: 3)]))
        try same("just a string")
        try same(12)
        try same([1.5, 3, -0.25, 1e300])
        // Elements a container hands over as generic values (the encoder's fast path by type).
        try same([Int64.min, 0, Int64.max])
        try same([UInt64.max, 0])
        try same([true, false])
        try same(["a", nil, "\u{7}"] as [String?])
        try same(["k": [Int64(-1)]])
        try same(Optional<Int>.none)
    }

    @Test func readsWhatJSONCodingWrites() throws {
        func roundTrips<T: Codable & Equatable>(_ value: T) throws {
            let decoded = try WireJSON.decode(T.self, from: Array(JSONCoding.encode(value)))
            #expect(decoded == value)
            #expect(try WireJSON.decode(T.self, from: WireJSON.encode(value)) == value)
        }
        try roundTrips(Self.sample)
        try roundTrips(Self.envelope)
        try roundTrips(AppendEvents(events: [Self.envelope]).events)
        try roundTrips(Self.order)
        try roundTrips([String: [Int]]())
    }

    @Test func readsWhitespaceEscapesAndIntegralForms() throws {
        let text = #" { "text" : "a\u00e9\ud83d\uded2\/\n" , "n" : [ 1 , 2.0 , 3e2 , -0 ] } "#
        struct Doc: Decodable { var text: String; var n: [Int] }
        let doc = try WireJSON.decode(Doc.self, from: Array(text.utf8))
        #expect(doc.text == "aé🛒/\n")
        #expect(doc.n == [1, 2, 300, 0])
    }

    @Test func refusesBadInputWithDecodingErrors() throws {
        struct Doc: Decodable { var a: Int }
        let cases: [(String, String)] = [
            ("", "empty"), ("{", "unterminated object"), (#"{"a":1,}"#, "trailing comma"), (#"{"a":1} x"#, "trailing text"),
            (#"{"a":01}"#, "leading zero"), (#"{"a":1.}"#, "bare fraction"), (#"{"a":"1"}"#, "string for an int"),
            (#"{"b":1}"#, "missing key"), (#"{"a":null}"#, "null for an int"), (#"{"a":1e400}"#, "too big"),
            (#"{"a":3.5}"#, "fraction for an int"), (#"["a"]"#, "array for an object"), (#"{"a":tru}"#, "bad literal"),
            (#"{"a":"\ud800"}"#, "lone surrogate"), ("{\"a\":\"\u{01}\"}", "raw control character"),
            (#"{"a":1,"a":2}"#, "a key twice"), (#"{"a":1,"b":{"c":1,"c":1}}"#, "a key twice, nested"),
            (#"{"a":1,"\u0061":2}"#, "a key twice, once escaped"),
        ]
        for (text, why) in cases {
            #expect(throws: DecodingError.self, "\(why)") { try WireJSON.decode(Doc.self, from: Array(text.utf8)) }
        }
        // Invalid UTF-8 inside a string.
        #expect(throws: DecodingError.self) { try WireJSON.decode(String.self, from: [0x22, 0xC3, 0x28, 0x22]) }
        // A NUL, escaped: SQLite would cut the string there ("a\u0000b" stored and looked up as "a").
        struct Named: Decodable { var id: String }
        #expect(throws: DecodingError.self) { try WireJSON.decode(Named.self, from: Array(#"{"id":"a\u0000b"}"#.utf8)) }
        #expect(throws: DecodingError.self) { try WireJSON.decode(Named.self, from: Array(#"{"id":"\u0000"}"#.utf8)) }
        #expect(try WireJSON.decode(Named.self, from: Array(#"{"id":"a\u0001b"}"#.utf8)).id == "a\u{01}b", "other escaped characters stay allowed")
    }

    /// A key twice in one object is refused whatever the object's size (a big one is checked by
    /// a set), and the error says which key and where.
    @Test func refusesAKeyTwiceInOneObject() throws {
        let keys = (0..<100).map { "\"k\($0)\":\($0)" }
        let distinct = "{" + keys.joined(separator: ",") + "}"
        guard case .object(let members) = try WireJSON.parse(Array(distinct.utf8)) else { Issue.record("not an object"); return }
        #expect(members.count == 100)
        let twice = "{" + (keys + ["\"k42\":0"]).joined(separator: ",") + "}"
        do {
            _ = try WireJSON.parse(Array(twice.utf8))
            Issue.record("a key twice in a big object was read")
        } catch DecodingError.dataCorrupted(let context) {
            #expect(context.debugDescription.contains(#"the key "k42" twice"#), "\(context.debugDescription)")
            #expect(context.debugDescription.contains("at byte \(distinct.utf8.count)"), "\(context.debugDescription)")
        }
    }

    /// A body of many keys (a megabyte holds some 100,000) costs the key check a set built once,
    /// not one set per key: 20,000 keys, read whole, and the repeated last one found.
    @Test func aManyKeyObjectIsCheckedInOnePass() throws {
        let keys = (0..<20_000).map { "\"k\($0)\":0" }
        guard case .object(let members) = try WireJSON.parse(Array(("{" + keys.joined(separator: ",") + "}").utf8)) else {
            Issue.record("not an object")
            return
        }
        #expect(members.count == 20_000)
        #expect(throws: DecodingError.self) { try WireJSON.parse(Array(("{" + (keys + ["\"k7\":1"]).joined(separator: ",") + "}").utf8)) }
    }

    @Test func namesTheKeyAndPathOfAnError() throws {
        struct Inner: Decodable { var quantity: Int }
        struct Outer: Decodable { var lines: [Inner] }
        do {
            _ = try WireJSON.decode(Outer.self, from: Array(#"{"lines":[{"quantity":1},{"quantity":"two"}]}"#.utf8))
            Issue.record("decoded a string as an Int")
        } catch DecodingError.typeMismatch(_, let context) {
            #expect(context.codingPath.map(\.stringValue) == ["lines", "Index 1", "quantity"])
        }
        do {
            _ = try WireJSON.decode(Outer.self, from: Array(#"{"lines":[{}]}"#.utf8))
            Issue.record("decoded a missing key")
        } catch DecodingError.keyNotFound(let key, _) {
            #expect(key.stringValue == "quantity")
        }
    }

    @Test func refusesDeepNestingWithoutCrashing() {
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        #expect(throws: DecodingError.self) { try WireJSON.decode(JSONValue.self, from: Array(deep.utf8)) }
        let fine = String(repeating: "[", count: 100) + String(repeating: "]", count: 100)
        #expect(throws: Never.self) { try WireJSON.decode(JSONValue.self, from: Array(fine.utf8)) }
    }

    @Test func refusesNumbersWithoutAJSONForm() {
        #expect(throws: EncodingError.self) { try WireJSON.encode([Double.nan]) }
        #expect(throws: EncodingError.self) { try WireJSON.encode(Double.infinity) }
    }

    /// An envelope read off the wire is the event its fields' values make: the same event, hash
    /// and payload, and the text the value would give, for data written in any order and form
    /// (keys out of order, a fraction on a whole number; the parser refuses a key given twice).
    @Test func anEnvelopeReadOffTheWireIsTheEventItsValueIs() throws {
        let data = #"{"userId":"u","shopId":"s","orderId":"o2","items":[{"quantity":2.0,"productId":"p","unitPrice":{"currency":"SEK","minorUnits":125}}],"totalAmount":{"minorUnits":250,"currency":"SEK"}}"#
        let message = #"{"events":[{"eventId":"evt_1","eventType":"OrderCreated","eventVersion":"2.0","source":"order-service","timestamp":5,"correlationId":"c","data":"# + data + "}]}"
        let read = try WireJSON.decode(AppendEvents.self, from: Array(message.utf8)).events[0]
        let value = EventEnvelope(eventId: "evt_1", eventType: "OrderCreated", eventVersion: "2.0", source: "order-service",
                                  timestamp: 5, correlationId: "c", data: JSONValue(try WireJSON.parse(Array(data.utf8))))
        #expect(read == value && read.hashValue == value.hashValue)
        #expect(read.data == value.data && read.data["orderId"] == .string("o2"))
        var (readCopy, valueCopy) = (read, value)
        #expect(try readCopy.encodeText() == valueCopy.encodeText())
        #expect(try read.payload(as: OrderCreated.self) == value.payload(as: OrderCreated.self))
        #expect(try read.payload(as: OrderCreated.self).orderId == "o2")
        #expect(try read.payload(as: OrderCreated.self).items[0].quantity == 2)
        // Made again from its payload, the envelope writes the same text (2.0 as a value is a
        // double, the payload's quantity an integer: both are written 2).
        let made = try EventEnvelope(try read.payload(as: OrderCreated.self), eventId: "evt_1", source: .order,
                                     timestamp: Timestamp(nanosecondsSinceEpoch: 5_000_000), correlationId: "c")
        var madeCopy = made
        #expect(try madeCopy.encodeText() == valueCopy.encodeText())
    }
}
