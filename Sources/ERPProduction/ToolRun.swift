import Foundation

/// What a tool run to its end left: its exit status and what it printed.
public struct ToolRun: Sendable {
    public var status: Int32
    public var output: String
}

/// Runs a tool to its end: its exit status and its standard output (its standard error too when
/// `includingErrors`; otherwise that goes where this process's does).
public func runTool(_ path: String, _ arguments: [String], includingErrors: Bool = false) throws -> ToolRun {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    if includingErrors { process.standardError = pipe }
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return ToolRun(status: process.terminationStatus, output: String(decoding: data, as: UTF8.self))
}
