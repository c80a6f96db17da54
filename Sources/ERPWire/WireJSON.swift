// ERPWire owns the JSON of RPC messages on a real wire. `WireJSON` below is the one JSON writer of
// the ZeroMQ transport's `erp/2` bodies (and of the errors in its replies) and of the handler
// table's encoded path, and reads them and the HTTP gateway's request bodies.
// It imports nothing. ERPCore's `JSONCoding` (outbox rows, envelopes, bus logs) writes and reads
// through it too, and `JSONValue` trades trees with it (`WireTreeDecoder`, `WireTreeEncoder`).

/// JSON for RPC requests and replies on a real wire (the ZeroMQ transport): bodies and errors, the
/// same JSON as `JSONCoding` writes (sorted keys, slashes unescaped, integral numbers without a
/// fraction) through a small `Encoder`/`Decoder` of our own, because Foundation's spent about
/// 7 µs per message on the types of an RPC (type checks for its special cases on every value,
/// coding paths, `Data` conversions), a quarter of a call's CPU.
///
/// It reads any JSON document (RFC 8259: any value at the top, strings validated as UTF-8,
/// escapes including surrogate pairs) nested at most `depthMax` deep, and throws the usual
/// `DecodingError`s, with the coding path, for a wrong type, a missing key or bad syntax. What it
/// does not do, because no contract needs it: `Date`, `Data`, `URL` and `Decimal` get no special
/// form (they encode as their own `Codable` says), and there are no key or date strategies.
public enum WireJSON {
    /// Deeper documents are refused (`dataCorrupted`) rather than risk the stack.
    public static let depthMax = 256

    public static func encode<T: Encodable>(_ value: T) throws -> [UInt8] {
        let encoder = WireEncoder(path: nil)
        try value.encode(to: encoder)
        var out: [UInt8] = []
        out.reserveCapacity(128)
        guard let root = encoder.root else {
            throw EncodingError.invalidValue(value, .init(codingPath: [], debugDescription: "\(T.self) encoded nothing"))
        }
        root.write(into: &out)
        return out
    }

    /// Appends `text` as a JSON string: quotes, backslashes and control characters escaped (the
    /// short forms where JSON has them, `\u00XX` otherwise), everything else as it is, slashes
    /// included. Runs without escapes are copied whole. Not public: JSON leaves this module only
    /// through `encode`, so nothing else writes it by hand.
    static func appendString(_ text: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        var text = text
        text.withUTF8 { bytes in
            var runStart = 0
            for index in 0..<bytes.count {
                let byte = bytes[index]
                guard byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") else { continue }
                out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[runStart..<index]))
                runStart = index + 1
                out.append(UInt8(ascii: "\\"))
                switch byte {
                case UInt8(ascii: "\""): out.append(UInt8(ascii: "\""))
                case UInt8(ascii: "\\"): out.append(UInt8(ascii: "\\"))
                case 0x0A: out.append(UInt8(ascii: "n"))
                case 0x0D: out.append(UInt8(ascii: "r"))
                case 0x09: out.append(UInt8(ascii: "t"))
                case 0x08: out.append(UInt8(ascii: "b"))
                case 0x0C: out.append(UInt8(ascii: "f"))
                default:
                    out.append(contentsOf: "u00".utf8)
                    out.append(hexDigits[Int(byte >> 4)])
                    out.append(hexDigits[Int(byte & 0x0F)])
                }
            }
            out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[runStart...]))
        }
        out.append(UInt8(ascii: "\""))
    }

    private static let hexDigits = Array("0123456789abcdef".utf8)

    public static func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8]) throws -> T {
        try T(from: WireDecoder(value: parse(bytes), path: nil))
    }

    /// The document as a value tree (what `decode` reads from). Throws `DecodingError.dataCorrupted`.
    public static func parse(_ bytes: [UInt8]) throws -> WireValue {
        try bytes.withUnsafeBufferPointer { buffer in
            var parser = Parser(bytes: buffer)
            return try parser.document()
        }
    }
}

// MARK: - Values

/// A parsed JSON value. Numbers keep their text until a type asks for them.
public enum WireValue: Sendable {
    case null
    case bool(Bool)
    case number(String)
    case string(String)
    case array([WireValue])
    /// Members in document order, repeated keys included (small objects: a linear search beats
    /// hashing).
    case object([(String, WireValue)])

    var kindName: String {
        switch self {
        case .null: "null"
        case .bool: "a boolean"
        case .number: "a number"
        case .string: "a string"
        case .array: "an array"
        case .object: "an object"
        }
    }
}

/// The coding path as a linked list, built only as deep as values are nested and read only for
/// an error message.
final class WirePath: @unchecked Sendable {
    // @unchecked Sendable: immutable.
    let parent: WirePath?
    let key: any CodingKey
    init(parent: WirePath?, key: any CodingKey) {
        self.parent = parent
        self.key = key
    }

    static func keys(_ path: WirePath?) -> [any CodingKey] {
        var keys: [any CodingKey] = []
        var link = path
        while let current = link {
            keys.append(current.key)
            link = current.parent
        }
        return keys.reversed()
    }
}

struct WireIndexKey: CodingKey {
    var stringValue: String { "Index \(index)" }
    var intValue: Int? { index }
    let index: Int
    init(_ index: Int) { self.index = index }
    init?(stringValue: String) { nil }
    init?(intValue: Int) { self.index = intValue }
}

struct WireSuperKey: CodingKey {
    var stringValue: String { "super" }
    var intValue: Int? { nil }
    init() {}
    init?(stringValue: String) { nil }
    init?(intValue: Int) { nil }
}

// MARK: - Parsing

private struct Parser {
    let bytes: UnsafeBufferPointer<UInt8>
    var index = 0

    init(bytes: UnsafeBufferPointer<UInt8>) {
        self.bytes = bytes
    }

