import ERPTransport
import ERPCore
import Foundation
import Logging

/// Sends log lines to a closure (the world decides whether to print them). Metadata such as the
/// correlation id is printed on the line.
struct SimLogHandler: LogHandler {
    let label: String
    let emit: @Sendable (String) -> Void
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .info
    var metadataProvider: Logger.MetadataProvider? = CorrelationScope.metadataProvider

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var all = metadataProvider?.get() ?? [:]
        all.merge(metadata) { $1 }
        if let extra = event.metadata { all.merge(extra) { $1 } }
        let meta = all.isEmpty ? "" : " " + all.keys.sorted().map { "\($0)=\(all[$0]!)" }.joined(separator: " ")
        emit("\(event.level) \(event.message)\(meta)")
    }
}

enum FileHandleOutput {
    static func standardError(_ line: String) {
        FileHandle.standardError.put(Data((line + "\n").utf8))
    }
}
