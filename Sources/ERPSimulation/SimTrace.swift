import Crypto
import Foundation

/// Everything that happened in a world, in order: sends, deliveries, drops, timers of note, faults
/// and service state transitions. Its SHA-256 is the run's fingerprint: the same scenario, seed and
/// code give the same hash in any process.
public final class SimTrace: @unchecked Sendable {
    private var hasher = SHA256()
    private var sink: FileHandle?
    private var buffer: [UInt8] = []
    public private(set) var lineCount = 0
    /// When false, nothing is hashed or written (benchmarks measure the transport, not the trace).
    public let enabled: Bool
    /// Sees every line as it is appended (a runner counting what it reports).
    public var observer: ((String) -> Void)?

    public init(enabled: Bool = true, writingTo path: String? = nil) throws {
        self.enabled = enabled
        if let path {
            guard FileManager.default.createFile(atPath: path, contents: nil),
                  let handle = FileHandle(forWritingAtPath: path) else {
                throw CocoaError(.fileWriteNoPermission, userInfo: [NSFilePathErrorKey: path])
            }
            sink = handle
        }
    }

    /// Appends one line. `time` is virtual nanoseconds since the world's start.
    @inline(__always)
    public func append(_ time: Int64, _ line: @autoclosure () -> String) {
        guard enabled else { return }
        var text = Self.format(time)
        text += " "
        let body = line()
        observer?(body)
        text += body
        text += "\n"
        let bytes = Array(text.utf8)
        hasher.update(data: bytes)
        lineCount += 1
        if sink != nil {
            buffer.append(contentsOf: bytes)
            if buffer.count >= 1 << 16 { flush() }
        }
    }

    /// `12.345678s`: seconds since start with microseconds.
    static func format(_ ns: Int64) -> String {
        let us = ns / 1_000
        let seconds = us / 1_000_000
        let fraction = String(us % 1_000_000)
        return "\(seconds)." + String(repeating: "0", count: 6 - fraction.count) + fraction + "s"
    }

    public func flush() {
        guard let sink, !buffer.isEmpty else { return }
        sink.write(Data(buffer))
        buffer.removeAll(keepingCapacity: true)
    }

    /// The hex SHA-256 of every line so far. Call once, at the end.
    public func finish() -> String {
        releaseBuffer()
        try? sink?.close()
        sink = nil
        return hasher.finalize().map { String(format: "%02x", $0) }.joined()
    }

    /// Gives back the write buffer's memory (64 KB and more); lines written after this still go out.
    func releaseBuffer() {
        flush()
        buffer = []
    }
}