    mutating func document() throws -> WireValue {
        let value = try parseValue(depth: 0)
        skipSpace()
        guard index == bytes.count else { throw corrupt("unexpected text after the JSON value") }
        return value
    }

    private func corrupt(_ why: String) -> DecodingError {
        .dataCorrupted(.init(codingPath: [], debugDescription: "invalid JSON at byte \(index): \(why)"))
    }

    private mutating func skipSpace() {
        while index < bytes.count {
            switch bytes[index] {
            case 0x20, 0x0A, 0x0D, 0x09: index += 1
            default: return
            }
        }
    }

    private mutating func parseValue(depth: Int) throws -> WireValue {
        guard depth < WireJSON.depthMax else { throw corrupt("nested deeper than \(WireJSON.depthMax)") }
        skipSpace()
        guard index < bytes.count else { throw corrupt("unexpected end of input") }
        switch bytes[index] {
        case UInt8(ascii: "{"):
            index += 1
            var members: [(String, WireValue)] = []
            // The keys so far, once there are many: a small object's are looked through instead.
            var keys: Set<String>?
            skipSpace()
            if index < bytes.count, bytes[index] == UInt8(ascii: "}") {
                index += 1
                return .object(members)
            }
            while true {
                skipSpace()
                guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { throw corrupt("expected a key in quotes") }
                let keyAt = index
                let key = try parseString()
                // A key twice is refused (I-JSON, RFC 7493): parsers disagree on which one counts,
                // so a body a proxy checked by its first key could be acted on by its second here.
                // Objects are small: a look through the keys so far costs less than a set, until
                // there are 32 of them; then the set is made once and kept.
                let twice: Bool
                if keys != nil {
                    twice = !keys!.insert(key).inserted
                } else {
                    twice = members.contains { $0.0 == key }
                    if !twice, members.count == 31 { keys = Set(members.map(\.0) + [key]) }
                }
                if twice {
                    index = keyAt
                    throw corrupt("the key \"\(key.count > 40 ? key.prefix(40) + "…" : key)\" twice in one object")
                }
                skipSpace()
                guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { throw corrupt("expected ':' after a key") }
                index += 1
                members.append((key, try parseValue(depth: depth + 1)))
                skipSpace()
                guard index < bytes.count else { throw corrupt("unexpected end of input in an object") }
                if bytes[index] == UInt8(ascii: ",") { index += 1; continue }
                if bytes[index] == UInt8(ascii: "}") { index += 1; return .object(members) }
                throw corrupt("expected ',' or '}' in an object")
            }
        case UInt8(ascii: "["):
            index += 1
            var items: [WireValue] = []
            skipSpace()
            if index < bytes.count, bytes[index] == UInt8(ascii: "]") {
                index += 1
                return .array(items)
            }
            while true {
                items.append(try parseValue(depth: depth + 1))
                skipSpace()
                guard index < bytes.count else { throw corrupt("unexpected end of input in an array") }
                if bytes[index] == UInt8(ascii: ",") { index += 1; continue }
                if bytes[index] == UInt8(ascii: "]") { index += 1; return .array(items) }
                throw corrupt("expected ',' or ']' in an array")
            }
        case UInt8(ascii: "\""):
            return .string(try parseString())
        case UInt8(ascii: "t"):
            try literal("true")
            return .bool(true)
        case UInt8(ascii: "f"):
            try literal("false")
            return .bool(false)
        case UInt8(ascii: "n"):
            try literal("null")
            return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return .number(try parseNumber())
        default:
            throw corrupt("unexpected character")
        }
    }

    private mutating func literal(_ word: StaticString) throws {
        let count = word.utf8CodeUnitCount
        guard index + count <= bytes.count else { throw corrupt("unexpected end of input") }
        let expected = UnsafeBufferPointer(start: word.utf8Start, count: count)
        for offset in 0..<count where bytes[index + offset] != expected[offset] { throw corrupt("invalid literal") }
        index += count
    }

