import Crypto
import Foundation

/// SHA-256 of bytes as lowercase hex, as the trace hash is written: what a report records of
/// the files its run read.
public enum ContentDigest {
    public static func sha256Hex(_ bytes: Data) -> String {
        SHA256.hash(data: bytes).map { String(format: "%02x", $0) }.joined()
    }
}
