import Crypto
import Foundation

/// SHA-256 of bytes as lowercase hex, as the trace hash is written: what a report records of
/// the files its run read.
public enum ContentDigest {
    public static func sha256Hex(_ bytes: Data) -> String { hex(SHA256.hash(data: bytes)) }

    /// A digest's bytes as lowercase hex (the trace hash's form too).
    static func hex(_ digest: some Sequence<UInt8>) -> String { digest.map { String(format: "%02x", $0) }.joined() }
}