    /// RFC 8259 number syntax; the text is kept for the type that asks.
    private mutating func parseNumber() throws -> String {
        let start = index
        if bytes[index] == UInt8(ascii: "-") { index += 1 }
        func digits() -> Int {
            let begin = index
            while index < bytes.count, bytes[index] >= UInt8(ascii: "0"), bytes[index] <= UInt8(ascii: "9") { index += 1 }
            return index - begin
        }
        guard index < bytes.count else { throw corrupt("a lone '-'") }
        if bytes[index] == UInt8(ascii: "0") {
            index += 1
        } else if digits() == 0 {
            throw corrupt("a number needs digits")
        }
        if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
            index += 1
            guard digits() > 0 else { throw corrupt("a fraction needs digits") }
        }
        if index < bytes.count, bytes[index] | 0x20 == UInt8(ascii: "e") {
            index += 1
            if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") { index += 1 }
            guard digits() > 0 else { throw corrupt("an exponent needs digits") }
        }
        return String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
    }

    /// A string at `index` (on its opening quote), escapes resolved, UTF-8 validated.
    private mutating func parseString() throws -> String {
        index += 1
        let start = index
        // Fast path: no escape before the closing quote. ASCII needs no validation.
        var ascii = true
        while index < bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "\"") {
                let raw = UnsafeBufferPointer(rebasing: bytes[start..<index])
                index += 1
                if ascii { return String(decoding: raw, as: UTF8.self) }
                guard let text = String(validating: raw, as: UTF8.self) else { throw corrupt("a string is not valid UTF-8") }
                return text
            }
            if byte == UInt8(ascii: "\\") { break }
            if byte < 0x20 { throw corrupt("a control character in a string") }
            if byte >= 0x80 { ascii = false }
            index += 1
        }
        var scratch = Array(UnsafeBufferPointer(rebasing: bytes[start..<index]))
        while index < bytes.count {
            let byte = bytes[index]
            switch byte {
            case UInt8(ascii: "\""):
                index += 1
                guard let text = String(validating: scratch, as: UTF8.self) else { throw corrupt("a string is not valid UTF-8") }
                return text
            case UInt8(ascii: "\\"):
                index += 1
                guard index < bytes.count else { break }
                let escape = bytes[index]
                index += 1
                switch escape {
                case UInt8(ascii: "\""): scratch.append(0x22)
                case UInt8(ascii: "\\"): scratch.append(0x5C)
                case UInt8(ascii: "/"): scratch.append(0x2F)
                case UInt8(ascii: "b"): scratch.append(0x08)
                case UInt8(ascii: "f"): scratch.append(0x0C)
                case UInt8(ascii: "n"): scratch.append(0x0A)
                case UInt8(ascii: "r"): scratch.append(0x0D)
                case UInt8(ascii: "t"): scratch.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = try hex4()
                    if (0xD800..<0xDC00).contains(scalar) {
                        // A high surrogate must be followed by an escaped low one.
                        guard index + 1 < bytes.count, bytes[index] == UInt8(ascii: "\\"), bytes[index + 1] == UInt8(ascii: "u") else {
                            throw corrupt("a lone high surrogate")
                        }
                        index += 2
                        let low = try hex4()
                        guard (0xDC00..<0xE000).contains(low) else { throw corrupt("a high surrogate without a low one") }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    } else if (0xDC00..<0xE000).contains(scalar) {
                        throw corrupt("a lone low surrogate")
                    }
                    // SQLite (as GRDB binds text) ends a string at its first NUL: "a\u0000b" would be
                    // stored, compared and looked up as "a", two different ids as one. Refused here,
                    // where every request body and message is read.
                    guard scalar != 0 else { throw corrupt("a NUL character (\\u0000) in a string") }
                    guard let unicode = Unicode.Scalar(scalar) else { throw corrupt("an invalid \\u escape") }
                    scratch.append(contentsOf: String(Character(unicode)).utf8)
                default:
                    throw corrupt("an invalid escape")
                }
            default:
                if byte < 0x20 { throw corrupt("a control character in a string") }
                scratch.append(byte)
                index += 1
            }
        }
        throw corrupt("an unterminated string")
    }

    private mutating func hex4() throws -> UInt32 {
        guard index + 4 <= bytes.count else { throw corrupt("a short \\u escape") }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = bytes[index]
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: throw corrupt("a bad hex digit in a \\u escape")
            }
            value = value << 4 | UInt32(digit)
            index += 1
        }
        return value
    }
}

// MARK: - Decoding

struct WireDecoder: Decoder {
    let value: WireValue
    let path: WirePath?

    var codingPath: [any CodingKey] { WirePath.keys(path) }
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        guard case .object(let members) = value else {
            throw DecodingError.typeMismatch([String: Any].self, .init(codingPath: codingPath,
                debugDescription: "expected an object, found \(value.kindName)"))
        }
        return KeyedDecodingContainer(WireKeyedDecoding<Key>(members: members, path: path))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        guard case .array(let items) = value else {
            throw DecodingError.typeMismatch([Any].self, .init(codingPath: codingPath,
                debugDescription: "expected an array, found \(value.kindName)"))
        }
        return WireUnkeyedDecoding(items: items, path: path)
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer { WireSingleDecoding(value: value, path: path) }
}

/// Reads primitives out of a value, with the error Foundation's decoder would give.
enum WireRead {
    static func mismatch<T>(_ type: T.Type, _ value: WireValue, _ path: @autoclosure () -> [any CodingKey]) -> DecodingError {
        if case .null = value {
            return .valueNotFound(type, .init(codingPath: path(), debugDescription: "expected \(type), found null"))
        }
        return .typeMismatch(type, .init(codingPath: path(), debugDescription: "expected \(type), found \(value.kindName)"))
    }

    static func bool(_ value: WireValue, _ path: @autoclosure () -> [any CodingKey]) throws -> Bool {
        guard case .bool(let flag) = value else { throw mismatch(Bool.self, value, path()) }
        return flag
    }

    static func string(_ value: WireValue, _ path: @autoclosure () -> [any CodingKey]) throws -> String {
        guard case .string(let text) = value else { throw mismatch(String.self, value, path()) }
        return text
    }

    static func integer<T: FixedWidthInteger>(_ type: T.Type, _ value: WireValue, _ path: @autoclosure () -> [any CodingKey]) throws -> T {
        guard case .number(let text) = value else { throw mismatch(type, value, path()) }
        if let exact = T(text) { return exact }
        // "3.0" or "1e3": taken when the value is integral and fits.
        if let double = Double(text), double.rounded() == double, let exact = T(exactly: double) { return exact }
        throw DecodingError.dataCorrupted(.init(codingPath: path(), debugDescription: "number \(text) does not fit in \(type)"))
    }

    static func floating<T: BinaryFloatingPoint & LosslessStringConvertible>(_ type: T.Type, _ value: WireValue,
                                                                           _ path: @autoclosure () -> [any CodingKey]) throws -> T {
        guard case .number(let text) = value else { throw mismatch(type, value, path()) }
        guard let number = T(text), number.isFinite else {
            throw DecodingError.dataCorrupted(.init(codingPath: path(), debugDescription: "number \(text) does not fit in \(type)"))
        }
        return number
    }
}

