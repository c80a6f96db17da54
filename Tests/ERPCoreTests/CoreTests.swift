import ERPCore
import Foundation
import Testing

@Suite struct MoneyTests {
    @Test func addsAndPrintsExactly() throws {
        let a = Money(minorUnits: 10_010), b = Money(minorUnits: 5)
        #expect((a + b).minorUnits == 10_015)
        #expect((a + b).description == "100.15 SEK")
        #expect(Money(minorUnits: -1_505).description == "-15.05 SEK")
        #expect((try a.multiplied(by: 3)).minorUnits == 30_030)
        #expect((try a.adding(b)).minorUnits == 10_015)
    }

    /// Amounts from outside never trap: too large is a typed refusal.
    @Test func checkedArithmeticRefusesWhatDoesNotFit() {
        let big = Money(minorUnits: .max / 2 + 1)
        #expect(throws: MoneyError.overflow) { try big.adding(big) }
        #expect(throws: MoneyError.overflow) { try Money(minorUnits: 1_000).multiplied(by: .max) }
        #expect(throws: MoneyError.overflow) { try Money(minorUnits: -2).multiplied(by: .max) }
        #expect(throws: MoneyError.currencyMismatch("SEK", "EUR")) { try Money(minorUnits: 1).adding(Money(minorUnits: 1, currency: "EUR")) }
        #expect(Money(decimal: "92233720368547758.08") == nil)
        #expect(Money(decimal: "-92233720368547759") == nil)
        #expect(Money(decimal: "1.-5") == nil)
        // The very ends still parse.
        #expect(Money(decimal: "92233720368547758.07")?.minorUnits == .max)
        let item = OrderItem(productId: "p", quantity: .max, unitPrice: Money(minorUnits: 2))
        #expect(throws: MoneyError.overflow) { try item.lineTotal }
    }

    @Test(arguments: [("100.00", 10_000), ("12.5", 1_250), ("0.07", 7), ("-1.5", -150), ("-0.5", -50), ("3", 300)])
    func parsesDecimalText(text: String, minor: Int64) {
        #expect(Money(decimal: text)?.minorUnits == minor)
    }

    @Test func rejectsMalformedDecimals() {
        for text in ["", "1.234", "abc", "1.", "1.2.3"] { #expect(Money(decimal: text) == nil, "\(text)") }
    }
}

@Suite struct DurationParsingTests {
    @Test(arguments: [("250ms", 250_000_000), ("3s", 3_000_000_000), ("1.5s", 1_500_000_000), ("2m", 120_000_000_000),
                      ("40us", 40_000), ("7ns", 7)])
    func parses(text: String, nanoseconds: Int64) {
        #expect(Duration(parsing: text)?.nanoseconds == nanoseconds)
    }

