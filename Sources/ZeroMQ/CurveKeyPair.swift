import CZeroMQ

/// A CURVE key pair in Z85 text (40 characters each, the form libzmq's options and config files
/// use). `description` shows only the public key so the secret never reaches a log by accident.
public struct CurveKeyPair: Sendable, Hashable, CustomStringConvertible {
    public let publicKey: String
    public let secretKey: String

    /// The length of a Z85-encoded 32-byte CURVE key.
    public static let z85Length = 40

    /// A new random key pair from `zmq_curve_keypair`.
    public static func generate() throws -> CurveKeyPair {
        guard ZMQContext.hasCurve else {
            throw ZeroMQError(.curveUnavailable, message: "this libzmq was built without CURVE")
        }
        var publicText = [CChar](repeating: 0, count: z85Length + 1)
        var secretText = [CChar](repeating: 0, count: z85Length + 1)
        guard zmq_curve_keypair(&publicText, &secretText) == 0 else {
            throw ZeroMQError.last("zmq_curve_keypair")
        }
        return CurveKeyPair(
            checkedPublicKey: String(decoding: publicText.prefix(z85Length).map { UInt8(bitPattern: $0) }, as: UTF8.self),
            secretKey: String(decoding: secretText.prefix(z85Length).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        )
    }

    /// The key pair of an existing secret key (Z85); the public key is derived with `zmq_curve_public`.
    public init(secretKey: String) throws {
        try Self.validate(secretKey, what: "secret key")
        var publicText = [CChar](repeating: 0, count: Self.z85Length + 1)
        guard zmq_curve_public(&publicText, secretKey) == 0 else {
            throw ZeroMQError.last("zmq_curve_public")
        }
        self.init(
            checkedPublicKey: String(decoding: publicText.prefix(Self.z85Length).map { UInt8(bitPattern: $0) }, as: UTF8.self),
            secretKey: secretKey
        )
    }

    private init(checkedPublicKey: String, secretKey: String) {
        self.publicKey = checkedPublicKey
        self.secretKey = secretKey
    }

    public var description: String { "CurveKeyPair(public: \(publicKey))" }

    /// Throws `invalidArgument` unless `key` is 40 characters of the Z85 alphabet.
    public static func validate(_ key: String, what: String = "key") throws {
        guard isValid(key) else {
            throw ZeroMQError(.invalidArgument, message: "a CURVE \(what) is \(z85Length) Z85 characters")
        }
    }

    /// True when `key` is 40 characters of the Z85 alphabet.
    public static func isValid(_ key: String) -> Bool {
        key.utf8.count == z85Length && key.utf8.allSatisfy(isZ85)
    }

    /// The 32 raw bytes of a Z85 key, or nil when the text is not a valid key.
    static func decode(z85 key: String) -> [UInt8]? {
        guard isValid(key) else { return nil }
        var bytes = [UInt8](repeating: 0, count: 32)
        guard zmq_z85_decode(&bytes, key) != nil else { return nil }
        return bytes
    }

    /// The Z85 text of 32 raw key bytes (the CURVE credentials frame of a ZAP request).
    static func encode(raw bytes: [UInt8]) -> String? {
        guard bytes.count == 32 else { return nil }
        var text = [CChar](repeating: 0, count: z85Length + 1)
        guard zmq_z85_encode(&text, bytes, bytes.count) != nil else { return nil }
        return String(decoding: text.prefix(z85Length).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    private static let z85Alphabet = Set(
        "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#".utf8
    )
    private static func isZ85(_ byte: UInt8) -> Bool { z85Alphabet.contains(byte) }
}