struct WireKeyedDecoding<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let members: [(String, WireValue)]
    let path: WirePath?

    var codingPath: [any CodingKey] { WirePath.keys(path) }
    var allKeys: [Key] { members.compactMap { Key(stringValue: $0.0) } }

    /// The member named `key` (the last one if a document repeats a key).
    private func lookup(_ key: Key) -> WireValue? {
        let name = key.stringValue
        for index in members.indices.reversed() where members[index].0 == name { return members[index].1 }
        return nil
    }

    private func require(_ key: Key) throws -> WireValue {
        guard let value = lookup(key) else {
            throw DecodingError.keyNotFound(key, .init(codingPath: codingPath, debugDescription: "no value for key \"\(key.stringValue)\""))
        }
        return value
    }

    private func pathTo(_ key: Key) -> [any CodingKey] { codingPath + [key] }

    func contains(_ key: Key) -> Bool { lookup(key) != nil }

    func decodeNil(forKey key: Key) throws -> Bool {
        if case .null = try require(key) { return true }
        return false
    }

    func decode(_ type: Bool.Type, forKey key: Key) throws -> Bool { try WireRead.bool(require(key), pathTo(key)) }
    func decode(_ type: String.Type, forKey key: Key) throws -> String { try WireRead.string(require(key), pathTo(key)) }
    func decode(_ type: Double.Type, forKey key: Key) throws -> Double { try WireRead.floating(type, require(key), pathTo(key)) }
    func decode(_ type: Float.Type, forKey key: Key) throws -> Float { try WireRead.floating(type, require(key), pathTo(key)) }
    func decode(_ type: Int.Type, forKey key: Key) throws -> Int { try WireRead.integer(type, require(key), pathTo(key)) }
    func decode(_ type: Int8.Type, forKey key: Key) throws -> Int8 { try WireRead.integer(type, require(key), pathTo(key)) }
    func decode(_ type: Int16.Type, forKey key: Key) throws -> Int16 { try WireRead.integer(type, require(key), pathTo(key)) }
    func decode(_ type: Int32.Type, forKey key: Key) throws -> Int32 { try WireRead.integer(type, require(key), pathTo(key)) }
    func decode(_ type: Int64.Type, forKey key: Key) throws -> Int64 { try WireRead.integer(type, require(key), pathTo(key)) }
    func decode(_ type: UInt.Type, forKey key: Key) throws -> UInt { try WireRead.integer(type, require(key), pathTo(key)) }
    func decode(_ type: UInt8.Type, forKey key: Key) throws -> UInt8 { try WireRead.integer(type, require(key), pathTo(key)) }
    func decode(_ type: UInt16.Type, forKey key: Key) throws -> UInt16 { try WireRead.integer(type, require(key), pathTo(key)) }
    func decode(_ type: UInt32.Type, forKey key: Key) throws -> UInt32 { try WireRead.integer(type, require(key), pathTo(key)) }
    func decode(_ type: UInt64.Type, forKey key: Key) throws -> UInt64 { try WireRead.integer(type, require(key), pathTo(key)) }

    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
        try T(from: WireDecoder(value: require(key), path: WirePath(parent: path, key: key)))
    }

    func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws -> KeyedDecodingContainer<NestedKey> {
        try WireDecoder(value: require(key), path: WirePath(parent: path, key: key)).container(keyedBy: type)
    }

    func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
        try WireDecoder(value: require(key), path: WirePath(parent: path, key: key)).unkeyedContainer()
    }

    func superDecoder() throws -> any Decoder {
        let value = members.last(where: { $0.0 == "super" })?.1 ?? .null
        return WireDecoder(value: value, path: WirePath(parent: path, key: WireSuperKey()))
    }

    func superDecoder(forKey key: Key) throws -> any Decoder {
        WireDecoder(value: lookup(key) ?? .null, path: WirePath(parent: path, key: key))
    }
}

struct WireUnkeyedDecoding: UnkeyedDecodingContainer {
    let items: [WireValue]
    let path: WirePath?
    private(set) var currentIndex = 0

    init(items: [WireValue], path: WirePath?) {
        self.items = items
        self.path = path
    }

    var codingPath: [any CodingKey] { WirePath.keys(path) }
    var count: Int? { items.count }
    var isAtEnd: Bool { currentIndex >= items.count }

    private var here: [any CodingKey] { codingPath + [WireIndexKey(currentIndex)] }

    private mutating func next<T>(_ type: T.Type) throws -> WireValue {
        guard !isAtEnd else {
            throw DecodingError.valueNotFound(type, .init(codingPath: here, debugDescription: "unkeyed container is at its end"))
        }
        return items[currentIndex]
    }

    /// Reads the next item with `read`, moving on only if it succeeds (as Foundation's does).
    private mutating func take<T>(_ type: T.Type, _ read: (WireValue, () -> [any CodingKey]) throws -> T) throws -> T {
        let value = try next(type)
        let (path, index) = (self.path, currentIndex)
        let result = try read(value, { WirePath.keys(path) + [WireIndexKey(index)] })
        currentIndex += 1
        return result
    }

    mutating func decodeNil() throws -> Bool {
        guard case .null = try next(Any?.self) else { return false }
        currentIndex += 1
        return true
    }

