import ERPWire
import Foundation

/// A JSON document held as a value: the `data` of an event envelope. Objects encode with sorted
/// keys (see `JSONCoding`) so that the same value always has the same bytes.
public enum JSONValue: Hashable, Sendable, Codable {
    case null
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    public init(from decoder: any Decoder) throws {
        if let tree = decoder as? any WireTreeDecoder {
            self.init(tree.wireValue)
            return
        }
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null }
        else if let b = try? c.decode(Bool.self) { self = .bool(b) }
        else if let i = try? c.decode(Int64.self) { self = .int(i) }
        else if let d = try? c.decode(Double.self) { self = .double(d) }
        else if let s = try? c.decode(String.self) { self = .string(s) }
        else if let a = try? c.decode([JSONValue].self) { self = .array(a) }
        else { self = .object(try c.decode([String: JSONValue].self)) }
    }

    public func encode(to encoder: any Encoder) throws {
        if let tree = encoder as? any WireTreeEncoder {
            tree.encodeTree(try wireValue())
            return
        }
        var c = encoder.singleValueContainer()
        switch self {
        case .null: try c.encodeNil()
        case .bool(let b): try c.encode(b)
        case .int(let i): try c.encode(i)
        case .double(let d): try c.encode(d)
        case .string(let s): try c.encode(s)
        case .array(let a): try c.encode(a)
        case .object(let o): try c.encode(o)
        }
    }

    /// The value of a parsed JSON tree. A number is an `int` when its text is a whole number
    /// within Int64, a `double` otherwise.
    public init(_ tree: WireValue) {
        switch tree {
        case .null: self = .null
        case .bool(let flag): self = .bool(flag)
        case .number(let text):
            if let int = Int64(text) { self = .int(int) } else { self = .double(Double(text) ?? .nan) }
        case .string(let text): self = .string(text)
        case .array(let items): self = .array(items.map(JSONValue.init))
        case .object(let members):
            var object: [String: JSONValue] = [:]
            object.reserveCapacity(members.count)
            for (key, value) in members { object[key] = JSONValue(value) }
            self = .object(object)
        }
    }

    /// The value as a JSON tree, object keys sorted (as they are written). Throws for a NaN or an
    /// infinity, which JSON cannot hold.
    public func wireValue() throws -> WireValue {
        switch self {
        case .null: return .null
        case .bool(let flag): return .bool(flag)
        case .int(let int): return .number(String(int))
        case .double(let double):
            guard let text = WireJSON.numberText(double) else {
                throw EncodingError.invalidValue(double, .init(codingPath: [], debugDescription: "\(double) has no JSON form"))
            }
            return .number(text)
        case .string(let text): return .string(text)
        case .array(let items): return .array(try items.map { try $0.wireValue() })
        case .object(let object):
            return .object(try object.keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }.map { ($0, try object[$0]!.wireValue()) })
        }
    }

    /// Writes the value as `JSONCoding` encodes it (objects' keys sorted by their UTF-8 bytes),
    /// without the trees the `Codable` path builds on the way.
    public func write(into out: inout WireTextWriter) throws {
        switch self {
        case .null: out.raw("null")
        case .bool(let flag): if flag { out.raw("true") } else { out.raw("false") }
        case .int(let int): out.integer(int)
        case .double(let double):
            guard out.number(double) else {
                throw EncodingError.invalidValue(double, .init(codingPath: [], debugDescription: "\(double) has no JSON form"))
            }
        case .string(let text): out.string(text)
        case .array(let items):
            out.raw("[")
            for (offset, item) in items.enumerated() {
                if offset > 0 { out.raw(",") }
                try item.write(into: &out)
            }
            out.raw("]")
        case .object(let object):
            out.raw("{")
            for (offset, key) in object.keys.sorted(by: { $0.utf8.lexicographicallyPrecedes($1.utf8) }).enumerated() {
                if offset > 0 { out.raw(",") }
                out.string(key)
                out.raw(":")
                try object[key]!.write(into: &out)
            }
            out.raw("}")
        }
    }

    public subscript(key: String) -> JSONValue? {
        if case .object(let o) = self { return o[key] }
        return nil
    }
}

/// The one JSON configuration used for envelopes, outbox rows and reports: sorted keys, so bytes
/// are reproducible across processes.
public enum JSONCoding {
    public static func encoder() -> JSONEncoder {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return e
    }
    // Encoding and decoding go through `WireJSON`, which writes the same bytes as the Foundation
    // encoder configured above (sorted keys, slashes unescaped, integral numbers without a
    // fraction) in a fraction of its time: Foundation's JSONDecoder was a tenth of a simulated
    // order's CPU. `encoder()` stays for reports, which want pretty printing.
    public static func encode<T: Encodable>(_ value: T) throws -> Data { Data(try WireJSON.encode(value)) }
    public static func encodeString<T: Encodable>(_ value: T) throws -> String {
        String(decoding: try WireJSON.encode(value), as: UTF8.self)
    }
    public static func decode<T: Decodable>(_ type: T.Type, from data: Data) throws -> T {
        try WireJSON.decode(type, from: [UInt8](data))
    }
    public static func decode<T: Decodable>(_ type: T.Type, from text: String) throws -> T {
        try WireJSON.decode(type, from: Array(text.utf8))
    }
    /// Converts between a typed value and a `JSONValue` as trees, writing no text.
    public static func toJSONValue<T: Encodable>(_ value: T) throws -> JSONValue {
        JSONValue(try WireJSON.tree(value))
    }
    public static func fromJSONValue<T: Decodable>(_ type: T.Type, _ value: JSONValue) throws -> T {
        try WireJSON.decode(type, from: value.wireValue())
    }
}
