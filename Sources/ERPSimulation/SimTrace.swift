import Crypto
import ERPCore
import Foundation

/// Everything that happened in a world, in order: sends, deliveries, drops, timers of note, faults
/// and service state transitions. Its SHA-256 is the run's fingerprint: the same scenario, seed and
/// code give the same hash in any process.
public final class SimTrace: @unchecked Sendable {
    private var hasher = SHA256()
    private var sink: FileHandle?
    private var buffer = LineWriter()
    public private(set) var lineCount = 0
    /// When false, nothing is hashed or written (benchmarks measure the transport, not the trace).
    public let enabled: Bool
    /// Sees every line's text (UTF-8, without its time; valid during the call) as it is appended:
    /// a runner counting what it reports. It must not append to the trace itself.
    public var observer: ((UnsafeBufferPointer<UInt8>) -> Void)?

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
    ///
    /// The line goes into `buffer` as bytes, and the buffer is hashed when it is flushed: SHA-256
    /// over the buffers is SHA-256 over the lines, whatever the chunks. (Hashing and converting
    /// each line on its own, with its time formatted through `String`s, was 7 % of a chaos-mix
    /// run's CPU.)
    @inline(__always)
    public func append(_ time: Int64, _ line: @autoclosure () -> String) {
        guard enabled else { return }
        let text = line()
        self.line(time) { $0.put(text) }
    }

    /// Appends one line written piece by piece by `write`: the lines every message makes (a send
    /// and a delivery, two thirds of a run's lines) are not built as `String`s first (interpolating
    /// them was 3 - 5 % of a chaos-mix run's CPU). The buffer is handed to `write` once, so that
    /// its pieces do not each pay for an exclusive access to this object's storage.
    @inline(__always)
    public func line(_ time: Int64, _ write: (inout LineWriter) -> Void) {
        guard enabled else { return }
        let text = Self.compose(time, into: &buffer, write)
        if let observer {
            buffer.bytes.withUnsafeBufferPointer { observer(UnsafeBufferPointer(rebasing: $0[text..<($0.count - 1)])) }
        }
        lineCount += 1
        if buffer.bytes.count >= 1 << 16 { flush() }
    }

    /// Writes the time, a space, the text and a newline; returns where the text starts.
    private static func compose(_ time: Int64, into line: inout LineWriter, _ write: (inout LineWriter) -> Void) -> Int {
        format(time, into: &line.bytes)
        line.bytes.append(0x20)
        let text = line.bytes.count
        write(&line)
        line.bytes.append(0x0A)
        return text
    }

    /// What a line is written with (`line(_:_:)`).
    public struct LineWriter {
        fileprivate var bytes: [UInt8] = []

        @inline(__always)
        public mutating func put(_ text: StaticString) {
            bytes.append(contentsOf: UnsafeBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
        }

        @inline(__always)
        public mutating func put(_ text: String) {
            var text = text
            text.withUTF8 { bytes.append(contentsOf: $0) }
        }

        public mutating func put(decimal value: UInt64) { SimTrace.appendDecimal(value, to: &bytes) }

        /// A time as lines show it (`12.345678s`).
        public mutating func put(time: Int64) { SimTrace.format(time, into: &bytes) }
    }

    /// `12.345678s`: seconds since start with microseconds.
    static func format(_ ns: Int64) -> String {
        var bytes: [UInt8] = []
        format(ns, into: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    static func format(_ ns: Int64, into bytes: inout [UInt8]) {
        let us = ns / 1_000
        guard us >= 0 else {  // never in a world (its time starts at 0): written as it always was
            let fraction = String(us % 1_000_000)
            bytes.append(contentsOf: "\(us / 1_000_000).\(String(repeating: "0", count: max(0, 6 - fraction.count)))\(fraction)s".utf8)
            return
        }
        appendDecimal(UInt64(us / 1_000_000), to: &bytes)
        bytes.append(0x2E)  // "."
        let fraction = UInt64(us % 1_000_000)
        var place: UInt64 = 100_000
        while place > 0 { bytes.append(0x30 + UInt8(fraction / place % 10)); place /= 10 }
        bytes.append(0x73)  // "s"
    }

    fileprivate static func appendDecimal(_ value: UInt64, to bytes: inout [UInt8]) {
        guard value >= 10 else { bytes.append(0x30 + UInt8(value)); return }
        appendDecimal(value / 10, to: &bytes)
        bytes.append(0x30 + UInt8(value % 10))
    }

    /// Hashes what is buffered and writes it to the trace file, if there is one.
    public func flush() {
        guard !buffer.bytes.isEmpty else { return }
        hasher.update(data: buffer.bytes)
        sink?.put(Data(buffer.bytes))
        buffer.bytes.removeAll(keepingCapacity: true)
    }

    /// The hex SHA-256 of every line so far. Call once, at the end.
    public func finish() -> String {
        releaseBuffer()
        try? sink?.close()
        sink = nil
        return ContentDigest.hex(hasher.finalize())
    }

    /// Gives back the buffer's memory (64 KB and more); lines appended after this still count.
    func releaseBuffer() {
        flush()
        buffer = LineWriter()
    }
}