    mutating func decode(_ type: Bool.Type) throws -> Bool { try take(type) { try WireRead.bool($0, $1()) } }
    mutating func decode(_ type: String.Type) throws -> String { try take(type) { try WireRead.string($0, $1()) } }
    mutating func decode(_ type: Double.Type) throws -> Double { try take(type) { try WireRead.floating(type, $0, $1()) } }
    mutating func decode(_ type: Float.Type) throws -> Float { try take(type) { try WireRead.floating(type, $0, $1()) } }
    mutating func decode(_ type: Int.Type) throws -> Int { try take(type) { try WireRead.integer(type, $0, $1()) } }
    mutating func decode(_ type: Int8.Type) throws -> Int8 { try take(type) { try WireRead.integer(type, $0, $1()) } }
    mutating func decode(_ type: Int16.Type) throws -> Int16 { try take(type) { try WireRead.integer(type, $0, $1()) } }
    mutating func decode(_ type: Int32.Type) throws -> Int32 { try take(type) { try WireRead.integer(type, $0, $1()) } }
    mutating func decode(_ type: Int64.Type) throws -> Int64 { try take(type) { try WireRead.integer(type, $0, $1()) } }
    mutating func decode(_ type: UInt.Type) throws -> UInt { try take(type) { try WireRead.integer(type, $0, $1()) } }
    mutating func decode(_ type: UInt8.Type) throws -> UInt8 { try take(type) { try WireRead.integer(type, $0, $1()) } }
    mutating func decode(_ type: UInt16.Type) throws -> UInt16 { try take(type) { try WireRead.integer(type, $0, $1()) } }
    mutating func decode(_ type: UInt32.Type) throws -> UInt32 { try take(type) { try WireRead.integer(type, $0, $1()) } }
    mutating func decode(_ type: UInt64.Type) throws -> UInt64 { try take(type) { try WireRead.integer(type, $0, $1()) } }

    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T {
        let link = WirePath(parent: path, key: WireIndexKey(currentIndex))
        return try take(type) { value, _ in try T(from: WireDecoder(value: value, path: link)) }
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws -> KeyedDecodingContainer<NestedKey> {
        let link = WirePath(parent: path, key: WireIndexKey(currentIndex))
        return try take(KeyedDecodingContainer<NestedKey>.self) { value, _ in try WireDecoder(value: value, path: link).container(keyedBy: type) }
    }

    mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer {
        let link = WirePath(parent: path, key: WireIndexKey(currentIndex))
        return try take((any UnkeyedDecodingContainer).self) { value, _ in try WireDecoder(value: value, path: link).unkeyedContainer() }
    }

    mutating func superDecoder() throws -> any Decoder {
        let link = WirePath(parent: path, key: WireIndexKey(currentIndex))
        return try take((any Decoder).self) { value, _ in WireDecoder(value: value, path: link) }
    }
}

struct WireSingleDecoding: SingleValueDecodingContainer {
    let value: WireValue
    let path: WirePath?

    var codingPath: [any CodingKey] { WirePath.keys(path) }

    func decodeNil() -> Bool {
        if case .null = value { return true }
        return false
    }

    func decode(_ type: Bool.Type) throws -> Bool { try WireRead.bool(value, codingPath) }
    func decode(_ type: String.Type) throws -> String { try WireRead.string(value, codingPath) }
    func decode(_ type: Double.Type) throws -> Double { try WireRead.floating(type, value, codingPath) }
    func decode(_ type: Float.Type) throws -> Float { try WireRead.floating(type, value, codingPath) }
    func decode(_ type: Int.Type) throws -> Int { try WireRead.integer(type, value, codingPath) }
    func decode(_ type: Int8.Type) throws -> Int8 { try WireRead.integer(type, value, codingPath) }
    func decode(_ type: Int16.Type) throws -> Int16 { try WireRead.integer(type, value, codingPath) }
    func decode(_ type: Int32.Type) throws -> Int32 { try WireRead.integer(type, value, codingPath) }
    func decode(_ type: Int64.Type) throws -> Int64 { try WireRead.integer(type, value, codingPath) }
    func decode(_ type: UInt.Type) throws -> UInt { try WireRead.integer(type, value, codingPath) }
    func decode(_ type: UInt8.Type) throws -> UInt8 { try WireRead.integer(type, value, codingPath) }
    func decode(_ type: UInt16.Type) throws -> UInt16 { try WireRead.integer(type, value, codingPath) }
    func decode(_ type: UInt32.Type) throws -> UInt32 { try WireRead.integer(type, value, codingPath) }
    func decode(_ type: UInt64.Type) throws -> UInt64 { try WireRead.integer(type, value, codingPath) }
    func decode<T: Decodable>(_ type: T.Type) throws -> T { try T(from: WireDecoder(value: value, path: path)) }
}

// MARK: - Encoding

/// JSON written piece by piece, byte for byte what `WireJSON.encode` writes for the same values
/// (strings escaped alike, numbers in the same form), for a hot type whose shape is fixed: an
/// event envelope, whose `Codable` path built two trees (`WireValue`, then `WireNode` boxes)
/// before writing a byte. The caller writes objects' keys in sorted order, as `encode` does.
public struct WireTextWriter {
    public private(set) var bytes: [UInt8] = []

    public init(capacity: Int = 256) { bytes.reserveCapacity(capacity) }

    /// Punctuation, a literal, or an object key with nothing to escape, as it is.
    @inline(__always)
    public mutating func raw(_ text: StaticString) {
        bytes.append(contentsOf: UnsafeBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
    }

    /// A JSON string, escaped as `encode` escapes it.
    public mutating func string(_ text: String) { WireJSON.appendString(text, to: &bytes) }

    public mutating func integer(_ value: Int64) { bytes.append(contentsOf: String(value).utf8) }

    /// A number as `encode` writes a `Double`; false (nothing written) for NaN and infinities.
    public mutating func number(_ value: Double) -> Bool {
        guard let text = WireJSON.numberText(value) else { return false }
        bytes.append(contentsOf: text.utf8)
        return true
    }

    public var text: String { String(decoding: bytes, as: UTF8.self) }
}

/// A value being encoded. Containers are boxes so that a container handed out keeps writing
/// into its parent after the call that made it returned (the `Encoder` contract).
enum WireNode {
    case null
    case bool(Bool)
    case number(String)
    case string(String)
    case array(WireArrayBox)
    case object(WireObjectBox)
    /// One JSON value's text, written as it is (`WireTreeEncoder.encodeRawJSON`).
    case raw(String)