    @Test func rejects() {
        for text in ["", "ms", "5", "five seconds", "1x"] { #expect(Duration(parsing: text) == nil, "\(text)") }
    }

    @Test func refusesWhatDoesNotFitInsteadOfTrapping() {
        for text in ["1e30s", "3000000h", "-1e19ns"] { #expect(Duration(parsing: text) == nil, "\(text)") }
    }
}

@Suite struct TimestampArithmeticTests {
    /// A deadline off the wire may be anything: sums saturate at the ends, never trap or wrap.
    @Test func saturatesAtTheEnds() {
        let now = Timestamp.simulationEpoch
        #expect(Timestamp(nanosecondsSinceEpoch: .min) - now == .nanoseconds(Int64.min))
        #expect(Timestamp(nanosecondsSinceEpoch: .max) - Timestamp(nanosecondsSinceEpoch: -1) == .nanoseconds(Int64.max))
        #expect((Timestamp(nanosecondsSinceEpoch: .max) + .seconds(1)).nanosecondsSinceEpoch == .max)
        #expect((Timestamp(nanosecondsSinceEpoch: .min) - .seconds(1)).nanosecondsSinceEpoch == .min)
        #expect((Timestamp(nanosecondsSinceEpoch: .min) + .seconds(-1)).nanosecondsSinceEpoch == .min)
        #expect(Duration.seconds(Int64.max).nanoseconds == .max)
        #expect(Duration.seconds(Int64.min).nanoseconds == .min)
        #expect((now + .milliseconds(5)) - now == .milliseconds(5))
    }
}

@Suite struct RandomTests {
    @Test func sameSeedSameSequence() {
        let a = SeededRandomSource(seed: 42), b = SeededRandomSource(seed: 42), c = SeededRandomSource(seed: 43)
        let xs = (0..<100).map { _ in a.nextUInt64() }
        #expect(xs == (0..<100).map { _ in b.nextUInt64() })
        #expect(xs != (0..<100).map { _ in c.nextUInt64() })
    }

    @Test func derivedStreamsDependOnLabelNotPosition() {
        let a = SeededRandomSource(seed: 9), b = SeededRandomSource(seed: 9)
        _ = b.nextUInt64() // consuming from the parent must not shift a derived stream
        #expect(a.derived("network").nextUInt64() == b.derived("network").nextUInt64())
        #expect(a.derived("network").nextUInt64() != a.derived("scheduler").nextUInt64())
    }

    @Test func rangesStayInBounds() {
        let r = SeededRandomSource(seed: 5)
        for _ in 0..<10_000 {
            let u = r.unit()
            #expect(u >= 0 && u < 1)
            let i = r.int(in: -3...4)
            #expect((-3...4).contains(i))
            #expect(r.exponential(mean: 2) >= 0)
        }
    }

    @Test func exponentialHasItsMean() {
        let r = SeededRandomSource(seed: 11)
        let n = 200_000
        let mean = (0..<n).reduce(0.0) { acc, _ in acc + r.exponential(mean: 0.05) } / Double(n)
        #expect(abs(mean - 0.05) < 0.001)
    }

    @Test func stableHashIsFNV1a() {
        // Known FNV-1a 64 values: the hash must not depend on the process.
        #expect(stableHash("") == 0xcbf2_9ce4_8422_2325)
        #expect(stableHash("a") == 0xaf63_dc4c_8601_ec8c)
    }
}

@Suite struct EventEnvelopeTests {
    func envelope() throws -> EventEnvelope {
        try EventEnvelope(OrderCreated(orderId: "order_1", shopId: "shop_1", userId: "user_1",
                                       items: [OrderItem(productId: "p", quantity: 2, unitPrice: Money(minorUnits: 1_250))],
                                       totalAmount: Money(minorUnits: 2_500)),
                          eventId: "evt_1", source: .order, timestamp: Timestamp.simulationEpoch, correlationId: "corr_1")
    }

    @Test func carriesTheSeedsFieldsExactly() throws {
        let json = try JSONCoding.encodeString(try envelope())
        let object = try JSONSerialization.jsonObject(with: Data(json.utf8)) as! [String: Any]
        #expect(Set(object.keys) == ["eventId", "eventType", "eventVersion", "source", "timestamp", "correlationId", "data"])
        #expect(object["source"] as? String == "order-service")
        #expect(object["eventType"] as? String == "OrderCreated")
        #expect(object["timestamp"] as? Int64 == 1_735_689_600_000)
    }

    /// The envelope's fields through the synthesized `Codable` path, which `EventEnvelope` itself
    /// no longer takes on the wire (it writes or splices its text).
    struct Fields: Codable {
        var eventId, eventType, eventVersion, source: String
        var timestamp: Int64
        var correlationId: String
        var data: JSONValue
        init(_ e: EventEnvelope) {
            (eventId, eventType, eventVersion, source) = (e.eventId, e.eventType, e.eventVersion, e.source)
            (timestamp, correlationId, data) = (e.timestamp, e.correlationId, e.data)
        }
    }

    /// `encodeText` writes field by field; it must be byte for byte what the `Codable` path
    /// writes for the same fields, for any data: nested values, keys needing escapes and
    /// sorting by bytes, control characters, non-ASCII text, integers at their limits, and
    /// doubles on both sides of the form change at 1e15. The wire's encoding of the envelope
    /// (`JSONCoding.encodeString`, which splices the text) gives the same bytes.
    @Test func theTextWrittenFieldByFieldIsTheCodableText() throws {
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next() -> UInt64 { state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407; return state >> 33 }
        let texts = ["", "a", "quote\"d", "back\\slash", "line\nbreak\ttab", "\u{01}\u{1f}\u{7f}", "slash/ok", "é ü 漢字 🙂", "Z", "aa", "a b"]
        let doubles: [Double] = [0.5, -2.25, 1e15, 1e15 + 2, 999_999_999_999_999, -1e16, 3.0, 1e-7, 123.456]
        func value(depth: Int) -> JSONValue {
            switch next() % (depth > 3 ? 5 : 7) {
            case 0: return .null
            case 1: return .bool(next() % 2 == 0)
            case 2: return .int([0, 1, -1, Int64.max, Int64.min, Int64(next())][Int(next() % 6)])
            case 3: return .double(doubles[Int(next() % UInt64(doubles.count))])
            case 4: return .string(texts[Int(next() % UInt64(texts.count))])
            case 5: return .array((0..<Int(next() % 4)).map { _ in value(depth: depth + 1) })
            default:
                var object: [String: JSONValue] = [:]
                for _ in 0..<Int(next() % 5) { object[texts[Int(next() % UInt64(texts.count))]] = value(depth: depth + 1) }
                return .object(object)
            }
        }
        for round in 0..<500 {
            var e = EventEnvelope(eventId: "evt_\(round)", eventType: texts[round % texts.count], eventVersion: "1.0",
                                  source: "order-service", timestamp: round % 2 == 0 ? Int64(round) : -Int64(round) * 1_000_003,
                                  correlationId: texts[(round + 3) % texts.count], data: value(depth: 0))
            let codable = try JSONCoding.encodeString(Fields(e))
            #expect(try JSONCoding.encodeString(e) == codable, "round \(round)")
            #expect(try e.encodeText() == codable, "round \(round)")
        }
        var bad = try envelope()
        bad.data = .object(["x": .double(.nan)])
        #expect(throws: EncodingError.self) { try bad.encodeText() }
    }

    /// On the wire an envelope is its text, spliced whole into the message: the one it was read
    /// from, the one it wrote, or one written then; never a text its fields no longer say. The
    /// message's bytes are what encoding every field gives, its tree too (`JSONCoding.toJSONValue`).
    @Test func aMessageCarriesEachEnvelopesTextAsItsFieldsWouldEncode() throws {
        let fresh = try envelope()
        var written = try envelope()
        written.eventId = "evt_2"
        _ = try written.encodeText()
        let read = try EventEnvelope.decode(fromText: try JSONCoding.encodeString(Fields(try envelope())))
        var changed = read
        changed.correlationId = "corr_changed"
        let events = [fresh, written, read, changed]
        #expect(written.encodedText != nil && read.encodedText != nil && changed.encodedText == nil && fresh.encodedText == nil)

        struct Batch: Codable { var events: [Fields] }
        let expected = try JSONCoding.encodeString(Batch(events: events.map(Fields.init)))
        #expect(try JSONCoding.encodeString(AppendEvents(events: events)) == expected)
        #expect(expected.contains("corr_changed") && expected.contains("evt_2"))
        #expect(try JSONCoding.toJSONValue(AppendEvents(events: events)) == JSONCoding.toJSONValue(Batch(events: events.map(Fields.init))))
        // And back: the decoded envelopes are the ones sent.
        #expect(try JSONCoding.decode(AppendEvents.self, from: expected).events == events)
    }

    @Test func roundTripsThroughJSON() throws {
        let e = try envelope()
        let decoded = try JSONCoding.decode(EventEnvelope.self, from: try JSONCoding.encode(e))
        #expect(decoded == e)
        #expect(try decoded.payload(as: OrderCreated.self).totalAmount == Money(minorUnits: 2_500))
        #expect(decoded.topic == "order.created")
    }

    /// An envelope read from its text keeps that text for the bus to store, until a field changes;
    /// the kept text is never part of the event (encoding, equality, hashing).
    @Test func keepsTheTextItWasReadFromUntilAFieldChanges() throws {
        let e = try envelope()
        #expect(e.encodedText == nil)
        let text = try JSONCoding.encodeString(e)
        let read = try EventEnvelope.decode(fromText: text)
        #expect(read.encodedText == text)
        #expect(read == e && read.hashValue == e.hashValue)
        #expect(try JSONCoding.encodeString(read) == text, "the kept text is what encoding gives")
        #expect(try JSONCoding.decode(EventEnvelope.self, from: text).encodedText == nil, "only decode(fromText:) keeps it")
        for change in [{ (e: inout EventEnvelope) in e.eventId = "evt_2" }, { $0.eventType = "OrderConfirmed" }, { $0.eventVersion = "1.0" },
                       { $0.source = "x" }, { $0.timestamp += 1 }, { $0.correlationId = "c" }, { $0.data = .null }] {
            var changed = read
            change(&changed)
            #expect(changed.encodedText == nil)
        }
    }

    /// An envelope made from a payload answers `payload(as:)` with it, until a field changes; then
    /// from its (new) data. `encodeText()` keeps the text it made.
    @Test func answersWithThePayloadItWasMadeFromUntilAFieldChanges() throws {
        let e = try envelope()
        let original = try e.payload(as: OrderCreated.self)
        #expect(original.totalAmount == Money(minorUnits: 2_500))
        #expect(try JSONCoding.decode(EventEnvelope.self, from: try JSONCoding.encode(e)).payload(as: OrderCreated.self) == original)
        var changed = e
        var other = original
        other.totalAmount = Money(minorUnits: 7)
        changed.data = try JSONCoding.toJSONValue(other)
        #expect(try changed.payload(as: OrderCreated.self).totalAmount == Money(minorUnits: 7), "the new data, not the payload it was made from")
        var older = e
        older.eventVersion = "9.9"
        #expect(throws: EventDecodingError.self) { try older.payload(as: OrderCreated.self) }
        var stored = e
        let text = try stored.encodeText()
        let encodedAgain = try JSONCoding.encodeString(e)
        #expect(stored.encodedText == text && text == encodedAgain)
        #expect(try stored.payload(as: OrderCreated.self) == original)
    }

    @Test func upcastsVersionOneOrderCreated() throws {
        // The seed's 1.0 shape: totalAmount as a decimal number of major units.
        let text = #"{"eventId":"evt_9","eventType":"OrderCreated","eventVersion":"1.0","source":"order-service","timestamp":1,"correlationId":"c","data":{"orderId":"order_123","shopId":"shop_456","userId":"user_789","items":[{"productId":"p","quantity":1}],"totalAmount":100.5}}"#
        let e = try JSONCoding.decode(EventEnvelope.self, from: text)
        let payload = try e.payload(as: OrderCreated.self)
        #expect(payload.totalAmount == Money(minorUnits: 10_050))
        #expect(payload.items.first?.quantity == 1)
    }

    @Test func aVersionOneTotalTooLargeForMinorUnitsIsRefusedNotATrap() throws {
        for total in ["92233720368547759", "1e300"] {
            let text = #"{"eventId":"evt_9","eventType":"OrderCreated","eventVersion":"1.0","source":"order-service","timestamp":1,"correlationId":"c","data":{"orderId":"o","shopId":"s","userId":"u","items":[],"totalAmount":"# + total + "}}"
            let e = try JSONCoding.decode(EventEnvelope.self, from: text)
            #expect(throws: EventDecodingError.self) { try e.payload(as: OrderCreated.self) }
        }
    }

    @Test func upcastsVersionOneDeviceStatusUpdatedBelowEveryRevision() throws {
        let text = #"{"eventId":"evt_1","eventType":"DeviceStatusUpdated","eventVersion":"1.0","source":"iot-gateway","timestamp":1,"correlationId":"c","data":{"deviceId":"device_123","shopId":"shop_456","status":"online","lastSeen":1234567890}}"#
        let payload = try JSONCoding.decode(EventEnvelope.self, from: text).payload(as: DeviceStatusUpdated.self)
        #expect(payload.deviceId == "device_123" && payload.status == "online" && payload.revision == DeviceRevision(value: 0))
        #expect(DeviceRevision.reported(sequence: 1)! > payload.revision)
    }

    @Test func deviceRevisionsOrderReportsAndSilences() {
        let fifth = DeviceRevision.reported(sequence: 5)!
        #expect(fifth < fifth.silenced && fifth.silenced < DeviceRevision.reported(sequence: 6)!)
        #expect(fifth.silenced.silenced == fifth.silenced)
        #expect(DeviceRevision.reported(sequence: -1) == nil)
        #expect(DeviceRevision.reported(sequence: .max) == nil, "a sequence from outside must not overflow")
        #expect(DeviceRevision.reported(sequence: DeviceRevision.sequenceMax) != nil)
    }

    @Test func refusesUnknownVersionsAndTypes() throws {
        var e = try envelope()
        e.eventVersion = "9.0"
        #expect(throws: EventDecodingError.unsupportedVersion(type: "OrderCreated", version: "9.0")) { try e.payload(as: OrderCreated.self) }
        #expect(throws: EventDecodingError.self) { try envelope().payload(as: OrderCancelled.self) }
    }

    @Test func everySeedEventTypeHasATopic() {
        let types = ["OrderCreated", "OrderConfirmed", "OrderCancelled", "StockUpdated", "InventoryReserved", "LowStockAlert",
                     "PaymentProcessed", "PaymentFailed", "RefundProcessed", "DeviceStatusUpdated", "DeviceDataReceived"]
        for t in types { #expect(EventTypes.topic(for: t) != nil, "\(t)") }
        #expect(EventTypes.all.count == 11)
    }
}
