import ERPReports
import ERPTestSupport
import Foundation
import Testing

/// report.html opens and renders in a real browser: Chromium, headless (scripts/test.sh installs
/// it), loads the file with no network, and the page it builds has the charts' dots, the shaded
/// fault windows and every invariant; a screenshot of it is a real picture.
@Suite(.serialized) struct HTMLReportTests {
    static var chromium: String? {
        if let path = ProcessInfo.processInfo.environment["ERP_CHROMIUM"] { return path }
        return ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"].first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    @Test func theReportRendersInChromium() async throws {
        let browser = try #require(Self.chromium, "Chromium is not installed: scripts/install-deps.sh --test installs it")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("erp-html-\(UInt64.random(in: 0...UInt64.max))").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let run = try await runErp(["run", "scenarios/chaos-mix.yaml", "--duration", "4s", "--out", dir])
        #expect(run.status == 0, "\(run.output)")
        let html = try String(contentsOfFile: dir + "/report.html", encoding: .utf8)
        #expect(!html.contains("http://") && !html.contains("https://") && !html.contains("<script"), "self-contained, no network, no script")

        let dom = try await Self.chromium(browser, ["--dump-dom", "file://\(dir)/report.html"])
        #expect(dom.contains("<title>chaos-mix · seed 17 · PASS</title>"), "\(dom.prefix(500))")
        let dots = dom.components(separatedBy: "<circle").count - 1
        #expect(dots > 20, "the latency chart has \(dots) dots")
        #expect(dom.contains("fill-opacity=\"0.18\""), "fault windows are shaded")
        for invariant in ["stock-conservation", "every-event-applied-once", "report-converges"] { #expect(dom.contains(invariant)) }
        #expect(dom.contains("hop inventory.stock-updated → product"))

        _ = try await Self.chromium(browser, ["--window-size=1200,1600", "--screenshot=\(dir)/shot.png", "file://\(dir)/report.html"])
        let png = try Data(contentsOf: URL(fileURLWithPath: dir + "/shot.png"))
        #expect(png.starts(with: [0x89, 0x50, 0x4E, 0x47]) && png.count > 20_000, "a screenshot of \(png.count) bytes")
    }

    /// Runs headless Chromium with `arguments`; its standard output.
    static func chromium(_ browser: String, _ arguments: [String]) async throws -> String {
        let profile = "\(FileManager.default.temporaryDirectory.path)/erp-chromium-\(UInt64.random(in: 0...UInt64.max))"
        defer { try? FileManager.default.removeItem(atPath: profile) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: browser)
        process.arguments = ["--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
                             "--user-data-dir=\(profile)"]
            + arguments
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        try process.run()
        let data = await readToEnd(out.fileHandleForReading)
        await waitForExit(process)
        return String(decoding: data, as: UTF8.self)
    }
}