    func write(into out: inout [UInt8]) {
        switch self {
        case .raw(let text): out.append(contentsOf: text.utf8)
        case .null: out.append(contentsOf: "null".utf8)
        case .bool(let flag): out.append(contentsOf: (flag ? "true" : "false").utf8)
        case .number(let text): out.append(contentsOf: text.utf8)
        case .string(let text): WireNode.writeString(text, into: &out)
        case .array(let box):
            out.append(UInt8(ascii: "["))
            for (offset, item) in box.items.enumerated() {
                if offset > 0 { out.append(UInt8(ascii: ",")) }
                item.write(into: &out)
            }
            out.append(UInt8(ascii: "]"))
        case .object(let box):
            out.append(UInt8(ascii: "{"))
            // Sorted keys, as `JSONCoding` writes them; a key written twice keeps its last value
            // (the sort is stable). Sorted in the box itself: a sorted copy cost an allocation
            // per object (heaptrack: one in nine of a busy service's).
            if box.members.count > 1 {
                box.members.sort { $0.0.utf8.lexicographicallyPrecedes($1.0.utf8) }
            }
            let members = box.members
            var first = true
            for (offset, member) in members.enumerated() {
                if offset + 1 < members.count, members[offset + 1].0 == member.0 { continue }
                if !first { out.append(UInt8(ascii: ",")) }
                first = false
                WireNode.writeString(member.0, into: &out)
                out.append(UInt8(ascii: ":"))
                member.1.write(into: &out)
            }
            out.append(UInt8(ascii: "}"))
        }
    }

    static func writeString(_ text: String, into out: inout [UInt8]) { WireJSON.appendString(text, to: &out) }

    static func number<T: BinaryInteger>(_ value: T) -> WireNode { .number(String(value)) }

    /// Integral values without a fraction (as JSONEncoder writes them), others in Swift's shortest
    /// round-tripping form; NaN and infinities have no JSON form.
    static func number<T: BinaryFloatingPoint & LosslessStringConvertible>(_ value: T, _ path: @autoclosure () -> [any CodingKey]) throws -> WireNode {
        guard value.isFinite else {
            throw EncodingError.invalidValue(value, .init(codingPath: path(), debugDescription: "\(value) has no JSON form"))
        }
        if value == value.rounded(), abs(value) < 1e15 { return .number(String(Int64(value))) }
        return .number(value.description)
    }
}

final class WireArrayBox {
    var items: [WireNode] = []
}

final class WireObjectBox {
    var members: [(String, WireNode)] = []
}

final class WireEncoder: Encoder {
    let path: WirePath?
    /// What was encoded; a container asked for twice is the same box.
    var root: WireNode?

    init(path: WirePath?) {
        self.path = path
    }

    var codingPath: [any CodingKey] { WirePath.keys(path) }
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        let box: WireObjectBox
        if case .object(let existing) = root {
            box = existing
        } else {
            box = WireObjectBox()
            root = .object(box)
        }
        return KeyedEncodingContainer(WireKeyedEncoding<Key>(box: box, path: path))
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        let box: WireArrayBox
        if case .array(let existing) = root {
            box = existing
        } else {
            box = WireArrayBox()
            root = .array(box)
        }
        return WireUnkeyedEncoding(box: box, path: path)
    }

    func singleValueContainer() -> any SingleValueEncodingContainer { WireSingleEncoding(encoder: self) }

    /// Encodes `value` as a child at `key`: primitives directly, others through a sub-encoder.
    static func node<T: Encodable>(_ value: T, at link: @autoclosure () -> WirePath) throws -> WireNode {
        // The commonest leaves without a sub-encoder and its path (two allocations): the type is
        // compared by identity, cheaper than a cast. Containers of the standard library hand
        // every element here, as a generic value (an `[Int64]` too).
        if T.self == String.self { return .string(unsafeBitCast(value, to: String.self)) }
        if T.self == Int.self { return WireNode.number(unsafeBitCast(value, to: Int.self)) }
        if T.self == Bool.self { return .bool(unsafeBitCast(value, to: Bool.self)) }
        if T.self == Int64.self { return WireNode.number(unsafeBitCast(value, to: Int64.self)) }
        if T.self == UInt64.self { return WireNode.number(unsafeBitCast(value, to: UInt64.self)) }
        if T.self == Double.self { return try WireNode.number(unsafeBitCast(value, to: Double.self), WirePath.keys(link())) }
        let encoder = WireEncoder(path: link())
        try value.encode(to: encoder)
        // A type that encodes nothing becomes an empty object, as with JSONEncoder.
        return encoder.root ?? .object(WireObjectBox())
    }
}

struct WireKeyedEncoding<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let box: WireObjectBox
    let path: WirePath?

    var codingPath: [any CodingKey] { WirePath.keys(path) }

    private func put(_ node: WireNode, _ key: Key) { box.members.append((key.stringValue, node)) }

    mutating func encodeNil(forKey key: Key) throws { put(.null, key) }
    mutating func encode(_ value: Bool, forKey key: Key) throws { put(.bool(value), key) }
    mutating func encode(_ value: String, forKey key: Key) throws { put(.string(value), key) }
    mutating func encode(_ value: Double, forKey key: Key) throws { put(try WireNode.number(value, codingPath + [key]), key) }
    mutating func encode(_ value: Float, forKey key: Key) throws { put(try WireNode.number(value, codingPath + [key]), key) }
    mutating func encode(_ value: Int, forKey key: Key) throws { put(WireNode.number(value), key) }
    mutating func encode(_ value: Int8, forKey key: Key) throws { put(WireNode.number(value), key) }
    mutating func encode(_ value: Int16, forKey key: Key) throws { put(WireNode.number(value), key) }
    mutating func encode(_ value: Int32, forKey key: Key) throws { put(WireNode.number(value), key) }
    mutating func encode(_ value: Int64, forKey key: Key) throws { put(WireNode.number(value), key) }
    mutating func encode(_ value: UInt, forKey key: Key) throws { put(WireNode.number(value), key) }
    mutating func encode(_ value: UInt8, forKey key: Key) throws { put(WireNode.number(value), key) }
    mutating func encode(_ value: UInt16, forKey key: Key) throws { put(WireNode.number(value), key) }
    mutating func encode(_ value: UInt32, forKey key: Key) throws { put(WireNode.number(value), key) }
    mutating func encode(_ value: UInt64, forKey key: Key) throws { put(WireNode.number(value), key) }
    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
        put(try WireEncoder.node(value, at: WirePath(parent: path, key: key)), key)
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type, forKey key: Key) -> KeyedEncodingContainer<NestedKey> {
        let nested = WireObjectBox()
        put(.object(nested), key)
        return KeyedEncodingContainer(WireKeyedEncoding<NestedKey>(box: nested, path: WirePath(parent: path, key: key)))
    }

    mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
        let nested = WireArrayBox()
        put(.array(nested), key)
        return WireUnkeyedEncoding(box: nested, path: WirePath(parent: path, key: key))
    }

    mutating func superEncoder() -> any Encoder { WireReferencingEncoder(object: box, key: "super", path: WirePath(parent: path, key: WireSuperKey())) }
    mutating func superEncoder(forKey key: Key) -> any Encoder {
        WireReferencingEncoder(object: box, key: key.stringValue, path: WirePath(parent: path, key: key))
    }
}

struct WireUnkeyedEncoding: UnkeyedEncodingContainer {
    let box: WireArrayBox
    let path: WirePath?

    var codingPath: [any CodingKey] { WirePath.keys(path) }
    var count: Int { box.items.count }

    private var nextPath: [any CodingKey] { codingPath + [WireIndexKey(count)] }

    mutating func encodeNil() throws { box.items.append(.null) }
    mutating func encode(_ value: Bool) throws { box.items.append(.bool(value)) }
    mutating func encode(_ value: String) throws { box.items.append(.string(value)) }
    mutating func encode(_ value: Double) throws { box.items.append(try WireNode.number(value, nextPath)) }
    mutating func encode(_ value: Float) throws { box.items.append(try WireNode.number(value, nextPath)) }
    mutating func encode(_ value: Int) throws { box.items.append(WireNode.number(value)) }
    mutating func encode(_ value: Int8) throws { box.items.append(WireNode.number(value)) }
    mutating func encode(_ value: Int16) throws { box.items.append(WireNode.number(value)) }
    mutating func encode(_ value: Int32) throws { box.items.append(WireNode.number(value)) }
    mutating func encode(_ value: Int64) throws { box.items.append(WireNode.number(value)) }
    mutating func encode(_ value: UInt) throws { box.items.append(WireNode.number(value)) }
    mutating func encode(_ value: UInt8) throws { box.items.append(WireNode.number(value)) }
    mutating func encode(_ value: UInt16) throws { box.items.append(WireNode.number(value)) }
    mutating func encode(_ value: UInt32) throws { box.items.append(WireNode.number(value)) }
    mutating func encode(_ value: UInt64) throws { box.items.append(WireNode.number(value)) }
    mutating func encode<T: Encodable>(_ value: T) throws {
        box.items.append(try WireEncoder.node(value, at: WirePath(parent: path, key: WireIndexKey(count))))
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type) -> KeyedEncodingContainer<NestedKey> {
        let nested = WireObjectBox()
        let link = WirePath(parent: path, key: WireIndexKey(count))
        box.items.append(.object(nested))
        return KeyedEncodingContainer(WireKeyedEncoding<NestedKey>(box: nested, path: link))
    }

    mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer {
        let nested = WireArrayBox()
        let link = WirePath(parent: path, key: WireIndexKey(count))
        box.items.append(.array(nested))
        return WireUnkeyedEncoding(box: nested, path: link)
    }

    mutating func superEncoder() -> any Encoder {
        let index = count
        box.items.append(.null)
        return WireReferencingEncoder(array: box, index: index, path: WirePath(parent: path, key: WireIndexKey(index)))
    }
}

struct WireSingleEncoding: SingleValueEncodingContainer {
    let encoder: WireEncoder

    var codingPath: [any CodingKey] { encoder.codingPath }

    private func set(_ node: WireNode) { encoder.root = node }

    mutating func encodeNil() throws { set(.null) }
    mutating func encode(_ value: Bool) throws { set(.bool(value)) }
    mutating func encode(_ value: String) throws { set(.string(value)) }
    mutating func encode(_ value: Double) throws { set(try WireNode.number(value, codingPath)) }
    mutating func encode(_ value: Float) throws { set(try WireNode.number(value, codingPath)) }
    mutating func encode(_ value: Int) throws { set(WireNode.number(value)) }
    mutating func encode(_ value: Int8) throws { set(WireNode.number(value)) }
    mutating func encode(_ value: Int16) throws { set(WireNode.number(value)) }
    mutating func encode(_ value: Int32) throws { set(WireNode.number(value)) }
    mutating func encode(_ value: Int64) throws { set(WireNode.number(value)) }
    mutating func encode(_ value: UInt) throws { set(WireNode.number(value)) }
    mutating func encode(_ value: UInt8) throws { set(WireNode.number(value)) }
    mutating func encode(_ value: UInt16) throws { set(WireNode.number(value)) }
    mutating func encode(_ value: UInt32) throws { set(WireNode.number(value)) }
    mutating func encode(_ value: UInt64) throws { set(WireNode.number(value)) }
    mutating func encode<T: Encodable>(_ value: T) throws {
        let child = WireEncoder(path: encoder.path)
        try value.encode(to: child)
        set(child.root ?? .object(WireObjectBox()))
    }
}

/// The encoder of `superEncoder()`: what it encodes lands in its parent's slot when it is done
/// (it writes through as it goes, since there is no "done" in the protocol).
final class WireReferencingEncoder: Encoder {
    private enum Slot {
        case member(WireObjectBox, String)
        case item(WireArrayBox, Int)
    }

    private let slot: Slot
    private let inner: WireEncoder

    init(object: WireObjectBox, key: String, path: WirePath) {
        slot = .member(object, key)
        inner = WireEncoder(path: path)
    }

    init(array: WireArrayBox, index: Int, path: WirePath) {
        slot = .item(array, index)
        inner = WireEncoder(path: path)
    }

    var codingPath: [any CodingKey] { inner.codingPath }
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    private func publish() {
        let node = inner.root ?? .object(WireObjectBox())
        switch slot {
        case .member(let box, let key):
            if let index = box.members.lastIndex(where: { $0.0 == key }) { box.members[index].1 = node } else { box.members.append((key, node)) }
        case .item(let box, let index):
            box.items[index] = node
        }
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        let container = inner.container(keyedBy: type)
        publish()
        return container
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        let container = inner.unkeyedContainer()
        publish()
        return container
    }

    func singleValueContainer() -> any SingleValueEncodingContainer {
        WirePublishingSingle(inner: WireSingleEncoding(encoder: inner), publish: publish)
    }

    fileprivate struct WirePublishingSingle: SingleValueEncodingContainer {
        var inner: WireSingleEncoding
        let publish: () -> Void
        var codingPath: [any CodingKey] { inner.codingPath }
        mutating func encodeNil() throws { try inner.encodeNil(); publish() }
        mutating func encode(_ value: Bool) throws { try inner.encode(value); publish() }
        mutating func encode(_ value: String) throws { try inner.encode(value); publish() }
        mutating func encode(_ value: Double) throws { try inner.encode(value); publish() }
        mutating func encode(_ value: Float) throws { try inner.encode(value); publish() }
        mutating func encode(_ value: Int) throws { try inner.encode(value); publish() }
        mutating func encode(_ value: Int8) throws { try inner.encode(value); publish() }
        mutating func encode(_ value: Int16) throws { try inner.encode(value); publish() }
        mutating func encode(_ value: Int32) throws { try inner.encode(value); publish() }
        mutating func encode(_ value: Int64) throws { try inner.encode(value); publish() }
        mutating func encode(_ value: UInt) throws { try inner.encode(value); publish() }
        mutating func encode(_ value: UInt8) throws { try inner.encode(value); publish() }
        mutating func encode(_ value: UInt16) throws { try inner.encode(value); publish() }
        mutating func encode(_ value: UInt32) throws { try inner.encode(value); publish() }
        mutating func encode(_ value: UInt64) throws { try inner.encode(value); publish() }
        mutating func encode<T: Encodable>(_ value: T) throws { try inner.encode(value); publish() }
    }
}

// MARK: - Trees

/// A decoder that holds its value as parsed JSON: a type that is itself a JSON tree (ERPCore's
/// `JSONValue`) takes the value whole instead of probing it type by type.
public protocol WireTreeDecoder: Decoder {
    var wireValue: WireValue { get }
}

/// An encoder that can take a JSON tree whole (the other half of `WireTreeDecoder`).
public protocol WireTreeEncoder: Encoder {
    func encodeTree(_ value: WireValue)
    /// Takes `text`, one JSON value as `WireJSON.encode` writes it, to be written as it is: a
    /// value that carries the text it was read from or already wrote (an event envelope relayed
    /// from an outbox or delivered from the bus's log) is not encoded again at every hop. The
    /// caller vouches for the text: it is not checked.
    func encodeRawJSON(_ text: String)
}

extension WireDecoder: WireTreeDecoder {
    public var wireValue: WireValue { value }
}

extension WireEncoder: WireTreeEncoder {
    public func encodeTree(_ value: WireValue) { root = WireNode(value) }
    public func encodeRawJSON(_ text: String) { root = .raw(text) }
}

extension WireNode {
    init(_ value: WireValue) {
        switch value {
        case .null: self = .null
        case .bool(let flag): self = .bool(flag)
        case .number(let text): self = .number(text)
        case .string(let text): self = .string(text)
        case .array(let items):
            let box = WireArrayBox()
            box.items = items.map(WireNode.init)
            self = .array(box)
        case .object(let members):
            let box = WireObjectBox()
            box.members = members.map { ($0.0, WireNode($0.1)) }
            self = .object(box)
        }
    }

    /// The tree as values, objects in written (sorted) order, a key written twice keeping its last value.
    var value: WireValue {
        switch self {
        // Only `WireJSON.tree` of a value holding raw text gets here: its text parsed, as the
        // tree of what `encode` writes (text that does not parse, which `encodeRawJSON` rules
        // out, would be null).
        case .raw(let text): return (try? WireJSON.parse(Array(text.utf8))) ?? .null
        case .null: return .null
        case .bool(let flag): return .bool(flag)
        case .number(let text): return .number(text)
        case .string(let text): return .string(text)
        case .array(let box): return .array(box.items.map(\.value))
        case .object(let box):
            var members = box.members
            if members.count > 1 { members.sort { $0.0.utf8.lexicographicallyPrecedes($1.0.utf8) } }
            var out: [(String, WireValue)] = []
            out.reserveCapacity(members.count)
            for (offset, member) in members.enumerated() where offset + 1 == members.count || members[offset + 1].0 != member.0 {
                out.append((member.0, member.1.value))
            }
            return .object(out)
        }
    }
}

extension WireJSON {
    /// `value` as a JSON tree, without writing text: what the text `encode` writes, parsed.
    public static func tree<T: Encodable>(_ value: T) throws -> WireValue {
        let encoder = WireEncoder(path: nil)
        try value.encode(to: encoder)
        guard let root = encoder.root else {
            throw EncodingError.invalidValue(value, .init(codingPath: [], debugDescription: "\(T.self) encoded nothing"))
        }
        return root.value
    }

    /// Reads a `T` out of a JSON tree, as `decode` reads it out of text.
    public static func decode<T: Decodable>(_ type: T.Type, from tree: WireValue) throws -> T {
        try T(from: WireDecoder(value: tree, path: nil))
    }

    /// A number's JSON text: integral values without a fraction, others in Swift's shortest
    /// round-tripping form (what the encoder writes for a `Double`). Nil for NaN and infinities.
    public static func numberText(_ value: Double) -> String? {
        guard value.isFinite else { return nil }
        if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
        return value.description
    }
}
